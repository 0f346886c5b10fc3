"""The in-process driver applies records in chunks as the live engine applies a poll's
records: a burst of posts in one millisecond is one batch, so each follower's tray is published
once for it; records span up to ten minutes of event time while no timer is due; a chunk ends
where a timer is due, so a story's expiry is emitted at its time; a story's count is stamped
with its latest view's time, not the chunk's."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from processors.context import Policy
from schemas.types import millis
from streams.runtime.inprocess import InProcessDriver
from streams.stages.topology import build_topology
from tests.streams.runtime.test_replay_equals_live import BASE, PARTITIONS, REGISTRY, _inputs

POSTS = 40


def _burst() -> list[Any]:
    follow = {"type": "user_followed", "follower_id": "bob", "followee_id": "ann",
              "at": BASE.isoformat()}  # fmt: skip
    posts = [
        {"type": "story_posted", "story_id": f"s{i}", "author_id": "ann",
         "created_at": BASE.replace(minute=1).isoformat()}
        for i in range(POSTS)
    ]  # fmt: skip
    return _inputs([follow, *posts])


def _driver(tmp_path: Path, **options: Any) -> InProcessDriver:
    topology = build_topology(REGISTRY, "app", PARTITIONS)
    return InProcessDriver(topology, REGISTRY, Policy(), tmp_path, **options)


def test_records_of_one_time_are_applied_together(tmp_path: Path) -> None:
    records = _burst()
    driver = _driver(tmp_path)
    applied: list[int] = []
    process = driver.driver.process

    def counted(partitions: Any, chunk: Any, now: Any, **kwargs: Any) -> set[int]:
        if chunk and not chunk[0].topic.startswith("app-"):  # inputs, not forwards
            applied.append(len(chunk))
        return process(partitions, chunk, now, **kwargs)

    driver.driver.process = counted  # type: ignore[method-assign]
    driver.pipe(records[:1])  # the follow, a minute before
    driver.pipe(records[1:])
    assert applied[-1] == POSTS  # every post of the burst in one chunk
    trays = [r for r, _ in driver.outputs if r.topic == "story-trays" and r.key == b"bob"]
    assert len(trays) == 1  # bob's tray published once, holding all of them
    driver.close()


def _views_each_second(posted_at: str, seconds: int, step: int = 1) -> list[Any]:
    post = {"type": "story_posted", "story_id": "s1", "author_id": "ann", "created_at": posted_at}
    views = [
        {"type": "story_viewed", "story_id": "s1", "viewer_id": f"u{n}",
         "viewed_at": (BASE + timedelta(seconds=n * step)).isoformat()}
        for n in range(1, seconds + 1)
    ]  # fmt: skip
    return _inputs([post, *views])


def _counts(driver: InProcessDriver) -> list[tuple[bytes | None, int]]:
    return [(r.value, ts) for r, ts in driver.outputs if r.topic == "story-view-counts"]


def test_records_span_up_to_ten_minutes_of_event_time_while_no_timer_is_due(
    tmp_path: Path,
) -> None:
    records = _views_each_second(BASE.isoformat(), 50, step=10)  # 50 views over 500 s
    whole = _driver(tmp_path / "whole")
    whole.pipe(records)
    assert len(_counts(whole)) == 1  # in one chunk: one count
    minutes = _driver(tmp_path / "minutes", span_ms=60_000)
    minutes.pipe(records)
    assert len(_counts(minutes)) == 9  # chunks from the post's second 0: 0-59 s, ... 480-539 s
    for driver in (whole, minutes):
        driver.close()


def test_a_count_is_stamped_with_its_storys_latest_view_not_the_chunks_end(
    tmp_path: Path,
) -> None:
    posts = [
        {"type": "story_posted", "story_id": story, "author_id": "ann",
         "created_at": BASE.isoformat()}
        for story in ("s1", "s2")
    ]  # fmt: skip
    views = [
        {"type": "story_viewed", "story_id": story, "viewer_id": "u1",
         "viewed_at": (BASE + timedelta(seconds=seconds)).isoformat()}
        for story, seconds in (("s1", 10), ("s1", 100), ("s2", 400))
    ]  # fmt: skip
    driver = _driver(tmp_path)
    driver.pipe(_inputs([*posts, *views]))
    stamps = {
        r.key: ts for r, ts in driver.outputs if r.topic in ("story-view-counts", "story-viewers")
    }
    second = 1000
    assert stamps == {
        b"s1": millis(BASE) + 100 * second,
        b"s1/u1": millis(BASE) + 100 * second,
        b"s2": millis(BASE) + 400 * second,
        b"s2/u1": millis(BASE) + 400 * second,
    }
    driver.close()


def test_a_chunk_ends_where_a_timer_is_due(tmp_path: Path) -> None:
    expires = BASE + timedelta(seconds=20)  # due within the minute of views
    records = _views_each_second((expires - Policy().story_ttl).isoformat(), 50)
    driver = _driver(tmp_path)
    driver.pipe(records)
    states = [ts for r, ts in driver.outputs if r.topic == "story-state" and r.value is None]
    assert len(states) == 1  # the expiry's tombstone, stamped at its time, not the chunk's end
    assert millis(expires) <= states[0] <= millis(expires) + 1000
    views = {r.value for r, _ in driver.outputs if r.topic == "story-viewers" and r.value}
    assert len(views) == 20  # the views up to and including expires_at
    driver.close()


def test_a_sink_stage_takes_many_chunks_at_once_its_outputs_stamped_with_their_time(
    tmp_path: Path,
) -> None:
    follow = {"type": "user_followed", "follower_id": "bob", "followee_id": "ann",
              "at": BASE.isoformat()}  # fmt: skip
    times = [BASE + timedelta(minutes=m) for m in (1, 12, 25)]  # a chunk each
    posts = [
        {"type": "story_posted", "story_id": f"s{n}", "author_id": "ann",
         "created_at": at.isoformat()}
        for n, at in enumerate(times)
    ]  # fmt: skip
    later = {
        "type": "user_followed",
        "follower_id": "cid",
        "followee_id": "dan",
        "at": (BASE + timedelta(minutes=40)).isoformat(),
    }  # time goes on past the posts (in a chunk of its own: a forward carries its chunk's time)
    records = _inputs([follow, *posts, later])

    def trays(driver: InProcessDriver) -> list[int]:
        driver.pipe(records)
        stamps = [ts for r, ts in driver.outputs if r.topic == "story-trays" and r.key == b"bob"]
        driver.close()
        return stamps

    # Held (the default): bob's tray messages of the three chunks applied at once, at the end
    # of the input; the tray published once, stamped with its last message's time (not the
    # time the input had reached).
    assert trays(_driver(tmp_path / "held")) == [millis(times[-1])]
    # Applied after each chunk: published once a post, each at its post's time.
    assert trays(_driver(tmp_path / "each", hold_bytes=0)) == [millis(at) for at in times]
