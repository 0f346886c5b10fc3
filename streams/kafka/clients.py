"""confluent-kafka client configurations: every producer and consumer the project makes."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Message

# How long compaction keeps a tombstone on the changelog (set when it is created; Kafka's
# default). The engine's local state must not be older than that to replay onto (engine.py).
CHANGELOG_DELETE_RETENTION_MS = 86_400_000


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer: acks=all, ordered retries, batched for throughput.

    Delivery is retried for up to `delivery.timeout.ms` (5 minutes by default), so a broker
    that goes away for a while delays publishing instead of losing records.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 128 * 1024,  # a full queue makes produce() wait
        "compression.type": "none",
        "delivery.timeout.ms": 300_000,
        "delivery.report.only.error": True,
        # Java-compatible key hashing: every producer and the API agree on key ownership.
        "partitioner": "murmur2_random",
    }
    config.update(overrides)
    return config


def reader_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """A consumer that is assigned partitions by hand (no group, no commits)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": "storystream-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
    }
    config.update(overrides)
    return config


def engine_consumer_config(bootstrap: str, group_id: str) -> dict[str, Any]:
    """The engine's consumer-group member: commits by hand, range assignment (a partition of
    every co-partitioned topic goes to the same worker), small batches of waiting."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300_000,
        "fetch.wait.max.ms": 50,
        "queued.max.messages.kbytes": 32 * 1024,  # fetched ahead of the batches, at most
    }


def restore_consumer_config(bootstrap: str, group_id: str) -> dict[str, Any]:
    """A changelog reader assigned by hand, told when it reaches a partition's end."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }


def consume_arrived(consumer: Consumer, wait: float, most: int = 10_000) -> list[Message]:
    """What `consumer` has fetched already (at most `most`), else the first record to arrive
    within `wait` seconds: `consume(n, timeout)` waits out its whole timeout unless n arrive."""
    arrived: list[Message] = consumer.consume(most, timeout=0)
    return arrived or consumer.consume(1, timeout=wait)
