"""What the Kafka tests check: output histories read with a chosen isolation level, duplicate
outputs, and a scenario's exact expected counts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.codecs.avro import AvroCodec
from streams.codecs.registry import make_registry
from streams.topics import lookup

Event = dict[str, Any]
Record = tuple[bytes, bytes | None]


def histories(
    broker: str, topics: Iterable[str], isolation: str = "read_committed", idle: float = 2.0
) -> dict[str, list[Record]]:
    """Every record of `topics` from the beginning, (key, value), partition by partition, as a
    consumer with `isolation.level` sees them; until nothing new came for `idle` seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": "tests-kafka-history",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    try:
        out: dict[str, list[Record]] = {topic: [] for topic in topics}
        assignment = [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in out
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        consumer.assign(assignment)
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for msg in consumer.consume(5000, timeout=0.2):
                last = time.monotonic()
                if msg.error() is None:
                    out[msg.topic()].append((msg.key(), msg.value()))
        return out
    finally:
        consumer.close()


def wait_open_transaction(broker: str, topics: Iterable[str], within: float) -> bool:
    """Whether, within `within` seconds, a partition of `topics` is seen with a transaction
    open: its end for a read_uncommitted consumer (the high watermark) past its end for a
    read_committed one (the last stable offset)."""
    consumers = [
        Consumer({"bootstrap.servers": broker, "group.id": "tests-kafka-lso", "isolation.level": i})
        for i in ("read_uncommitted", "read_committed")
    ]
    try:
        metadata = consumers[0].list_topics(timeout=10).topics
        partitions = [TopicPartition(t, p) for t in topics for p in metadata[t].partitions]
        started = time.monotonic()
        while time.monotonic() - started < within:
            for tp in partitions:
                ends = [c.get_watermark_offsets(tp, timeout=5, cached=False)[1] for c in consumers]
                if ends[0] > ends[1]:
                    return True
        return False
    finally:
        for consumer in consumers:
            consumer.close()


def duplicates(records: list[Record]) -> int:
    """Records whose key and value a topic already holds: what a replayed batch republishes."""
    counts = Counter(records)
    return sum(n - 1 for n in counts.values())


def latest(records: list[Record]) -> dict[bytes, bytes]:
    """The compacted view: last value per key, tombstoned keys left out."""
    view: dict[bytes, bytes | None] = {}
    for key, value in records:
        view[key] = value
    return {k: v for k, v in view.items() if v is not None}


@dataclass(frozen=True)
class Expected:
    """A scenario's exact outcome: views per story (the author's own excluded), distinct
    viewers per story, reactions per story."""

    total_views: dict[str, int]
    viewers: dict[str, int]
    reactions: dict[str, int]

    @classmethod
    def of(cls, chunks: list[list[Event]]) -> Expected:
        events = [e for chunk in chunks for e in chunk]
        authors = {e["story_id"]: e["author_id"] for e in events if e["type"] == "story_posted"}
        views = [
            e
            for e in events
            if e["type"] == "story_viewed" and e["viewer_id"] != authors[e["story_id"]]
        ]
        total = Counter(e["story_id"] for e in views)
        distinct = Counter(s for s, _ in {(e["story_id"], e["viewer_id"]) for e in views})
        reactions = Counter(e["story_id"] for e in events if e["type"] == "story_reacted")
        return cls(dict(total), dict(distinct), dict(reactions))


def outcome(broker: str, prefix: str, tag: str) -> Expected:
    """What the outputs under `prefix` say (their keys holding `tag`), in the form of
    `Expected`: the three topics read together and decoded in this process."""
    names = ("story-view-counts", "story-viewers", "story-reaction-counts")
    read = histories(broker, [prefix + name for name in names], idle=1.0)
    registry = make_registry(None)
    views: dict[str, Any] = {}
    for name in names:
        spec = lookup(prefix + name)
        codec = AvroCodec(spec.record, registry, spec.subject)
        views[name] = {
            key.decode(): codec.decode_dict(value)
            for key, value in latest(read[prefix + name]).items()
            if tag.encode() in key
        }
    return Expected(
        {story: value["total_views"] for story, value in views["story-view-counts"].items()},
        dict(Counter(value["story_id"] for value in views["story-viewers"].values())),
        {
            story: value["total"]
            for story, value in views["story-reaction-counts"].items()
            if value["total"]
        },
    )


def wait_outcome(
    broker: str, prefix: str, tag: str, expected: Expected, seconds: float
) -> Expected:
    """Poll the outputs until they equal `expected` (or time runs out: the last reading)."""
    deadline = time.monotonic() + seconds
    while True:
        found = outcome(broker, prefix, tag)
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(2)
