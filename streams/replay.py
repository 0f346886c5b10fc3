"""`storystream replay`: re-run the event log through the processors, deterministically.

One process owns every partition: the inputs (optionally a time range of them) are read to
their end, merged in a fixed order (event time, then topic, partition, offset), and applied
through the same stage handlers as the workers, with every repartition delivered in process.
The clock is the input's watermark (event time), so the same log always yields the same
outputs, written to a fresh, named set of output topics (`{prefix}{topic}`).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from processors.expiry import EventTimeClock
from schemas.types import from_millis, millis
from streams.engine import Engine, InRecord, PartitionContext
from streams.handlers.common import encode_message
from streams.internal_topics import STAGES, stage_topic
from streams.kafka import producer_config
from streams.partitioning import partition_for
from streams.settings import Settings
from streams.store import PartitionStore
from streams.topics import TOPICS, TopicSpec

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


class ReplayRunner:
    """Drives an engine's handlers by hand: all partitions, in-process forwards, event time."""

    def __init__(
        self, settings: Settings, build: Callable[..., Engine], state_dir: Path, output_prefix: str
    ) -> None:
        self._clock = EventTimeClock()
        self.engine = build(
            settings,
            lambda: self._clock.now(),
            "replay",
            state_dir=state_dir,
            output_prefix=output_prefix,
        )
        self.settings = settings
        self._stores = {p: PartitionStore(state_dir / f"p{p}") for p in range(settings.partitions)}
        self._contexts: dict[int, PartitionContext] = {}
        self._handlers = {topic: h for h in self.engine.handlers for topic in h.topics}
        self._sequence = 0
        for stage in STAGES:
            topic = stage_topic(settings, stage)
            self.engine.route_local(stage, self._deliverer(topic))

    def _context(self, partition: int) -> PartitionContext:
        ctx = self._contexts.get(partition)
        if ctx is None or ctx.now != self._clock.now():
            ctx = PartitionContext(
                self.engine, partition, self._stores[partition], self._clock.now()
            )
            self._contexts[partition] = ctx
        return ctx

    def _deliverer(self, topic: str) -> Callable[[PartitionContext, str, Any], None]:
        def deliver(_: PartitionContext, key: str, message: Any) -> None:
            self._sequence += 1
            partition = partition_for(key, self.settings.partitions)
            record = InRecord(
                topic,
                partition,
                self._sequence,
                key.encode(),
                encode_message(message),
                millis(self._clock.now()),
            )
            handler = self._handlers.get(topic)
            if handler is not None:  # the objects stage has no handler: no side effects here
                handler.handle(self._context(partition), [record])

        return deliver

    def _tick(self) -> None:
        for partition in range(self.settings.partitions):
            ctx = self._context(partition)
            for handler in self.engine.handlers:
                handler.tick(ctx)

    def run(
        self, records: list[InRecord], until: datetime | None, progress: Callable[[int, int], None]
    ) -> datetime | None:
        priority = {spec.name: i for i, spec in enumerate(TOPICS)}
        records.sort(key=lambda r: (r.timestamp, priority.get(r.topic, 99), r.partition, r.offset))
        for done, record in enumerate(records, start=1):
            before = self._clock.now()
            self._clock = self._clock.observe(from_millis(record.timestamp))
            if self._clock.now() != before:
                self._tick()
            handler = self._handlers.get(record.topic)
            if handler is not None:
                handler.handle(self._context(record.partition), [record])
            if done % 1000 == 0 or done == len(records):
                progress(done, len(records))
                for store in self._stores.values():
                    store.flush()  # a fresh state directory: no changelog to keep in step
        if until is not None:
            self._clock = self._clock.observe(until)
            self._tick()
        return self._clock.watermark

    def close(self) -> None:
        for store in self._stores.values():
            store.flush()
            store.close()


def _create_outputs(settings: Settings, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap()})
    outputs: list[TopicSpec] = [s for s in TOPICS if s.kind in ("output", "dead-letters")]
    existing = admin.list_topics(timeout=10).topics
    taken = [prefix + s.name for s in outputs if prefix + s.name in existing]
    if taken:
        raise SystemExit(
            f"storystream replay: output topics exist already ({', '.join(taken)}): "
            "choose a fresh --output-prefix"
        )
    retention = int(settings.input_retention.total_seconds() * 1000)
    futures = admin.create_topics(
        [
            NewTopic(
                prefix + s.name,
                settings.partitions,
                settings.replication_factor,
                config=s.config(retention),
            )
            for s in outputs
        ]
    )
    for future in futures.values():
        future.result()


def replay(
    settings: Settings,
    output_prefix: str,
    start: datetime | None = None,
    end: datetime | None = None,
    state_dir: Path | None = None,
    build: Callable[..., Engine] | None = None,
) -> ReplaySummary:
    """Replay the inputs in [start, end) into `{output_prefix}{topic}` topics."""
    from streams.worker import build_engine

    _create_outputs(settings, output_prefix)
    inputs = [s.name for s in TOPICS if s.kind in ("input", "pipeline")]
    records = _read_inputs(
        settings.bootstrap(), inputs, millis(start) if start else None, millis(end) if end else None
    )
    show = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            width = 30
            filled = width * done // max(total, 1)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}")
            if done == total:
                sys.stderr.write("\n")

    with tempfile.TemporaryDirectory(prefix="storystream-replay-") as tmp:
        runner = ReplayRunner(
            settings, build or build_engine, state_dir or Path(tmp), output_prefix
        )
        producer = Producer(producer_config(settings.bootstrap()))
        runner.engine.attach_producer(producer)
        try:
            watermark = runner.run(records, end, progress)
        finally:
            runner.close()
            if producer.flush(60) > 0:
                raise RuntimeError("replay outputs not acknowledged by the broker")
    return ReplaySummary(len(records), output_prefix, watermark)
