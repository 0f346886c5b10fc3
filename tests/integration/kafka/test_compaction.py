"""Compaction really erases on Apache Kafka: once a story has expired and its grace has passed,
its tombstones have done their work and are gone too, so reading story-state,
story-view-counts, story-viewers, story-reaction-counts and the changelog from the beginning
finds no record of that story at all (topics given test-sized segments and retention)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from streams.kafka.admin import create_topics
from streams.kafka.partitioning import partition_for
from streams.settings import Settings
from tests.integration.kafka.checks import histories
from tests.integration.workers import SECRET, Worker, publish, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka]
ERASED = ("story-state", "story-view-counts", "story-viewers", "story-reaction-counts")
TEST_SIZED = {
    "segment.ms": "1000",  # the active segment is never cleaned: roll it soon
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1000",  # how long a tombstone outlives the record it deletes
    "max.compaction.lag.ms": "1000",
}


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _story(story: str, author: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "story_posted",
        "story_id": story,
        "author_id": author,
        "created_at": _iso(at),
        "audience": "public",
        "media": [
            {
                "name": "1080",
                "url": f"https://cdn.example/{story}.jpg",
                "width": 1080,
                "height": 1920,
                "content_type": "image/jpeg",
            }
        ],
    }


def _traffic(story: str, viewer: str, at: datetime) -> list[dict[str, Any]]:
    return [
        {"type": "story_viewed", "story_id": story, "viewer_id": viewer, "viewed_at": _iso(at)},
        {
            "type": "story_reacted",
            "story_id": story,
            "user_id": viewer,
            "reaction": "like",
            "reacted_at": _iso(at),
        },
    ]


def _mentions(records: dict[str, list[tuple[bytes, bytes | None]]], story: bytes) -> list[str]:
    """Where `story` still appears, in a key or a value: `topic: key`."""
    return [
        f"{topic}: {key!r}"
        for topic, found in records.items()
        for key, value in found
        if story in key or (value is not None and story in value)
    ]


def test_an_expired_story_leaves_no_record_once_compacted(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    broker = kafka_settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    prefix = f"c-{tag}-"
    app = kafka_settings.model_copy(update={"app_id": f"compact-{tag}", "output_prefix": prefix})
    create_topics(app)  # the contract's, the workers' own and the prefixed outputs
    topics = [prefix + name for name in ERASED] + [f"{app.app_id}-changelog"]
    admin = AdminClient({"bootstrap.servers": broker})
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                for name, value in TEST_SIZED.items()
            ],
        )
        for topic in topics
    ]
    for future in admin.incremental_alter_configs(resources).values():
        future.result()

    env = {
        "STORYSTREAM_BROKER": broker,
        "STORYSTREAM_APP_ID": app.app_id,
        "STORYSTREAM_OUTPUT_PREFIX": prefix,
        "STORYSTREAM_API_SECRET": SECRET,
        "STORYSTREAM_STORY_TTL": "8s",
        "STORYSTREAM_EXPIRY_GRACE": "4s",
        "STORYSTREAM_PARTITIONS": str(app.partitions),
        "STORYSTREAM_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    worker = Worker(tmp_path / "worker", env)
    try:
        wait_for(lambda: len(worker.partitions() or []) == app.partitions, 90, "worker ready")
        now = datetime.now(UTC)
        doomed = f"doomed-{tag}"
        # Stories that live on, one in each partition: their traffic appends to every
        # partition of every topic, so segments roll and the cleaner has work everywhere.
        fillers: dict[int, str] = {}
        for i in range(1000):
            fillers.setdefault(partition_for(f"f{i}-{tag}", app.partitions), f"f{i}-{tag}")
        long_lived = {"STORYSTREAM_STORY_TTL": "1h"}
        publish(broker, [_story(s, f"fa-{tag}", now) for s in fillers.values()], env=long_lived)
        doomed_events = [_story(doomed, f"da-{tag}", now)]
        for i in range(5):
            doomed_events += _traffic(doomed, f"v{i}-{tag}", now + timedelta(seconds=1))
        publish(broker, doomed_events, env={"STORYSTREAM_STORY_TTL": "8s"})

        tick = 0

        def filler_traffic() -> None:
            nonlocal tick
            tick += 1
            at = datetime.now(UTC)
            events = [_story(f"t{tick}-{p}-{tag}", f"fa-{tag}", at) for p in range(4)]
            for story in fillers.values():
                events += _traffic(story, f"w{tick}-{tag}", at)
            publish(broker, events, env=long_lived)

        def present() -> list[str]:
            return _mentions(histories(broker, topics, idle=1.0), doomed.encode())

        before = wait_for(
            lambda: (
                (found := present())
                and {t for t in topics if any(f.startswith(t + ":") for f in found)} == set(topics)
                and found
            ),
            60,
            "the doomed story in every topic",
        )
        deadline = time.monotonic() + 240
        left = before
        while left and time.monotonic() < deadline:
            filler_traffic()
            time.sleep(1)
            if tick % 4 == 0:
                left = present()
        print(
            f"compaction: {len(before)} records of the story before expiry, "
            f"{len(left)} left after {tick} rounds of other traffic"
        )
        assert not left, f"still there: {left[:10]}"
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()
