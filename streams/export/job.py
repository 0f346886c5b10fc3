"""Exports: the input events of a time range (from the broker and, below what it holds, the
archive; the very records a replay of the range applies), or the output tables (each key's
latest value), one Parquet file per topic."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.archive import ArchiveReader
from schemas.types import millis
from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import make_registry
from streams.export.arrow import TIMESTAMP, ParquetOut, record_schema
from streams.replay.job import within
from streams.replay.reader import (
    BrokerReader,
    Served,
    partition_input,
    plan_archive,
    plan_spans,
)
from streams.runtime.records import InRecord
from streams.settings import Settings
from streams.topics import BY_NAME, TOPICS, TopicSpec

KAFKA_COLUMNS = [
    pa.field("kafka_key", pa.string()),
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
    pa.field("kafka_timestamp", TIMESTAMP, nullable=False),
]
EVENT_KINDS = ("input", "pipeline")
MAX_EXAMPLES = 5


@dataclass
class ExportSummary:
    files: list[tuple[Path, int]] = field(default_factory=list)  # each file and its rows
    undecodable: int = 0
    examples: list[str] = field(default_factory=list)  # the first undecodable records, why
    sources: list[Served] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def export_events(
    settings: Settings,
    out_dir: Path,
    start: datetime | None = None,
    end: datetime | None = None,
    archive: ArchiveReader | None = None,
    deleted_below: Mapping[tuple[str, int], int] | None = None,
) -> ExportSummary:
    """`out_dir/events/{topic}.parquet` for every input topic: its events with times in
    [start, end), decoded, with their key, partition, offset and timestamp."""
    summary = ExportSummary()
    registry = make_registry(settings.schema_registry_url)
    start_ms = millis(start) if start else None
    end_ms = millis(end) if end else None
    for spec in (s for s in TOPICS if s.kind in EVENT_KINDS):
        spans = plan_spans(settings.bootstrap(), [spec.name], start_ms, deleted_below)
        plan = plan_archive(archive, spans, start_ms)
        summary.missing += plan.missing
        reader = BrokerReader(settings.bootstrap(), spans)
        try:
            streams = []
            for span in spans:
                served = Served(span.topic, span.partition)
                files = plan.files.get((span.topic, span.partition), [])
                records = partition_input(span, reader, archive, files, served)
                streams.append(
                    within(records, start_ms, end_ms)
                )  # to the end: time order is not assured
                summary.sources.append(served)
            _write(out_dir / "events" / f"{spec.name}.parquet", spec, registry, streams, summary)
        finally:
            reader.close()
    summary.sources = [s for s in summary.sources if s.read]
    return summary


def export_tables(
    settings: Settings,
    out_dir: Path,
    output_prefix: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> ExportSummary:
    """`out_dir/tables/{topic}.parquet` for every output table (of the topics under
    `output_prefix`): each key's latest value as the topic holds it now, the keys whose
    latest record is a tombstone left out; with `start`/`end`, only the rows whose latest
    record's time is in [start, end)."""
    summary = ExportSummary()
    registry = make_registry(settings.schema_registry_url)
    start_ms = millis(start) if start else None
    end_ms = millis(end) if end else None
    for spec in (s for s in TOPICS if s.kind == "output"):
        spans = plan_spans(settings.bootstrap(), [output_prefix + spec.name], None)
        reader = BrokerReader(settings.bootstrap(), spans)
        try:
            streams = [
                within(_latest(reader.records((s.topic, s.partition))), start_ms, end_ms)
                for s in spans
            ]
            _write(out_dir / "tables" / f"{spec.name}.parquet", spec, registry, streams, summary)
        finally:
            reader.close()
    return summary


def _latest(records: Iterator[InRecord]) -> Iterator[InRecord]:
    """One partition's compacted view: each key's last record, by key; tombstoned keys out."""
    latest: dict[bytes | None, InRecord] = {}
    for record in records:
        latest[record.key] = record
    for key in sorted(latest, key=lambda k: k or b""):
        if latest[key].value is not None:
            yield latest[key]


def _write(
    path: Path,
    spec: TopicSpec,
    registry: Any,
    streams: list[Iterator[InRecord]],
    summary: ExportSummary,
) -> None:
    base = BY_NAME[spec.name]
    codec = AvroCodec(base.record, registry, base.subject)
    out = ParquetOut(path, record_schema(base.record, KAFKA_COLUMNS))
    try:
        for records in streams:
            for record in records:
                try:
                    row = codec.decode_dict(record.value)
                except CodecError as exc:
                    summary.undecodable += 1
                    if len(summary.examples) < MAX_EXAMPLES:
                        summary.examples.append(
                            f"{record.topic}[{record.partition}]@{record.offset}: {exc}"
                        )
                    continue
                row["kafka_key"] = (
                    None if record.key is None else record.key.decode("utf-8", "replace")
                )
                row["kafka_partition"] = record.partition
                row["kafka_offset"] = record.offset
                row["kafka_timestamp"] = record.timestamp
                out.add(row)
    except BaseException:
        out.abort()
        raise
    out.close()
    summary.files.append((path, out.rows))
