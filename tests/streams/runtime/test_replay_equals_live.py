"""The in-process driver, fed as replay feeds it (the inputs merged in event-time and tie order,
applied in small batches with timers between) and as the live engine is fed (a poll's records
in one batch, each partition in arrival order, forwards in the next), gives the same
compacted outputs for inputs published in time order with many equal times; and the same
input replayed twice gives byte-identical outputs."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.context import Policy
from schemas.types import millis
from streams.codecs.registry import EmbeddedRegistry
from streams.kafka.partitioning import partition_for
from streams.publish.publisher import Encoder, validate_line
from streams.replay.job import in_event_order
from streams.replay.reader import merged
from streams.runtime.inprocess import InProcessDriver
from streams.runtime.records import InRecord
from streams.stages.topology import build_topology

PARTITIONS = 3
BASE = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
REGISTRY = EmbeddedRegistry()
ENCODER = Encoder(None)

STORIES = ("s1", "s2")
USERS = ("ann", "bob", "cid")
_at = st.integers(0, 3).map(lambda s: (BASE + timedelta(seconds=s)).isoformat())  # many ties
_story = st.sampled_from(STORIES)
_user = st.sampled_from(USERS)
_events = st.lists(
    st.one_of(
        st.builds(
            lambda s, at, aud: {
                "type": "story_posted", "story_id": s, "author_id": "ann", "created_at": at,
                "audience": aud, "media": [{"name": "720", "url": "https://cdn.example/x.jpg",
                "width": 720, "height": 1280, "content_type": "image/jpeg"}],
            },
            _story, _at, st.sampled_from(("followers", "close_friends", "public")),
        ),
        st.builds(
            lambda s, u, at: {"type": "story_viewed", "story_id": s, "viewer_id": u, "viewed_at": at},
            _story, _user, _at,
        ),
        st.builds(
            lambda s, u, at: {"type": "story_reacted", "story_id": s, "user_id": u,
                              "reaction": "fire", "reacted_at": at},
            _story, _user, _at,
        ),
        st.builds(
            lambda s, at, added: {"type": "highlight_added" if added else "highlight_removed",
                                  "story_id": s, "author_id": "ann", "highlight_id": "h", "at": at},
            _story, _at, st.booleans(),
        ),
        st.builds(
            lambda s, at: {"type": "story_deleted", "story_id": s, "author_id": "ann", "deleted_at": at},
            _story, _at,
        ),
        st.builds(
            lambda u, at, on: {"type": "user_followed" if on else "user_unfollowed",
                               "follower_id": u, "followee_id": "ann", "at": at},
            st.sampled_from(("bob", "cid")), _at, st.booleans(),
        ),
        st.builds(
            lambda u, at, on: {"type": "close_friend_added" if on else "close_friend_removed",
                               "user_id": "ann", "friend_id": u, "at": at},
            st.sampled_from(("bob", "cid")), _at, st.booleans(),
        ),
    ),
    min_size=1,
    max_size=30,
)  # fmt: skip


def _inputs(events: list[dict[str, Any]], in_time_order: bool = True) -> list[InRecord]:
    """The events as published in time order (those of one time in the order given), or in
    the order given: validated, Avro, keyed, on murmur2 partitions."""
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    records = []
    encoded = [
        ENCODER.encode(validate_line(json.dumps(event).encode(), n + 1))  # type: ignore[arg-type]
        for n, event in enumerate(events)
    ]
    if in_time_order:
        encoded.sort(key=lambda e: e[3])
    for topic, key, value, timestamp in encoded:
        partition = partition_for(key, PARTITIONS)
        offset = offsets[topic, partition]
        offsets[topic, partition] += 1
        records.append(InRecord(topic, partition, offset, key, value, timestamp))
    return records


def _run(
    tmp: Path, records: list[InRecord], batch_size: int, hold_bytes: int = 0
) -> list[tuple[Any, ...]]:
    topology = build_topology(REGISTRY, "app", PARTITIONS)
    driver = InProcessDriver(
        topology, REGISTRY, Policy(), tmp, batch_size=batch_size, hold_bytes=hold_bytes
    )
    driver.pipe(records)
    driver.close()
    return [(r.topic, r.partition, r.key, r.value, ts) for r, ts in driver.outputs]


def _logs(records: list[InRecord]) -> list[Iterator[InRecord]]:
    """Each partition's records, in offset order."""
    by_partition: dict[tuple[str, int], list[InRecord]] = defaultdict(list)
    for record in records:
        by_partition[record.topic, record.partition].append(record)
    return [iter(log) for log in by_partition.values()]


def _replayed(
    tmp: Path, records: list[InRecord], batch_size: int, hold_bytes: int = 0
) -> list[tuple[Any, ...]]:
    topology = build_topology(REGISTRY, "app", PARTITIONS)
    in_order = list(merged(_logs(records), topology.rank))
    return _run(tmp, in_order, batch_size, hold_bytes)


def _compacted(outputs: list[tuple[Any, ...]]) -> dict[tuple[str, bytes], bytes]:
    latest: dict[tuple[str, bytes], bytes | None] = {}
    for topic, _, key, value, _ in outputs:
        if topic != "story-dead-letters":
            latest[topic, key] = value
    return {k: v for k, v in latest.items() if v is not None}


@settings(max_examples=60, deadline=None)
@given(_events, st.integers(1, 5), st.sampled_from((0, 1 << 30)))
def test_replay_gives_the_outputs_a_live_run_gives(
    tmp_path_factory: Any, events: list[dict[str, Any]], batch_size: int, hold_bytes: int
) -> None:
    # hold_bytes: the trays' messages applied after each chunk, or all at the end
    records = _inputs(events)
    live = _run(tmp_path_factory.mktemp("live"), records, batch_size=100_000)
    replayed = _replayed(tmp_path_factory.mktemp("replay"), records, batch_size, hold_bytes)
    assert _compacted(replayed) == _compacted(live)
    again = _replayed(tmp_path_factory.mktemp("again"), records, batch_size, hold_bytes)
    assert again == replayed  # every record, key, value, partition and timestamp


def test_at_one_millisecond_a_delete_comes_before_a_view_and_a_reaction(tmp_path: Path) -> None:
    at = BASE.isoformat()
    events = [
        {"type": "story_posted", "story_id": "s1", "author_id": "ann",
         "created_at": (BASE - timedelta(minutes=1)).isoformat()},
        {"type": "story_viewed", "story_id": "s1", "viewer_id": "bob", "viewed_at": at},
        {"type": "story_reacted", "story_id": "s1", "user_id": "bob", "reaction": "wow",
         "reacted_at": at},
        {"type": "story_deleted", "story_id": "s1", "author_id": "ann", "deleted_at": at},
    ]  # fmt: skip
    for outputs in (
        _run(tmp_path / "live", _inputs(events), 100_000),
        _replayed(tmp_path / "replay", _inputs(events), 1),
    ):
        published = {(topic, value is not None) for topic, _, _, value, _ in outputs}
        assert ("story-viewers", True) not in published
        assert ("story-view-counts", True) not in published
        assert ("story-reaction-counts", True) not in published


def test_at_one_millisecond_a_highlight_comes_before_a_view_of_the_expired_story(
    tmp_path: Path,
) -> None:
    posted = BASE - timedelta(hours=25)  # expired an hour ago, within the grace
    at = BASE.isoformat()
    events = [
        {"type": "story_posted", "story_id": "s1", "author_id": "ann",
         "created_at": posted.isoformat()},
        {"type": "story_viewed", "story_id": "s1", "viewer_id": "bob", "viewed_at": at},
        {"type": "highlight_added", "story_id": "s1", "author_id": "ann", "highlight_id": "h",
         "at": at},
    ]  # fmt: skip
    for outputs in (
        _run(tmp_path / "live", _inputs(events), 100_000),
        _replayed(tmp_path / "replay", _inputs(events), 1),
    ):
        counts = [value for topic, _, _, value, _ in outputs if topic == "story-view-counts"]
        assert counts and counts[-1] is not None  # the view counted on the highlighted story


def test_a_partition_whose_log_starts_past_the_range_is_not_held_back(tmp_path: Path) -> None:
    # The post of s1 shares its partition with a post published earlier but stamped two days
    # later, past the range: that one is no input of the range and must not delay s1's post
    # behind s1's views (which give their story up 30 s of event time after them).
    partition = partition_for("s1", PARTITIONS)
    other = next(f"n{i}" for i in range(100) if partition_for(f"n{i}", PARTITIONS) == partition)
    later = (BASE + timedelta(days=2)).isoformat()
    events = [
        {"type": "story_posted", "story_id": other, "author_id": "cid", "created_at": later},
        {"type": "story_posted", "story_id": "s1", "author_id": "ann",
         "created_at": BASE.isoformat()},
        {"type": "story_viewed", "story_id": "s1", "viewer_id": "bob",
         "viewed_at": (BASE + timedelta(minutes=3)).isoformat()},
        {"type": "user_followed", "follower_id": "bob", "followee_id": "cid",
         "at": (BASE + timedelta(minutes=10)).isoformat()},
    ]  # fmt: skip
    logs = _logs(_inputs(events, in_time_order=False))  # in publish order
    topology = build_topology(REGISTRY, "app", PARTITIONS)
    start, end = millis(BASE), millis(BASE + timedelta(hours=1))
    in_order = list(in_event_order(logs, topology.rank, start, end))
    assert [r.timestamp for r in in_order] == sorted(r.timestamp for r in in_order)
    assert len(in_order) == 3  # the post past the range is no input
    viewers = [
        key for topic, _, key, value, _ in _run(tmp_path, in_order, 1) if topic == "story-viewers"
    ]
    assert any(key.startswith(b"s1/") for key in viewers)
