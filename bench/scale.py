"""Scale-out and recovery: views/s with 1, 2 and 3 worker processes in one group, and the time a
worker holding ~1M state keys takes to come back (state rebuilt from the changelog, or kept).

    python -m bench.scale [--views 200000 --stories 5000] [--workers 1 2 3]
                          [--recovery-views 1000000 | --no-recovery] [--quick]

Throughput: the stories are posted and the views (Avro, as `storystream publish` encodes them)
published once; then, for each group size, a fresh group of `storystream worker` processes
(its own STORYSTREAM_APP_ID and STORYSTREAM_OUTPUT_PREFIX) reads both topics from the
beginning. The rate is the views committed after every worker owns partitions (group joins and
startup left out) over the time from then to the last, summing
`storystream_events_processed_total{topic="story-viewed"}` over the workers' /metrics (polled
every 50 ms). That counter moves a committed batch at a time: a batch in flight when the group
settles is counted without all its time, so `--views` must be many batches (not `--quick`).

Recovery: one worker processes `--recovery-views` distinct (story, viewer) views (one viewer-list
entry, one seen-tray entry and one event id per view: several million state keys), is stopped,
then restarted (same port, so the same state directory) twice: once with its local RocksDB
deleted (every partition restored from the changelog), once with it kept (only the changelog
tail after the local checkpoint is read). Timed from the process start until /health answers
with its partitions; the engine's own "assigned partitions ... (restored in X s)" is reported
beside it.

How to read the curve: the topics have 4 partitions, so at most 4 workers can share the work,
but this machine has 2 cores, shared by the workers, the broker (which does real work per
record, in and out) and this script. One worker already keeps about one core busy and the
broker most of the other; a second worker can only take what CPU is left, so the gain is small,
and a third one adds processes (more group coordination, more and smaller produce batches,
more context switches) and no cores: it cannot scale and is usually slower. Three workers over
4 partitions are also unbalanced (2/1/1): the one holding two partitions still does half the
work, so even with enough cores 3 workers gain little over 2. On a machine with
a core per worker plus the broker's, throughput grows with workers up to the partition count.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import WorkerProcess, broker, write_json
from bench.views import encode, generate, produce
from infra.process import free_port
from streams.kafka.admin import create_topics
from streams.settings import Settings

PARTITIONS = 4
VIEWED = "story-viewed"
_RESTORED = re.compile(r"assigned partitions \[([\d, ]*)\] \(restored in ([\d.]+)s\)")


def _env(app_id: str, prefix: str = "", port: int | None = None) -> dict[str, str]:
    env = {
        "STORYSTREAM_APP_ID": app_id,
        "STORYSTREAM_PARTITIONS": str(PARTITIONS),
        "STORYSTREAM_STORY_TTL": "24h",
        "STORYSTREAM_S3_ENDPOINT_URL": "http://127.0.0.1:9",  # no media in these benches
    }
    if prefix:
        env["STORYSTREAM_OUTPUT_PREFIX"] = prefix
    if port:
        env["STORYSTREAM_API_PORT"] = str(port)
    return env


def start(bootstrap: str, data_dir: Path, env: dict[str, str]) -> WorkerProcess:
    return WorkerProcess(bootstrap, str(data_dir), **env)


def partitions(worker: WorkerProcess) -> list[int]:
    import json

    try:
        with urllib.request.urlopen(worker.url + "/health", timeout=1) as answer:
            return list(json.loads(answer.read())["partitions"])
    except (OSError, ValueError):
        return []


def processed(workers: list[WorkerProcess]) -> int:
    name = "storystream_events_processed_total"
    return int(sum(w.metric(name, VIEWED) for w in workers))


def wait_processed(
    workers: list[WorkerProcess], expected: int, timeout: float
) -> tuple[float, int, float]:
    """(first, counted then, last): monotonic times of the views count first moving and
    reaching `expected`, and the count at its first move (a committed batch at a time: the
    views timed are those after it)."""
    first, at_first = 0.0, 0
    deadline = time.monotonic() + timeout
    while True:
        count = processed(workers)
        now = time.monotonic()
        if count and not first:
            first, at_first = now, count
        if count >= expected:
            return first, at_first, now
        for worker in workers:
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {worker._log.name}")
        if now > deadline:
            raise TimeoutError(f"{count:,} of {expected:,} views after {timeout:.0f}s")
        time.sleep(0.05)


def throughput(bootstrap: str, tmp: Path, size: int, views: int) -> float:
    tag = f"scale{size}-{os.getpid()}"
    env = _env(tag, f"{tag}-")
    workers = [start(bootstrap, tmp / f"{tag}-w{i}", env) for i in range(size)]
    try:
        # Every worker owning partitions and every partition owned before timing, so the rate
        # is not a single worker's warm-up (nor one worker holding all while the rest join).
        deadline = time.monotonic() + 120
        while True:
            owned = [partitions(w) for w in workers]
            if sorted(p for ps in owned for p in ps) == list(range(PARTITIONS)) and all(
                owned[: min(size, PARTITIONS)]
            ):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the group never settled: partitions by worker {owned}")
            time.sleep(0.1)
        settled, before = time.monotonic(), processed(workers)
        _, _, last = wait_processed(workers, views, 900)
        rejected = sum(w.metric("storystream_events_not_applied_total") for w in workers)
    finally:
        for worker in workers:
            worker.stop()
    seconds = max(last - settled, 1e-9)
    timed = views - before
    print(
        f"  {size} worker{'s' if size > 1 else ' '}: {timed / seconds:>10,.0f} views/s "
        f"({timed:,} in {seconds:.2f}s; {before:,} committed before the group settled, not "
        f"timed; not applied: {int(rejected):,})",
        flush=True,
    )
    if timed < views // 2:
        print("  (most views went before the group settled: too few --views to time)")
    return timed / seconds


def restart_time(bootstrap: str, data_dir: Path, env: dict[str, str]) -> tuple[float, str]:
    """Seconds from the process start to /health with partitions; the engine's own figure."""
    started = time.monotonic()
    worker = start(bootstrap, data_dir, env)
    try:
        worker.wait(lambda: bool(partitions(worker)), 600, "the restarted worker's partitions")
        seconds = time.monotonic() - started
        time.sleep(0.5)
        log = Path(f"{data_dir}.log").read_text(errors="replace")
        found = _RESTORED.findall(log)
        engine = ", ".join(f"[{p}] in {s}s" for p, s in found) or "no assignment line"
    finally:
        worker.stop()
    return seconds, engine


def recovery(bootstrap: str, tmp: Path, views: int, stories: int) -> None:
    tag = f"recover-{os.getpid()}"
    env = _env(tag, f"{tag}-", port=free_port())
    data_dir = tmp / tag
    print(f"\nrecovery of one worker after {views:,} distinct views:", flush=True)
    now = datetime.now(UTC).replace(microsecond=0)
    created, expires = now - timedelta(hours=1), now + timedelta(days=7)
    story_ids = [f"r-story-{i}" for i in range(stories)]
    posts = [
        {
            "type": "story_posted",
            "story_id": s,
            "author_id": f"r-author-{i % 2000}",
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "audience": "public",
            "media": [
                {
                    "name": "1080",
                    "url": f"https://cdn.example/{s}.jpg",
                    "width": 1080,
                    "height": 1920,
                    "content_type": "image/jpeg",
                }
            ],
        }
        for i, s in enumerate(story_ids)
    ]
    span = 3_600_000 // views or 1
    seen = [
        {
            "type": "story_viewed",
            "story_id": story_ids[i % stories],
            "viewer_id": f"r-user-{i}",
            "viewed_at": (created + timedelta(milliseconds=i * span))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        for i in range(views)
    ]
    began = time.monotonic()
    produce(bootstrap, encode(posts) + encode(seen))
    del seen
    print(f"  published in {time.monotonic() - began:.1f}s", flush=True)
    worker = start(bootstrap, data_dir, env)
    try:
        first, at_first, last = wait_processed([worker], views, 1800)
        print(
            f"  processed by one worker at "
            f"{(views - at_first) / max(last - first, 1e-9):,.0f} views/s",
            flush=True,
        )
        time.sleep(3)  # the trays stage takes the StorySeen forwards too
    finally:
        worker.stop()
    state = data_dir / "state"
    size = sum(f.stat().st_size for f in state.rglob("*") if f.is_file())
    print(f"  local state: {size / 2**20:,.0f} MiB in {state}", flush=True)
    shutil.rmtree(state)
    seconds, engine = restart_time(bootstrap, data_dir, env)
    print(
        f"  restart, local state deleted (restore from the changelog): {seconds:6.1f}s to "
        f"/health with partitions; engine: {engine}",
        flush=True,
    )
    seconds, engine = restart_time(bootstrap, data_dir, env)
    print(
        f"  restart, local RocksDB kept (changelog tail only):          {seconds:6.1f}s to "
        f"/health with partitions; engine: {engine}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--stories", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--recovery-views", type=int, default=1_000_000)
    parser.add_argument("--no-recovery", action="store_true")
    parser.add_argument("--json", type=Path, help="write the throughput here for bench.report")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20,000 views over 500 stories; recovery after 100,000 views",
    )
    args = parser.parse_args()
    if args.quick:
        args.views, args.stories, args.users, args.recovery_views = 20_000, 500, 10_000, 100_000
    posts, views = generate(args.stories, args.views, args.users)
    print(
        f"{args.views:,} views of {args.stories:,} stories; {PARTITIONS} partitions; "
        f"{os.cpu_count()} cores (shared with the broker)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_name, broker() as bootstrap:
        tmp = Path(tmp_name)
        create_topics(Settings(broker=bootstrap, partitions=PARTITIONS, data_dir=tmp))
        produce(bootstrap, encode(posts) + encode(views))
        print("views/s by group size (every partition owned to the last view):", flush=True)
        rates = {size: throughput(bootstrap, tmp, size, args.views) for size in args.workers}
        base = rates.get(1)
        if base:
            print("  speed-up: " + ", ".join(f"{n}: x{r / base:.2f}" for n, r in rates.items()))
        print(
            "  (2 cores for workers and broker together: more workers than cores cannot "
            "scale; see the docstring)"
        )
        write_json(
            args.json,
            {
                "views": args.views,
                "stories": args.stories,
                "rates": {str(n): r for n, r in rates.items()},
            },
        )
        if not args.no_recovery:
            recovery(bootstrap, tmp, args.recovery_views, args.stories)


if __name__ == "__main__":
    main()
