"""The whole worker end to end, measured from outside through the contract only.

    python -m bench.e2e [--stories 2000] [--views 200000] [--users 20000] [--follows 2]
                        [--brokers tansu,kafka] [--processes 1,2]

On each broker asked for (a fresh embedded one, a fresh single-node Apache Kafka, or
STORYSTREAM_BROKER when set) and one `storystream worker --processes N` with every stage
running, for each N asked for (a fresh broker each). Set up: users follow authors, the authors
post ready stories (fanned out to trays), all processed first. Then the views are published
with `storystream publish FILE` while the worker runs, timed from the start of the publish
until `story-view-counts` accounts for every view, and until the worker has committed the tray
stage's seen marks for every first view (its `storystream_events_committed_total`). Baseline,
in the same run: a bare consume of the same view records with a fastavro decode of each.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, TopicPartition

from bench.harness import WorkerProcess, broker, brokers_argument, settled, write_json
from schemas.avro import current_schemas
from streams.kafka.admin import create_topics
from streams.kafka.clients import reader_config
from streams.kafka.offsets import end_offsets
from streams.settings import Settings
from streams.topics import stage_topic

PARTITIONS = 4
HEADER = 5  # magic byte and schema id


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate(
    stories: int, views: int, users: int, follows: int, seed: int = 11
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Set-up events (follows, then ready posts), views in time order (half of them of authors
    the viewer follows, one in five a repeat), and how many distinct (story, viewer) pairs the
    views hold (each makes one seen mark in the viewer's tray)."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    authors = max(stories // 10, 1)
    following: list[list[int]] = [rng.sample(range(authors), follows) for _ in range(users)]
    setup: list[dict[str, Any]] = [
        {"type": "user_followed", "follower_id": f"user-{u}", "followee_id": f"author-{a}",
         "at": _iso(now - timedelta(hours=2))}
        for u, followed in enumerate(following) for a in followed
    ]  # fmt: skip
    setup += [
        {"type": "story_posted", "story_id": f"story-{s}", "author_id": f"author-{s % authors}",
         "created_at": _iso(now - timedelta(hours=1)), "expires_at": _iso(now + timedelta(days=1)),
         "media": [{"name": "1080p", "url": f"https://cdn.example/{s}.jpg", "width": 1080,
                    "height": 1920, "content_type": "image/jpeg"}]}
        for s in range(stories)
    ]  # fmt: skip
    by_author = [[s for s in range(stories) if s % authors == a] for a in range(authors)]
    pairs: set[tuple[int, int]] = set()
    seen_by: list[list[int]] = [[] for _ in range(stories)]
    out = []
    start = now - timedelta(minutes=30)
    for i in range(views):
        story = rng.randrange(stories)
        if rng.random() < 0.2 and seen_by[story]:
            viewer = rng.choice(seen_by[story])
        else:
            viewer = rng.randrange(users)
            if rng.random() < 0.5:
                story = rng.choice(by_author[rng.choice(following[viewer])])
            else:
                story = rng.randrange(stories)
            seen_by[story].append(viewer)
        pairs.add((story, viewer))
        at = start + timedelta(milliseconds=i * 1_800_000 // views)
        out.append({"type": "story_viewed", "story_id": f"story-{story}",
                    "viewer_id": f"user-{viewer}", "viewed_at": _iso(at)})  # fmt: skip
    return setup, out, len(pairs)


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    with path.open("w") as out:
        for event in events:
            out.write(json.dumps(event) + "\n")
    return path


def _publish(bootstrap: str, path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "publish", str(path)],
        env={**os.environ, "STORYSTREAM_BROKER": bootstrap},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _counts_reader(bootstrap: str) -> Consumer:
    """A reader of story-view-counts from its end now."""
    consumer = Consumer(reader_config(bootstrap, **{"group.id": "bench-e2e"}))
    parts = [("story-view-counts", p) for p in range(PARTITIONS)]
    ends = end_offsets(consumer, parts)
    consumer.assign([TopicPartition(t, p, ends[t, p][1]) for t, p in parts])
    return consumer


def _wait_counts(consumer: Consumer, expected: int, started: float, timeout: float) -> float:
    """Seconds from `started` until the latest counts of the stories add up to `expected`."""
    schema = fastavro.parse_schema(current_schemas()["ViewCount"])
    totals: dict[bytes, int] = {}
    total = 0
    deadline = time.monotonic() + timeout
    while total < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"story-view-counts holds {total:,} of {expected:,} views")
        for msg in consumer.consume(10_000, timeout=0.1):
            if msg.error() is not None or msg.value() is None:
                continue
            count = fastavro.schemaless_reader(io.BytesIO(msg.value()[HEADER:]), schema, None)
            total += count["total_views"] - totals.get(msg.key(), 0)  # type: ignore[call-overload,index]
            totals[msg.key()] = count["total_views"]  # type: ignore[call-overload,index]
    return time.perf_counter() - started


def _wait(check: Callable[[], bool], started: float, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
    return time.perf_counter() - started


def bare_decode(bootstrap: str, starts: dict[tuple[str, int], int], expected: int) -> float:
    """The baseline: consume the views published and decode each with fastavro (seconds from
    the first record to the last)."""
    schema = fastavro.parse_schema(current_schemas()["StoryViewed"])
    consumer = Consumer(reader_config(bootstrap, **{"group.id": "bench-e2e-bare"}))
    consumer.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
    seen, first = 0, 0.0
    reader = fastavro.schemaless_reader
    try:
        while seen < expected:
            for msg in consumer.consume(10_000, timeout=0.5):
                if msg.error() is not None:
                    continue
                if not seen:
                    first = time.perf_counter()
                reader(io.BytesIO(msg.value()[HEADER:]), schema, None)
                seen += 1
        return time.perf_counter() - first
    finally:
        consumer.close()


def run_on(impl: str, processes: int, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The whole measurement on a fresh broker of `impl` with a worker of `processes`: its
    summary lines and figures."""
    setup, views, pairs = generate(args.stories, args.views, args.users, args.follows)
    with broker(impl) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        settings = Settings(broker=bootstrap, partitions=PARTITIONS)
        create_topics(settings)
        worker = WorkerProcess(
            bootstrap,
            f"{tmp}/worker",
            STORYSTREAM_WORKER_PROCESSES=str(processes),
            STORYSTREAM_S3_ENDPOINT_URL="http://127.0.0.1:9",
            STORYSTREAM_PARTITIONS=str(PARTITIONS),
        )
        try:
            worker.wait(worker.healthy, 120, "worker health")
            began = time.perf_counter()
            _publish(bootstrap, _write(Path(tmp) / "setup.jsonl", setup))
            settled(worker, bootstrap)
            print(
                f"set up: {args.users:,} users following {args.follows} of "
                f"{max(args.stories // 10, 1):,} authors, {args.stories:,} ready stories fanned "
                f"out, in {time.perf_counter() - began:.1f}s"
            )
            path = _write(Path(tmp) / "views.jsonl", views)
            probe = Consumer(reader_config(bootstrap, **{"group.id": "bench-e2e-probe"}))
            starts = {
                tp: end for tp, (_, end) in end_offsets(
                    probe, [("story-viewed", p) for p in range(PARTITIONS)]
                ).items()
            }  # fmt: skip
            probe.close()
            counts = _counts_reader(bootstrap)
            tray = stage_topic(settings.app_id, "tray")
            trays_before = worker.metric("storystream_events_committed_total", tray)
            cpu_before = worker.cpu_seconds()
            started = time.perf_counter()
            published = _publish(bootstrap, path)
            to_counts = _wait_counts(counts, args.views, started, 600)
            to_trays = _wait(
                lambda: (
                    worker.metric("storystream_events_committed_total", tray)
                    >= trays_before + pairs
                ),
                started,
                600,
                "the tray stage's seen marks",
            )
            cpu = worker.cpu_seconds() - cpu_before
            counts.close()
        finally:
            worker.stop()
        bare = bare_decode(bootstrap, starts, args.views)
    whole = max(to_counts, to_trays)
    figures = {
        "broker": impl,
        "processes": processes,
        "views": args.views,
        "stories": args.stories,
        "users": args.users,
        "first_views": pairs,
        "rates": {
            "publish": args.views / published,
            "counts": args.views / to_counts,
            "trays": args.views / whole,
            "baseline": args.views / bare,
        },
        "worker_cpu_us_per_view": cpu / args.views * 1e6,
    }
    return "\n".join([
        f"{impl}: {args.views:,} views of {args.stories:,} stories ({pairs:,} first views), "
        f"one worker of {processes} process{'es' if processes > 1 else ''}:",
        f"  publish (storystream publish FILE)       {args.views / published:>10,.0f} views/s",
        f"  to committed story-view-counts            {args.views / to_counts:>10,.0f} views/s",
        f"  to committed trays too (the whole worker) {args.views / whole:>10,.0f} views/s",
        f"  bare consume-and-decode (baseline)        {args.views / bare:>10,.0f} views/s",
        f"  whole worker / baseline                   {bare / whole:>10.2f}",
        f"  worker CPU {cpu:.1f}s: {cpu / args.views * 1e6:.0f} us a view; "
        f"{os.cpu_count()} cores",
    ]), figures  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=2_000)
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--follows", type=int, default=2, help="authors each user follows")
    parser.add_argument(
        "--brokers",
        type=brokers_argument,
        default="tansu",
        help="brokers to run on, one after the other (tansu, kafka; default tansu)",
    )
    parser.add_argument(
        "--processes",
        type=_counts,
        default=[1, 2],
        help="worker processes (`worker --processes`) to measure, one run each (default 1,2)",
    )
    parser.add_argument(
        "--json", type=Path, help="write the first broker's figures here for bench.report"
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for impl in args.brokers:
        for processes in args.processes:
            text, figures = run_on(impl, processes, args)
            print(text, flush=True)
            results.append(figures)
    write_json(args.json, [r for r in results if r["broker"] == args.brokers[0]])


def _counts(value: str) -> list[int]:
    counts = [int(part) for part in value.split(",")]
    if any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError(f"process counts must be 1 or more: {value!r}")
    return counts


if __name__ == "__main__":
    main()
