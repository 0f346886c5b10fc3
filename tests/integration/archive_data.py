"""Input events of every archived topic, with times spread over hours and published out of
time order; an independent read of what the broker holds (offsets included); and a broker of a
test module's own.

The archive, replay-from-archive and export tests run on an embedded broker of their own: a
replay reads the whole log, and stops reading a partition at a record an hour past its range's
end, so records other tests publish with later times (and theirs with these tests' times) would
cut each other's replays short on the shared broker."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.archive import ArchiveReader, parse_key
from infra.broker import EmbeddedBroker
from streams.kafka.admin import create_topics
from streams.settings import Settings

Held = dict[tuple[str, int, int], tuple[bytes | None, bytes | None, int]]


def own_broker(factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings on an embedded broker of the caller's own, every topic created (on the
    configured one when STORYSTREAM_BROKER is set)."""
    configured = os.environ.get("STORYSTREAM_BROKER")
    if configured:
        yield _settings(configured, factory)
        return
    with EmbeddedBroker() as broker:
        yield _settings(broker.bootstrap, factory)


def _settings(bootstrap: str, factory: pytest.TempPathFactory) -> Settings:
    built = Settings(broker=bootstrap, data_dir=factory.mktemp("data"), partitions=4)
    create_topics(built)
    return built


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def input_events(tag: str, base: datetime, hours: int, seed: int = 7) -> list[dict[str, Any]]:
    """Events of all eight input topics over `hours` hours from `base`, shuffled."""
    rng = random.Random(seed)

    def at() -> str:
        return _iso(base + timedelta(seconds=rng.randrange(hours * 3600)))

    media = {"name": "720", "url": "https://cdn.example/x.jpg", "width": 720, "height": 1280,
             "content_type": "image/jpeg"}  # fmt: skip
    stories = [f"s{i}-{tag}" for i in range(30)]
    users = [f"u{i}-{tag}" for i in range(12)]
    events: list[dict[str, Any]] = []
    for i, story in enumerate(stories):
        events.append({"type": "story_posted", "story_id": story, "author_id": users[i % 4],
                       "created_at": at(), "media": [media]})  # fmt: skip
    for _ in range(300):
        events.append({"type": "story_viewed", "story_id": rng.choice(stories),
                       "viewer_id": rng.choice(users), "viewed_at": at()})  # fmt: skip
    for _ in range(80):
        events.append({"type": "story_reacted", "story_id": rng.choice(stories),
                       "user_id": rng.choice(users), "reaction": "fire", "reacted_at": at()})  # fmt: skip
    for story in stories[:10]:
        events.append({"type": "highlight_added", "story_id": story, "author_id": users[0],
                       "highlight_id": "h", "at": at()})  # fmt: skip
    for story in stories[20:26]:
        events.append({"type": "story_deleted", "story_id": story, "author_id": users[0],
                       "deleted_at": at()})  # fmt: skip
    for i in range(40):
        kind = ("user_followed", "close_friend_added")[i % 2]
        a, b = rng.sample(users, 2)
        if kind == "user_followed":
            events.append({"type": kind, "follower_id": a, "followee_id": b, "at": at()})
        else:
            events.append({"type": kind, "user_id": a, "friend_id": b, "at": at()})
    for i in range(25):
        media_id = f"m{i}-{tag}"
        events.append({"type": "media_uploaded", "media_id": media_id, "author_id": users[1],
                       "object_key": f"uploads/{media_id}/original", "content_type": "image/jpeg",
                       "at": at()})  # fmt: skip
        events.append({"type": "media_transcoded", "media_id": media_id, "renditions": [media],
                       "at": at()})  # fmt: skip
    rng.shuffle(events)
    return events


def broker_records(broker: str, topics: list[str], idle: float = 2.0) -> Held:
    """Every record of `topics` by (topic, partition, offset): read until nothing new came
    for `idle` seconds (the embedded broker misreports end offsets)."""
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": "tests-archive", "enable.auto.commit": False}
    )
    held: Held = {}
    try:
        metadata = consumer.list_topics(timeout=10).topics
        consumer.assign(
            [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata[t].partitions]
        )
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for msg in consumer.consume(1000, timeout=0.2):
                last = time.monotonic()
                if msg.error() is None:
                    held[msg.topic(), msg.partition(), msg.offset()] = (
                        msg.key(),
                        msg.value(),
                        msg.timestamp()[1],
                    )
    finally:
        consumer.close()
    return held


def archived_records(reader: ArchiveReader) -> list[tuple[tuple[str, int, int], Any]]:
    """Every record of every archive file (duplicates kept), by (topic, partition, offset)."""
    found = []
    for key in reader.store.list_keys("archive/"):
        archived = parse_key(key)
        assert archived is not None, key
        for record in reader.records([archived]):
            found.append(
                (
                    (archived.topic, record.partition, record.offset),
                    (record.key, record.value, record.timestamp),
                )
            )
    return found
