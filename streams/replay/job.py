"""The replay job: plan the input's spans, stream them merged through the in-process driver,
publish the outputs stamped with event time."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer

from connectors.archive import ArchiveReader
from schemas.types import from_millis, millis
from streams.codecs.registry import make_registry
from streams.kafka.admin import create_topics
from streams.kafka.clients import producer_config
from streams.policy import policy_of
from streams.replay.progress import Progress
from streams.replay.reader import (
    BrokerReader,
    Served,
    merged,
    partition_input,
    plan_archive,
    plan_spans,
)
from streams.runtime.collector import batch_collection
from streams.runtime.inprocess import InProcessDriver
from streams.runtime.records import InRecord
from streams.runtime.routing import OutRecord
from streams.settings import Settings
from streams.stages.topology import build_topology
from streams.topics import output_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySummary:
    records: int  # input records applied
    read: int  # input records read (those outside the range included)
    output_prefix: str
    watermark: datetime | None
    outputs: int
    sources: tuple[Served, ...] = ()  # what the archive and the broker gave, per partition
    missing: tuple[str, ...] = ()  # input offsets neither the broker nor the archive held


def replay(
    settings: Settings,
    output_prefix: str,
    start: datetime | None = None,
    end: datetime | None = None,
    state_dir: Path | None = None,
    progress: Progress | None = None,
    max_lateness: timedelta | None = None,
    archive: ArchiveReader | None = None,
    deleted_below: Mapping[tuple[str, int], int] | None = None,
) -> ReplaySummary:
    """Replay the inputs with event times in [start, end) into `{output_prefix}{topic}` topics.

    The input is what the broker holds when the replay starts, and below it what `archive`
    holds of the range; records published meanwhile are not read. Time is event time: stories
    expire as the input's time passes them, and at the end time, when given. Every partition
    is read to its end, as records may be out of time order; with `max_lateness`, only until
    a record that much later than `end` (for a log known to be in time order within that).
    `deleted_below` is plan_spans' test seam (offsets the broker is to treat as deleted)."""
    progress = progress or Progress()
    progress.phase("planning")
    create_topics(settings, output_topics(output_prefix), fresh=True)
    registry = make_registry(settings.schema_registry_url)
    topology = build_topology(registry, settings.app_id, settings.partitions, output_prefix)
    inputs = [t for t in topology.topics if t in topology.external_inputs]
    start_ms = millis(start) if start else None
    end_ms = millis(end) if end else None
    spans = plan_spans(settings.bootstrap(), inputs, start_ms, deleted_below)
    plan = plan_archive(archive, spans, start_ms)
    for line in plan.missing:
        log.warning("%s: not replayed", line)
    archived = {tp: files for tp, files in plan.files.items() if files}
    # Offsets to read, an upper bound for the archive's (its files interleave by hour).
    total = sum(span.size for span in spans) + sum(
        min(s.first, max(f.last + 1 for f in archived[s.topic, s.partition]))
        - archived[s.topic, s.partition][0].first
        for s in spans
        if (s.topic, s.partition) in archived
    )
    producer = Producer(producer_config(settings.bootstrap()))
    published = 0

    def publish(record: OutRecord, timestamp: int) -> None:
        nonlocal published
        published += 1
        while True:
            try:
                producer.produce(
                    record.topic, record.value, record.key, record.partition, timestamp=timestamp
                )
                return
            except BufferError:
                producer.poll(0.05)

    reader = BrokerReader(settings.bootstrap(), spans)
    served = {(s.topic, s.partition): Served(s.topic, s.partition) for s in spans}
    applied = 0

    def read() -> int:
        return sum(tally.read for tally in served.values())

    with tempfile.TemporaryDirectory(prefix="storystream-replay-") as tmp:
        driver = InProcessDriver(
            topology,
            registry,
            policy_of(settings),
            state_dir or Path(tmp),
            sink=publish,
        )
        try:
            progress.phase("replaying", total)
            late = (
                None
                if end_ms is None or max_lateness is None
                else end_ms + int(max_lateness.total_seconds() * 1000)
            )
            streams = [
                until_late(
                    partition_input(
                        s,
                        reader,
                        archive,
                        archived.get((s.topic, s.partition), []),
                        served[s.topic, s.partition],
                    ),
                    late,
                )
                for s in spans
                if s.size or (s.topic, s.partition) in archived
            ]
            in_range = in_event_order(streams, topology.rank, start_ms, end_ms)

            def counted() -> Iterator[InRecord]:
                nonlocal applied
                for record in in_range:
                    applied += 1
                    if applied % 1024 == 0:
                        progress.update(read(), f"{applied:,} in range applied")
                    yield record

            with batch_collection():
                driver.pipe(counted())
                if end is not None:
                    driver.advance(end)
            from_archive = sum(tally.archive[2] for tally in served.values())
            progress.done(
                read(), f"{applied:,} in range applied; {from_archive:,} read from the archive"
            )
        finally:
            reader.close()
            driver.close()
    progress.phase("publishing", published)
    if producer.flush(120) > 0:
        raise RuntimeError("replay outputs not acknowledged by the broker")
    progress.done(published)
    watermark = from_millis(driver.watermark_ms) if driver.watermark_ms is not None else None
    sources = tuple(tally for tally in served.values() if tally.read)
    return ReplaySummary(
        applied, read(), output_prefix, watermark, published, sources, tuple(plan.missing)
    )


def until_late(records: Iterator[InRecord], late_ms: int | None) -> Iterator[InRecord]:
    """A partition's records until one is `late_ms` or later (the rest are past the range)."""
    if late_ms is None:
        return records
    return _until(records, late_ms)


def _until(records: Iterator[InRecord], late_ms: int) -> Iterator[InRecord]:
    for record in records:
        if record.timestamp >= late_ms:
            return
        yield record


def in_event_order(
    streams: Iterable[Iterator[InRecord]],
    rank: Callable[[str], int],
    start_ms: int | None,
    end_ms: int | None,
) -> Iterator[InRecord]:
    """The records of every partition's stream with times in [start_ms, end_ms), merged in
    event time order (`merged`).

    A record out of the range is dropped within its own stream, before the merge: a log is not
    in time order (a record published earlier may be stamped later), and a head past the range
    would hold back its partition's records in range until every other partition had passed
    it. Those records then came last, behind events later than them (a post behind its own
    views, which had given it up by then)."""
    return merged((within(s, start_ms, end_ms) for s in streams), rank)


def within(
    records: Iterator[InRecord], start_ms: int | None, end_ms: int | None
) -> Iterator[InRecord]:
    """The records with times in [start_ms, end_ms)."""
    if start_ms is None and end_ms is None:
        return records
    return _within(records, start_ms, end_ms)


def _within(
    records: Iterator[InRecord], start_ms: int | None, end_ms: int | None
) -> Iterator[InRecord]:
    for record in records:
        if (start_ms is None or record.timestamp >= start_ms) and (
            end_ms is None or record.timestamp < end_ms
        ):
            yield record
