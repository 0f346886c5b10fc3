"""Story state, follow graph, trays and view counts end to end: two workers in one group, the
compacted topics and the HTTP API agreeing, asked of each worker."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import datasketches
import pytest

from streams.api.auth import issue_token
from streams.settings import Settings
from tests.integration.workers import SECRET, Worker, latest, publish, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app_env(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "STORYSTREAM_BROKER": settings.bootstrap(),
        "STORYSTREAM_APP_ID": f"trays-{uuid.uuid4().hex[:6]}",
        "STORYSTREAM_API_SECRET": SECRET,
        "STORYSTREAM_CELEBRITY_FOLLOWERS": "3",
        "STORYSTREAM_PARTITIONS": str(settings.partitions),
        "STORYSTREAM_S3_ENDPOINT_URL": "http://127.0.0.1:9",  # unused: no media here
    }


@pytest.fixture(scope="module")
def workers(
    app_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Worker]]:
    root = tmp_path_factory.mktemp("workers")
    started = [Worker(root / f"worker{index}", app_env) for index in range(2)]
    try:
        # Both in the group: each owns some partitions.
        wait_for(lambda: all(w.partitions() for w in started), 90, "partitions spread")
        yield started
    finally:
        for worker in started:
            worker.stop()


def test_scenario_through_topics_and_api(app_env: dict[str, str], workers: list[Worker]) -> None:
    tag = uuid.uuid4().hex[:6]
    alice, bob, carol, dave, star = (
        f"{n}-{tag}" for n in ("alice", "bob", "carol", "dave", "star")
    )
    fans = [f"fan{i}-{tag}" for i in range(3)]
    now = datetime.now(UTC).replace(microsecond=0)
    t = lambda seconds: (now + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")  # noqa: E731
    media = [
        {
            "name": "1080",
            "url": "https://cdn.example/x.jpg",
            "width": 1080,
            "height": 1920,
            "content_type": "image/jpeg",
        }
    ]
    follows = [
        {"type": "user_followed", "follower_id": f, "followee_id": alice, "at": t(-60)}
        for f in (bob, carol, dave)
    ]
    follows += [
        {"type": "user_followed", "follower_id": f, "followee_id": star, "at": t(-60)}
        for f in (*fans, bob)
    ]
    follows.append({"type": "close_friend_added", "user_id": alice, "friend_id": bob, "at": t(-60)})
    publish(app_env["STORYSTREAM_BROKER"], follows)
    time.sleep(2)
    s1, s2, s3, c1 = (f"{n}-{tag}" for n in ("s1", "s2", "s3", "c1"))
    publish(
        app_env["STORYSTREAM_BROKER"],
        [
            {
                "type": "story_posted",
                "story_id": s1,
                "author_id": alice,
                "created_at": t(-30),
                "media": media,
            },
            {
                "type": "story_posted",
                "story_id": s2,
                "author_id": alice,
                "created_at": t(-20),
                "media": media,
                "audience": "close_friends",
            },
            {
                "type": "story_posted",
                "story_id": s3,
                "author_id": alice,
                "created_at": t(-10),
                "media": media,
            },
            {
                "type": "story_posted",
                "story_id": c1,
                "author_id": star,
                "created_at": t(-5),
                "media": media,
                "audience": "public",
            },
        ],
    )
    time.sleep(2)
    publish(
        app_env["STORYSTREAM_BROKER"],
        [
            {"type": "story_deleted", "story_id": s3, "author_id": alice, "deleted_at": t(-1)},
            {"type": "story_viewed", "story_id": s1, "viewer_id": carol, "viewed_at": t(-1)},
            {"type": "user_unfollowed", "follower_id": dave, "followee_id": alice, "at": t(-1)},
        ],
    )

    users = {bob, carol, dave, *fans}

    def trays_settled() -> dict[str, Any] | None:
        trays = latest(app_env["STORYSTREAM_BROKER"], "story-trays", users)
        return (
            trays
            if set(trays) == {bob, carol} and trays[carol]["entries"][0]["has_unseen"] is False
            else None
        )

    trays = wait_for(trays_settled, 60, "trays")
    assert trays[bob]["entries"] == [
        {"author_id": alice, "story_ids": [s1, s2], "latest_story_at": t(-20), "has_unseen": True}
    ]
    assert trays[carol]["entries"] == [
        {"author_id": alice, "story_ids": [s1], "latest_story_at": t(-30), "has_unseen": False}
    ]
    # dave unfollowed: tombstoned; the celebrity's stories are not fanned out to fans.
    states = latest(app_env["STORYSTREAM_BROKER"], "story-state", {s1, s2, s3, c1})
    assert set(states) == {s1, s2, c1}
    assert states[s2]["audience"] == "close_friends" and states[s1]["status"] == "active"

    expected_bob = [
        {"author_id": star, "story_ids": [c1], "latest_story_at": t(-5), "has_unseen": True},
        {"author_id": alice, "story_ids": [s1, s2], "latest_story_at": t(-20), "has_unseen": True},
    ]
    for worker in workers:  # any worker answers for any key
        status, tray = worker.get(f"/users/{bob}/tray", bob)
        assert status == 200, tray
        assert tray == {"user_id": bob, "entries": expected_bob}
        assert worker.get(f"/users/{bob}/tray", carol)[0] == 403
        assert worker.get(f"/stories/{s2}", carol)[0] == 404  # close friends only
        assert worker.get(f"/stories/{s2}", bob) == (200, states[s2])
        assert worker.get(f"/stories/{s3}", alice)[0] == 404  # deleted
        status, stories = worker.get(f"/users/{alice}/stories", carol)
        assert status == 200 and [s["story_id"] for s in stories["stories"]] == [s1]
        status, stories = worker.get(f"/users/{alice}/stories", alice)
        assert [s["story_id"] for s in stories["stories"]] == [s1, s2]
        assert worker.get(f"/stories/{s1}/views", alice)[1]["total_views"] == 1
        assert worker.get(f"/stories/{s1}/viewers", carol)[0] == 403
        status, viewers = worker.get(f"/stories/{s1}/viewers", alice)
        assert [v["viewer_id"] for v in viewers["viewers"]] == [carol]

    # bob views the celebrity's story: merged on read, it shows as seen (bob's mark for it)
    publish(
        app_env["STORYSTREAM_BROKER"],
        [{"type": "story_viewed", "story_id": c1, "viewer_id": bob, "viewed_at": t(-1)}],
    )

    def celebrity_seen() -> list[Any] | None:
        status, tray = workers[0].get(f"/users/{bob}/tray", bob)
        entries = tray["entries"] if status == 200 else []
        return (
            entries
            if any(e["author_id"] == star and not e["has_unseen"] for e in entries)
            else None
        )

    entries = wait_for(celebrity_seen, 60, "the celebrity's story seen in bob's tray")
    assert entries == [expected_bob[1], {**expected_bob[0], "has_unseen": False}]  # unseen first


def test_requests_need_a_valid_token(workers: list[Worker]) -> None:
    for worker in workers:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(worker.url + "/stories/x", timeout=5)
        assert missing.value.code == 401
        forged = issue_token("alice", "not-the-secret-but-also-32-bytes-long", datetime.now(UTC))
        request = urllib.request.Request(
            worker.url + "/stories/x", headers={"Authorization": f"Bearer {forged}"}
        )
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(request, timeout=5)
        assert bad.value.code == 401
        with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as answer:
            assert b"storystream_events_processed_total" in answer.read()


def test_undecodable_records_become_dead_letters(
    app_env: dict[str, str], workers: list[Worker]
) -> None:
    from confluent_kafka import Producer

    broker = app_env["STORYSTREAM_BROKER"]
    tag = uuid.uuid4().hex[:6]
    # keyed as Kafka's default partitioner keys them: the values are what is wrong
    producer = Producer({"bootstrap.servers": broker, "partitioner": "murmur2_random"})
    producer.produce("story-viewed", b"\x00\x00\x00\x00\x0cgarbage", f"bad-{tag}".encode())
    producer.produce("story-posted", b"not avro at all", f"worse-{tag}".encode())
    producer.flush(10)
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    publish(
        broker,
        [
            {
                "type": "story_posted",
                "story_id": f"ok-{tag}",
                "author_id": f"a-{tag}",
                "created_at": now,
            }
        ],
    )

    def letters() -> dict[str, Any] | None:
        found = latest(broker, "story-dead-letters", {f"bad-{tag}", f"worse-{tag}"})
        return found if len(found) == 2 else None

    found = wait_for(letters, 60, "dead letters")
    assert found[f"bad-{tag}"]["source_topic"] == "story-viewed"
    assert "undecodable" in found[f"bad-{tag}"]["error"]
    assert "magic byte" in found[f"worse-{tag}"]["error"]
    assert base64.b64decode(found[f"worse-{tag}"]["original_value"]) == b"not avro at all"
    # ...and the workers kept going.
    wait_for(lambda: latest(broker, "story-state", {f"ok-{tag}"}), 60, "later events processed")


def test_a_view_count_read_from_its_topic_merges_with_another_sketch(
    app_env: dict[str, str], workers: list[Worker]
) -> None:
    # given a story viewed by viewers 0..399, once more by its author and once redelivered
    broker = app_env["STORYSTREAM_BROKER"]
    tag = uuid.uuid4().hex[:6]
    story, author = f"counted-{tag}", f"author-{tag}"
    now = datetime.now(UTC).replace(microsecond=0)
    at = (now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    posted = {"type": "story_posted", "story_id": story, "author_id": author, "created_at": at}
    publish(broker, [posted])
    views = [
        {
            "type": "story_viewed",
            "story_id": story,
            "viewer_id": viewer,
            "viewed_at": at,
            "event_id": f"view-{tag}-{viewer}",
        }
        for viewer in [*(f"viewer-{i}" for i in range(400)), author, "viewer-7"]
    ]
    views[-1]["event_id"] = views[7]["event_id"]  # the same event delivered twice
    publish(broker, views)

    # when its ViewCount is read back from story-view-counts
    def counted() -> dict[str, Any] | None:
        count = latest(broker, "story-view-counts", {story}).get(story)
        return count if count and count["total_views"] == 400 else None

    count = wait_for(counted, 60, "the story's view count")
    sketch = datasketches.hll_sketch.deserialize(base64.b64decode(count["sketch"]))
    assert count["unique_viewers"] == round(sketch.get_estimate()) == pytest.approx(400, rel=0.02)

    # then it merges with a sketch built elsewhere over viewers 200..599 (HLL_8 here)
    other = datasketches.hll_sketch(12, datasketches.tgt_hll_type.HLL_8)
    for i in range(200, 600):
        other.update(f"viewer-{i}")
    union = datasketches.hll_union(12)
    union.update(sketch)
    union.update(other)
    assert union.get_estimate() == pytest.approx(600, rel=0.02)
