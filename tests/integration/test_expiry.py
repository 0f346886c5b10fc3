"""Expiry on the real broker with a short TTL: tombstones, highlights, late events; and replay
determinism (the same log replayed twice gives byte-identical compacted views)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from schemas.types import millis
from streams.kafka.partitioning import partition_for
from streams.settings import Settings
from streams.topics import TOPICS
from tests.integration.cli import run
from tests.integration.workers import (
    SECRET,
    Worker,
    latest,
    publish,
    raw_history,
    raw_latests,
    wait_for,
)

pytestmark = pytest.mark.integration
TTL = 15


@pytest.fixture(scope="module")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    env = {
        "STORYSTREAM_BROKER": settings.bootstrap(),
        "STORYSTREAM_APP_ID": f"expiry-{uuid.uuid4().hex[:6]}",
        "STORYSTREAM_API_SECRET": SECRET,
        "STORYSTREAM_STORY_TTL": f"{TTL}s",
        "STORYSTREAM_EXPIRY_GRACE": "60s",  # the late view below finds the story ended, not purged
        "STORYSTREAM_PARTITIONS": str(settings.partitions),
        "STORYSTREAM_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    started = Worker(tmp_path_factory.mktemp("expiry") / "worker", env)
    try:
        wait_for(started.partitions, 90, "worker healthy")
        yield started
    finally:
        started.stop()


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def test_stories_expire_into_tombstones_and_highlights_survive(
    settings: Settings, worker: Worker
) -> None:
    broker = settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    author, fan = f"author-{tag}", f"fan-{tag}"
    plain, kept = f"plain-{tag}", f"kept-{tag}"
    created = datetime.now(UTC).replace(microsecond=0)
    media = [
        {
            "name": "1080",
            "url": "https://cdn.example/m.jpg",
            "width": 1080,
            "height": 1920,
            "content_type": "image/jpeg",
        }
    ]
    publish(
        broker,
        [
            {
                "type": "user_followed",
                "follower_id": fan,
                "followee_id": author,
                "at": _iso(created - timedelta(minutes=1)),
            }
        ],
    )
    publish(
        broker,
        [
            {
                "type": "story_posted",
                "story_id": s,
                "author_id": author,
                "created_at": _iso(created),
                "media": media,
                "audience": "public",
            }
            for s in (plain, kept)
        ],
        env={"STORYSTREAM_STORY_TTL": f"{TTL}s"},
    )  # the publisher fills expires_at from it
    wait_for(lambda: len(latest(broker, "story-state", {plain, kept})) == 2, 30, "stories")
    publish(
        broker,
        [
            {
                "type": "highlight_added",
                "story_id": kept,
                "author_id": author,
                "highlight_id": "h",
                "at": _iso(created + timedelta(seconds=1)),
            },
            *[
                {
                    "type": "story_viewed",
                    "story_id": s,
                    "viewer_id": fan,
                    "viewed_at": _iso(created + timedelta(seconds=1)),
                }
                for s in (plain, kept)
            ],
            *[
                {
                    "type": "story_reacted",
                    "story_id": s,
                    "user_id": fan,
                    "reaction": "fire",
                    "reacted_at": _iso(created + timedelta(seconds=1)),
                }
                for s in (plain, kept)
            ],
        ],
    )
    before = wait_for(
        lambda: (v := latest(broker, "story-view-counts", {plain, kept})) and len(v) == 2 and v,
        30,
        "view counts",
    )
    assert before[plain]["total_views"] == 1
    assert worker.get(f"/stories/{plain}", fan)[0] == 200
    trays = latest(broker, "story-trays", {fan})
    assert trays[fan]["entries"][0]["story_ids"] == sorted([plain, kept])  # same time: by id

    expires = created + timedelta(seconds=TTL)
    wait_for(lambda: set(latest(broker, "story-state", {plain, kept})) == {kept}, 30, "expiry")
    assert worker.get(f"/stories/{plain}", fan)[0] == 404
    assert worker.get(f"/stories/{kept}", fan) == (200, latest(broker, "story-state", {kept})[kept])
    assert latest(broker, "story-state", {kept})[kept]["status"] == "highlighted"
    assert set(latest(broker, "story-view-counts", {plain, kept})) == {kept}
    assert set(latest(broker, "story-reaction-counts", {plain, kept})) == {kept}
    viewers = latest(broker, "story-viewers", {f"{plain}/{fan}", f"{kept}/{fan}"})
    assert set(viewers) == {f"{kept}/{fan}"}
    wait_for(lambda: fan not in latest(broker, "story-trays", {fan}), 30, "tray tombstoned")

    # Tombstones within 5 s of expires_at (live mode: the wall clock, no event needed).
    tombstone_times = [
        ts
        for key, value, ts in raw_history(broker, "story-state")
        if key == plain.encode() and value is None
    ]
    assert tombstone_times and tombstone_times[0] - millis(expires) <= 5000

    # A late view for the expired story is not applied.
    publish(
        broker,
        [
            {
                "type": "story_viewed",
                "story_id": plain,
                "viewer_id": f"late-{tag}",
                "viewed_at": _iso(created + timedelta(seconds=2)),
            }
        ],
    )
    wait_for(lambda: "view-expired-or-deleted" in _metrics(worker), 20, "late view counted")
    assert plain not in latest(broker, "story-view-counts", {plain})


def _metrics(worker: Worker) -> str:
    import urllib.request

    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as answer:
        return answer.read().decode()


def test_replay_is_deterministic(settings: Settings, worker: Worker) -> None:
    broker = settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    # Within the inputs' 7-day retention: Apache Kafka deletes records timestamped earlier at
    # its next retention check, which made the replay find nothing when one fell in between.
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    events = [
        {
            "type": "user_followed",
            "follower_id": f"f{i}-{tag}",
            "followee_id": f"a-{tag}",
            "at": _iso(base),
        }
        for i in range(5)
    ]
    events += [
        {
            "type": "story_posted",
            "story_id": f"s{i}-{tag}",
            "author_id": f"a-{tag}",
            "created_at": _iso(base + timedelta(minutes=i)),
            "media": [
                {
                    "name": "1080",
                    "url": "https://cdn.example/r.jpg",
                    "width": 1,
                    "height": 1,
                    "content_type": "image/jpeg",
                }
            ],
        }
        for i in range(3)
    ]
    events += [
        {
            "type": "story_viewed",
            "story_id": f"s{i % 3}-{tag}",
            "viewer_id": f"f{i % 5}-{tag}",
            "viewed_at": _iso(base + timedelta(minutes=3, seconds=i)),
        }
        for i in range(40)
    ]
    events += [
        {
            "type": "highlight_added",
            "story_id": f"s0-{tag}",
            "author_id": f"a-{tag}",
            "highlight_id": "best",
            "at": _iso(base + timedelta(minutes=5)),
        }
    ]
    # Other modules publish to this broker; one of them (here a story posted now, in s0's
    # partition) may come before these events in the log while stamped after the range.
    partition = partition_for(f"s0-{tag}", settings.partitions)
    other = next(
        f"n{i}-{tag}"
        for i in range(1000)
        if partition_for(f"n{i}-{tag}", settings.partitions) == partition
    )
    publish(broker, [{**events[5], "story_id": other, "created_at": _iso(datetime.now(UTC))}])
    publish(broker, events)
    until = _iso(base + timedelta(hours=25))  # past every expiry: tombstones included
    views = []
    for run_number in (1, 2):
        prefix = f"replay{run_number}-{tag}-"
        result = run(
            "replay",
            "--output-prefix",
            prefix,
            "--from",  # this test's events only: other modules publish to the same broker
            _iso(base),
            "--to",
            until,
            broker=broker,
            env={"STORYSTREAM_PARTITIONS": str(settings.partitions)},
        )
        assert result.returncode == 0, result.stderr
        assert "replayed" in result.stdout
        outputs = [spec.name for spec in TOPICS if spec.kind == "output"]
        read = raw_latests(broker, [prefix + name for name in outputs])
        views.append({name: read[prefix + name] for name in outputs})
    assert views[0] == views[1]
    state = views[0]["story-state"]
    # Only the highlighted story outlives the replayed day; the others expired in event time.
    mine = {k for k in state if k.endswith(tag.encode())}
    assert mine == {f"s0-{tag}".encode()}
    assert any(k.startswith(f"s0-{tag}/".encode()) for k in views[0]["story-viewers"])
    assert not any(k.startswith(f"s1-{tag}/".encode()) for k in views[0]["story-viewers"])
