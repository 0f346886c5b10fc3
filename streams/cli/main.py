"""The `storystream` command line (contract section 2)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from streams.cli import devstate
from streams.cli.broker import need_broker
from streams.cli.history import cmd_archive, cmd_export, cmd_replay
from streams.codecs.registry import RegistryError
from streams.settings import Settings

if TYPE_CHECKING:
    pass


def _env(name: str) -> str:
    return f"(env STORYSTREAM_{name})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storystream",
        description="Event-sourced stream processing for ephemeral stories.",
    )
    parser.add_argument("--broker", help=f"Kafka bootstrap servers {_env('BROKER')}")
    data_dir_help = f"local state directory {_env('DATA_DIR')}"
    parser.add_argument("--data-dir", help=data_dir_help)
    parser.add_argument("--partitions", type=int, help=f"partitions per topic {_env('PARTITIONS')}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="the whole system on this machine, embedded defaults")
    dev.add_argument("--ttl", help=f"story time-to-live, e.g. 24h {_env('STORY_TTL')}")
    dev.add_argument("--grace", help=f"purge delay after expiry {_env('EXPIRY_GRACE')}")
    dev.add_argument("--api-port", type=int, help=f"HTTP API port {_env('API_PORT')}")
    dev.add_argument(
        "--broker-port",
        type=int,
        default=9092,
        help="embedded broker port (default 9092, or a free one if taken)",
    )
    dev.add_argument("--workers", type=int, default=1, help="number of worker processes")
    dev.add_argument(
        "--broker-impl",
        choices=("tansu", "kafka"),
        help="the broker to start: tansu (embedded, in memory; the default) or kafka (Apache "
        f"Kafka on disk under the data directory; needs Java 17+ and Maven) {_env('BROKER_IMPL')}",
    )

    worker = sub.add_parser("worker", help="one worker against STORYSTREAM_BROKER")
    worker.add_argument("--api-port", type=int, help=f"HTTP API port {_env('API_PORT')}")
    worker.add_argument("--ttl", help=f"story time-to-live {_env('STORY_TTL')}")
    worker.add_argument("--grace", help=f"purge delay after expiry {_env('EXPIRY_GRACE')}")
    worker.add_argument(
        "--api-only",
        dest="worker_engine",
        action="store_const",
        const=False,
        help=f"serve the HTTP API without the stream engine {_env('WORKER_ENGINE')}",
    )
    worker.add_argument(
        "--processes",
        dest="worker_processes",
        type=int,
        help="worker processes on this host (default 1), each a member of the consumer group "
        "with API_PORT + its index, DATA_DIR/process-<index> and 1/N of STATE_MEMORY_MB; one "
        f"that dies is restarted {_env('WORKER_PROCESSES')}",
    )

    topics = sub.add_parser("topics", help="topic administration")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    topics_sub.add_parser("create", help="create every topic of the contract (idempotent)")

    publish = sub.add_parser("publish", help="validate JSON lines and publish them as Avro")
    publish.add_argument("file", help="JSON-lines file, or - for standard input")
    publish.add_argument(
        "--skip-invalid",
        action="store_true",
        help="exit 0 even when some lines are invalid (they are still skipped)",
    )
    publish.add_argument(
        "--processes",
        type=int,
        default=0,
        help="validation/encoding processes (default: cores + 1)",
    )

    post = sub.add_parser(
        "post",
        help="upload a photo or video and post it as a story",
        description="The object store is STORYSTREAM_S3_ENDPOINT_URL, STORYSTREAM_S3_BUCKET, "
        "STORYSTREAM_S3_ACCESS_KEY_ID and STORYSTREAM_S3_SECRET_ACCESS_KEY (or those of a "
        "running `storystream dev`).",
    )
    post.add_argument("--author", required=True, help="the author's user id")
    post.add_argument("--media", required=True, metavar="PATH", help="the image or video file")
    post.add_argument(
        "--audience", choices=("followers", "close_friends", "public"), default="followers"
    )
    post.add_argument("--story-id", help="the story's id (default: a new one)")
    post.add_argument("--media-id", help="the media's id (default: a new one)")
    post.add_argument("--ttl", help=f"story time-to-live, sets expires_at {_env('STORY_TTL')}")
    post.add_argument(
        "--wait",
        action="store_true",
        help="wait for the transcode (asking the API as the author, with a token signed with "
        "STORYSTREAM_API_SECRET): print the story's renditions and exit 0, or its reason and "
        "exit 1 when the media failed, or exit 3 after --timeout",
    )
    post.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long --wait waits (default 300)",
    )
    post.add_argument(
        "--api-url",
        help="the API --wait asks (default: that of a running `storystream dev`, else "
        f"http://127.0.0.1:API_PORT) {_env('API_URL')}",
    )

    consume = sub.add_parser("consume", help="decode a topic to JSON lines")
    consume.add_argument("topic")
    consume.add_argument("--from-beginning", action="store_true")
    consume.add_argument(
        "--until-idle", type=float, metavar="SECONDS", help="exit after SECONDS with nothing new"
    )
    consume.add_argument(
        "--latest-per-key",
        action="store_true",
        help="print the compacted view (last value per key, tombstones hide keys) "
        "when reading stops",
    )

    replay = sub.add_parser("replay", help="re-run the event log into fresh output topics")
    replay.add_argument("--from", dest="start", help="first event time (ISO-8601, inclusive)")
    replay.add_argument(
        "--to",
        dest="end",
        help="end event time (ISO-8601, exclusive); the clock advances to it, expiring what is due",
    )
    replay.add_argument(
        "--output-prefix", help="prefix of the fresh output topics (default replay-<UTC time>-)"
    )
    replay.add_argument("--state-dir", help="fresh state directory (default: a temporary one)")
    replay.add_argument(
        "--max-lateness",
        help="read a partition only until a record this much later than --to (e.g. 1h; "
        "default: to its end, records may be out of time order)",
    )
    replay.add_argument("--ttl", help=f"story time-to-live {_env('STORY_TTL')}")
    replay.add_argument("--grace", help=f"purge delay after expiry {_env('EXPIRY_GRACE')}")

    archive = sub.add_parser(
        "archive",
        help="archive every input topic into the object store, continuously",
        description="Writes every record of the input topics to the object store under "
        "archive/{topic}/date=YYYY-MM-DD/hour=HH/ (Avro container files named by partition and "
        "first and last offset), exactly once across restarts; runs until Ctrl-C. The object "
        "store is STORYSTREAM_S3_ENDPOINT_URL and its keys (or those of a running `storystream "
        "dev`).",
    )
    archive.add_argument("--bucket", help=f"bucket (default: S3_BUCKET's) {_env('ARCHIVE_BUCKET')}")
    archive.add_argument(
        "--flush-records",
        type=int,
        help=f"records a file holds at most (default 50000) {_env('ARCHIVE_FLUSH_RECORDS')}",
    )
    archive.add_argument(
        "--flush-interval",
        help=f"a file is written once open this long (default 5m) {_env('ARCHIVE_FLUSH_INTERVAL')}",
    )
    archive.add_argument(
        "--retention",
        help=f"files of hours older than this are deleted (default: kept) "
        f"{_env('ARCHIVE_RETENTION')}",
    )

    export = sub.add_parser(
        "export",
        help="write events or output tables of a time range as Parquet",
        description="Writes DIR/events/{topic}.parquet (each input topic's events, decoded, "
        "read from the broker and, for what it no longer holds, the archive) or "
        "DIR/tables/{topic}.parquet (each output table: the latest value per key as the topic "
        "holds it now), for DuckDB, pandas and Spark.",
    )
    what = export.add_mutually_exclusive_group()
    what.add_argument("--events", action="store_true", help="the input events (the default)")
    what.add_argument("--tables", action="store_true", help="the compacted output tables")
    export.add_argument(
        "--from",
        dest="start",
        help="first time (ISO-8601, inclusive): an event's time, or a table row's last change",
    )
    export.add_argument("--to", dest="end", help="end time (ISO-8601, exclusive)")
    export.add_argument("--out", required=True, metavar="DIR", help="where to write the files")
    export.add_argument(
        "--output-prefix",
        default="",
        help="with --tables: the prefix of the output topics (a replay's, say)",
    )

    token = sub.add_parser("token", help="print a signed API token for a user")
    token.add_argument("user_id")
    for command in sub.choices.values():  # also after the command (`dev --data-dir DIR`)
        command.add_argument("--data-dir", default=argparse.SUPPRESS, help=data_dir_help)
    return parser


def build_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the flags given."""
    overrides: dict[str, Any] = {}
    for flag, field in (
        ("broker", "broker"),
        ("data_dir", "data_dir"),
        ("partitions", "partitions"),
        ("ttl", "story_ttl"),
        ("grace", "expiry_grace"),
        ("api_port", "api_port"),
        ("api_url", "api_url"),
        ("bucket", "archive_bucket"),
        ("flush_records", "archive_flush_records"),
        ("flush_interval", "archive_flush_interval"),
        ("retention", "archive_retention"),
        ("broker_impl", "broker_impl"),
        ("worker_engine", "worker_engine"),
        ("worker_processes", "worker_processes"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    settings = Settings(**overrides)
    return devstate.resolve(settings)


def cmd_topics_create(settings: Settings, args: argparse.Namespace) -> int:
    from streams.kafka.admin import create_topics

    need_broker(settings)
    for result in create_topics(settings):
        state = "created" if result.created else "exists"
        print(f"{result.name}\t{result.partitions} partitions\t{state}")
    return 0


def _open_input(name: str) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb")
    except OSError as exc:
        raise SystemExit(f"storystream publish: cannot read {name}: {exc.strerror}") from None


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    from streams.publish.publisher import Progress, default_processes, publish_stream

    bootstrap = need_broker(settings)
    processes = args.processes or default_processes()
    with _open_input(args.file) as stream:
        summary = publish_stream(
            stream,
            bootstrap,
            story_ttl=settings.story_ttl,
            registry_url=settings.schema_registry_url,
            processes=processes,
            progress=Progress(sys.stderr.isatty()),
        )
    for invalid in summary.invalid:
        print(f"invalid: {invalid}", file=sys.stderr)
    for failure in summary.failed:
        print(f"delivery failed: {failure}", file=sys.stderr)
    print(summary)
    if summary.failed:
        return 1
    return 1 if summary.invalid and not args.skip_invalid else 0


def cmd_consume(settings: Settings, args: argparse.Namespace) -> int:
    from streams.cli.consume import latest_per_key, read_topic
    from streams.codecs.registry import make_registry
    from streams.topics import lookup

    bootstrap = need_broker(settings)
    try:
        spec = lookup(args.topic)
    except ValueError as exc:
        raise SystemExit(f"storystream consume: {exc}") from None
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    records = read_topic(
        spec,
        bootstrap,
        make_registry(settings.schema_registry_url),
        from_beginning=args.from_beginning or args.latest_per_key,
        until_idle=args.until_idle,
        stop=stopping.is_set,
    )
    out = sys.stdout
    if args.latest_per_key:
        for record in latest_per_key(records):
            out.write(record.as_json() + "\n")
    else:
        for record in records:
            out.write(record.as_json() + "\n")
            out.flush()
    return 0


def cmd_post(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from streams.api.auth import issue_token
    from streams.cli.post import PostError, WaitTimeout, post_story, wait_for_story

    need_broker(settings)
    if args.timeout <= 0:
        raise SystemExit("storystream post: --timeout must be a positive number of seconds")
    try:
        posted = post_story(
            settings,
            Path(args.media),
            args.author,
            audience=args.audience,
            story_id=args.story_id,
            media_id=args.media_id,
        )
    except PostError as exc:
        print(f"storystream post: {exc}", file=sys.stderr)
        return 1
    if not args.wait:
        print(json.dumps(posted.as_dict()))
        return 0
    # Polled through the API, as the author: what the author's client is shown, wherever the
    # story's partition is, with no consumer or offsets of this command's own.
    api = settings.api_url or devstate.api_url(settings) or settings.advertised_api_url()
    secret = settings.api_secret.get_secret_value()
    token = issue_token(args.author, secret, datetime.now(UTC))  # checked by post_story
    try:
        story = wait_for_story(api, token, posted.story_id, args.timeout)
    except PostError as exc:
        print(json.dumps(posted.as_dict()))
        print(f"storystream post: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, WaitTimeout) else 1
    done = {
        **posted.as_dict(),
        "status": story.get("status"),
        "renditions": story.get("renditions"),
    }
    if story.get("status") == "failed":
        done["error"] = story.get("error")
        print(json.dumps(done))
        print(
            f"storystream post: the media of story {posted.story_id} failed: {story.get('error')}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(done))
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from streams.api.auth import issue_token

    try:
        secret = settings.api_secret.get_secret_value()
        now = datetime.now(UTC)
        print(issue_token(args.user_id, secret, now, audience=settings.api_audience))
    except ValueError as exc:
        raise SystemExit(f"storystream token: {exc}") from None
    return 0


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from streams.cli.dev import run_dev

    embedded = not settings.broker and settings.broker_impl == "tansu"
    if settings.processing_guarantee == "exactly_once" and embedded:
        raise SystemExit(
            "storystream dev: PROCESSING_GUARANTEE=exactly_once needs a Kafka broker with "
            "transactions (--broker-impl kafka, or set STORYSTREAM_BROKER): the embedded "
            "broker accepts transactions but does not hide aborted records from read_committed "
            "consumers"
        )
    return run_dev(settings, broker_port=args.broker_port, workers=args.workers)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    need_broker(settings)
    if settings.worker_processes > 1:
        from streams.cli.worker_pool import run_processes

        return run_processes(settings)
    from streams.worker.build import run_worker

    return run_worker(settings)


COMMANDS = {
    "archive": cmd_archive,
    "export": cmd_export,
    "replay": cmd_replay,
    "worker": cmd_worker,
    "dev": cmd_dev,
    "publish": cmd_publish,
    "consume": cmd_consume,
    "post": cmd_post,
    "token": cmd_token,
}


def main(argv: list[str] | None = None, *, quick_exit: bool = False) -> int:
    """Run one command; its exit code. With `quick_exit` (the console script), `publish` ends
    the process itself once its output is flushed (`_exit_now`)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = build_settings(args)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"storystream: invalid configuration: {errors}", file=sys.stderr)
        return 2
    command = cmd_topics_create if args.command == "topics" else COMMANDS[args.command]
    try:
        code = command(settings, args)
    except KeyboardInterrupt:
        return 130
    except RegistryError as exc:  # unreachable or refusing: no input is to blame
        print(f"storystream: {exc}", file=sys.stderr)
        return 1
    if quick_exit and args.command == "publish":
        _exit_now(code)
    return code


def entry() -> int:
    """The `storystream` console script."""
    return main(quick_exit=True)


def _exit_now(code: int) -> NoReturn:
    """End the process once its output is flushed, skipping the interpreter's teardown.

    After `publish` that teardown (freeing every module and object of a large heap, and the
    flushed producer's destroy) took ~0.2 s, some 6% of publishing 500k lines.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(entry())
