"""The analysts' commands: `archive`, `replay` and `export`."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from streams.cli.broker import need_broker
from streams.settings import Settings, parse_duration

if TYPE_CHECKING:
    from connectors.archive import ArchiveReader
    from streams.replay.reader import Served


def cmd_archive(settings: Settings, args: argparse.Namespace) -> int:
    from streams.kafka.admin import create_topics
    from streams.worker.archiver import Archiver, archive_configured

    need_broker(settings)
    if not archive_configured(settings):
        raise SystemExit(
            "storystream archive: no object store: set STORYSTREAM_S3_ENDPOINT_URL with "
            "STORYSTREAM_S3_ACCESS_KEY_ID and STORYSTREAM_S3_SECRET_ACCESS_KEY, or start "
            "`storystream dev` in this directory (or set STORYSTREAM_DATA_DIR to its data)"
        )
    create_topics(settings)
    archiver = Archiver(settings)
    signal.signal(signal.SIGINT, lambda *_: archiver.stop())
    signal.signal(signal.SIGTERM, lambda *_: archiver.stop())
    bucket = settings.archive_bucket or settings.s3_bucket
    print(f"archiving into s3://{bucket}/archive/; Ctrl-C stops", file=sys.stderr, flush=True)
    archiver.run()
    stats = archiver.writer.stats
    print(
        f"archived {stats.records} records in {stats.files} files "
        f"({stats.already_archived} already archived, {stats.expired} past the retention)"
    )
    return 0


def _utc(text: str | None, flag: str, command: str = "replay") -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"storystream {command}: {flag} {text!r} is not ISO-8601") from None
    if value.utcoffset() is None:
        raise SystemExit(f"storystream {command}: {flag} {text!r} needs a UTC offset (Z)")
    return value.astimezone(UTC)


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from connectors.object_store import ObjectStoreError
    from streams.replay import replay

    need_broker(settings)
    start, end = _utc(args.start, "--from"), _utc(args.end, "--to")
    if start and end and end <= start:
        raise SystemExit("storystream replay: --to must be after --from")
    prefix = args.output_prefix or datetime.now(UTC).strftime("replay-%Y%m%dT%H%M%SZ-")
    state_dir = Path(args.state_dir) if args.state_dir else None
    if state_dir is not None and state_dir.exists() and any(state_dir.iterdir()):
        raise SystemExit(f"storystream replay: --state-dir {state_dir} is not empty")
    lateness = parse_duration(args.max_lateness) if args.max_lateness else None
    try:
        summary = replay(
            settings,
            prefix,
            start,
            end,
            state_dir,
            archive=_archive(settings),
            max_lateness=lateness,
        )
    except ObjectStoreError as exc:
        raise SystemExit(f"storystream replay: {exc}") from None
    watermark = summary.watermark.isoformat() if summary.watermark else "none"
    print(
        f"replayed {summary.records} records ({summary.read} read) into {prefix}* topics: "
        f"{summary.outputs} outputs, watermark {watermark}"
    )
    _print_sources(summary.sources, summary.missing)
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from connectors.object_store import ObjectStoreError
    from streams.export import export_events, export_tables

    need_broker(settings)
    start, end = _utc(args.start, "--from", "export"), _utc(args.end, "--to", "export")
    if start and end and end <= start:
        raise SystemExit("storystream export: --to must be after --from")
    if args.output_prefix and not args.tables:
        raise SystemExit("storystream export: --output-prefix goes with --tables")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"storystream export: --out {out} is not a directory")
    try:
        if args.tables:
            summary = export_tables(settings, out, args.output_prefix, start, end)
        else:
            summary = export_events(settings, out, start, end, archive=_archive(settings))
    except ObjectStoreError as exc:
        raise SystemExit(f"storystream export: {exc}") from None
    for path, rows in summary.files:
        print(f"{path}\t{rows} rows")
    _print_sources(summary.sources, summary.missing)
    if summary.undecodable:
        print(f"{summary.undecodable} undecodable records left out:", file=sys.stderr)
        for example in summary.examples:
            print(f"  {example}", file=sys.stderr)
    return 0


def _archive(settings: Settings) -> ArchiveReader | None:
    """The archive's reader, when an object store is configured."""
    from connectors.archive import ArchiveReader
    from streams.worker.archiver import archive_configured, archive_store

    if not archive_configured(settings):
        return None
    return ArchiveReader(archive_store(settings, create_bucket=False))


def _print_sources(sources: Sequence[Served], missing: Sequence[str]) -> None:
    """Which source served which offsets: each partition the archive served, then a count."""
    archived = [s for s in sources if s.archive[2]]
    for served in archived:
        print(f"  {served}")
    if archived:
        print(f"  other partitions ({len(sources) - len(archived)}): the broker alone")
    for line in missing:
        print(f"  missing: {line}")
