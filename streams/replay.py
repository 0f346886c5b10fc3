"""`storystream replay`: the event log re-run through the topology in this process, in event
time, into a fresh set of output topics."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from schemas.types import millis
from streams.admin import create_topics
from streams.kafka import producer_config
from streams.registry import make_registry
from streams.runtime.inprocess import InProcessDriver
from streams.runtime.records import InRecord
from streams.runtime.routing import OutRecord
from streams.settings import Settings
from streams.stages.topology import build_topology
from streams.topics import TOPICS, output_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySummary:
    records: int
    output_prefix: str
    watermark: datetime | None


def _read_inputs(
    bootstrap: str, topics: list[str], start_ms: int | None, end_ms: int | None, idle: float = 2.0
) -> list[InRecord]:
    """Every record of `topics` within [start, end), read until nothing new for `idle` s."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "storystream-replay",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10).topics
        assignment = [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics
            if t in metadata
            for p in metadata[t].partitions
        ]
        consumer.assign(assignment)
        records: list[InRecord] = []
        last = time.monotonic()
        while time.monotonic() - last < idle:
            batch = consumer.consume(10_000, timeout=0.2)
            if batch:
                last = time.monotonic()
            for msg in batch:
                if msg.error() is not None:
                    continue
                ts = msg.timestamp()[1]
                if (start_ms is not None and ts < start_ms) or (
                    end_ms is not None and ts >= end_ms
                ):
                    continue
                records.append(
                    InRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), ts)
                )
        return records
    finally:
        consumer.close()


def replay(
    settings: Settings,
    output_prefix: str,
    start: datetime | None = None,
    end: datetime | None = None,
    state_dir: Path | None = None,
) -> ReplaySummary:
    """Replay the inputs in [start, end) into `{output_prefix}{topic}` topics."""
    from streams.worker import policy_of

    create_topics(settings, output_topics(output_prefix), fresh=True)
    registry = make_registry(settings.schema_registry_url)
    topology = build_topology(registry, settings.app_id, settings.partitions, output_prefix)
    inputs = [s.name for s in TOPICS if s.kind in ("input", "pipeline")]
    records = _read_inputs(
        settings.bootstrap(), inputs, millis(start) if start else None, millis(end) if end else None
    )
    records.sort(
        key=lambda r: (
            r.timestamp,
            topology.rank(r.topic) if r.topic in topology.topics else 99,
            r.partition,
            r.offset,
        )
    )
    producer = Producer(producer_config(settings.bootstrap()))

    def produce(record: OutRecord, timestamp: int) -> None:
        while True:
            try:
                producer.produce(
                    record.topic, record.value, record.key, record.partition, timestamp=timestamp
                )
                return
            except BufferError:
                producer.poll(0.05)

    show = sys.stderr.isatty()
    with tempfile.TemporaryDirectory(prefix="storystream-replay-") as tmp:
        driver = InProcessDriver(
            topology, registry, policy_of(settings), state_dir or Path(tmp), sink=produce
        )
        try:
            driver.pipe(records)
            if end is not None:
                driver.advance(end)
        finally:
            driver.close()
            if producer.flush(60) > 0:
                raise RuntimeError("replay outputs not acknowledged by the broker")
    if show:
        sys.stderr.write(f"replayed {len(records):,} records\n")
    return ReplaySummary(len(records), output_prefix, driver.now)
