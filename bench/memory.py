"""Memory of one worker holding many active stories and views, with its API answering trays.

    python -m bench.memory [--stories 1000000] [--views 10000000] [--out FILE.json]

One worker (a subprocess) on the embedded broker (or STORYSTREAM_BROKER). Ready stories are
posted in steps, then views; after each step the worker's resident memory (RSS, and its peak
so far) is sampled once it has committed everything. While the views are processed a thread
asks the API for trays of users who follow authors (fanned-out trays). Prints RSS against the
stories and views held, the growth per active story, the views' rate to committed in each
step, and the API's latency meanwhile; `--out` writes the samples for `bench.report`. The
worker's state budget is STORYSTREAM_STATE_MEMORY_MB, as for any worker.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import WorkerProcess, broker, settled
from streams.api.auth import issue_token
from streams.kafka.admin import create_topics
from streams.settings import Settings

PARTITIONS = 4
SECRET = "bench-memory-secret-of-at-least-32-bytes"


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of a process, in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _publish(bootstrap: str, path: Path, lines: Any) -> None:
    with path.open("w") as out:
        for line in lines:
            out.write(json.dumps(line) + "\n")
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "publish", str(path)],
        env={**os.environ, "STORYSTREAM_BROKER": bootstrap},
        check=True,
        capture_output=True,
    )


class TrayReader(threading.Thread):
    """Asks the API for trays, one request after another, timing each."""

    def __init__(self, url: str, users: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.users = url, users
        self.seconds: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        now = datetime.now(UTC)
        tokens = {u: issue_token(u, SECRET, now) for u in self.users}
        rng = random.Random(3)
        while not self.stopping.is_set():
            user = rng.choice(self.users)
            request = urllib.request.Request(
                f"{self.url}/users/{user}/tray",
                headers={"Authorization": f"Bearer {tokens[user]}"},
            )
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()
                self.seconds.append(time.perf_counter() - started)
            except OSError:
                self.failures += 1
            self.stopping.wait(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = random.Random(5)
    now = datetime.now(UTC).replace(microsecond=0)
    authors = max(args.stories // 50, 1)
    fans = [f"fan-{i}" for i in range(10_000)]
    samples: list[dict[str, float]] = []
    with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        create_topics(Settings(broker=bootstrap, partitions=PARTITIONS))
        worker = WorkerProcess(
            bootstrap,
            f"{tmp}/worker",
            STORYSTREAM_S3_ENDPOINT_URL="http://127.0.0.1:9",
            STORYSTREAM_PARTITIONS=str(PARTITIONS),
            STORYSTREAM_API_SECRET=SECRET,
        )
        reader = TrayReader(worker.url, fans)
        try:
            worker.wait(worker.healthy, 120, "worker health")
            pid = worker.proc.pid
            idle, _ = _memory(pid)
            samples.append({"stories": 0, "views": 0, "rss": idle, "peak": idle})
            follows = (
                {"type": "user_followed", "follower_id": fan,
                 "followee_id": f"author-{rng.randrange(min(authors, 1000))}",
                 "at": _iso(now - timedelta(hours=2))}
                for fan in fans
            )  # fmt: skip
            _publish(bootstrap, Path(tmp) / "follows.jsonl", follows)
            per_step = args.stories // args.steps
            for step in range(args.steps):
                posts = (
                    {"type": "story_posted", "story_id": f"s{n}", "author_id": f"author-{n % authors}",
                     "created_at": _iso(now - timedelta(minutes=30)),
                     "media": [{"name": "1080p", "url": f"https://cdn.example/{n}.jpg",
                                "width": 1080, "height": 1920, "content_type": "image/jpeg"}]}
                    for n in range(step * per_step, (step + 1) * per_step)
                )  # fmt: skip
                _publish(bootstrap, Path(tmp) / "posts.jsonl", posts)
                settled(worker, bootstrap, 3600)
                rss, peak = _memory(pid)
                samples.append(
                    {"stories": (step + 1) * per_step, "views": 0, "rss": rss, "peak": peak}
                )
                print(
                    f"{(step + 1) * per_step:>10,} stories: RSS {rss:,.0f} MiB (peak {peak:,.0f})"
                )
            reader.start()
            per_step = args.views // args.steps
            users = max(args.views // 20, 1)
            for step in range(args.steps):
                views = (
                    {"type": "story_viewed", "story_id": f"s{rng.randrange(args.stories)}",
                     "viewer_id": f"user-{rng.randrange(users)}",
                     "viewed_at": _iso(now - timedelta(minutes=20) + timedelta(microseconds=n))}
                    for n in range(step * per_step, (step + 1) * per_step)
                )  # fmt: skip
                started = time.perf_counter()
                _publish(bootstrap, Path(tmp) / "views.jsonl", views)
                settled(worker, bootstrap, 3600)
                rate = per_step / (time.perf_counter() - started)
                rss, peak = _memory(pid)
                held = (step + 1) * per_step
                samples.append({"stories": args.stories, "views": held, "rss": rss, "peak": peak})
                print(
                    f"{held:>10,} views:   RSS {rss:,.0f} MiB (peak {peak:,.0f}), "
                    f"{rate:,.0f} views/s to committed"
                )
        finally:
            reader.stopping.set()
            worker.stop()
    grown = samples[args.steps]["rss"] - samples[0]["rss"]
    print(
        f"idle worker: {samples[0]['rss']:,.0f} MiB; peak {max(s['peak'] for s in samples):,.0f} MiB"
    )
    print(f"per active story: {grown * 1024 * 1024 / args.stories:,.0f} bytes of RSS")
    if reader.seconds:
        ordered = sorted(reader.seconds)
        p99 = ordered[int(len(ordered) * 0.99)]
        print(
            f"API trays during the views: {len(ordered):,} answers, median "
            f"{statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"{reader.failures} failed"
        )
    if args.out:
        args.out.write_text(json.dumps({"samples": samples, "tray_seconds": reader.seconds}))


if __name__ == "__main__":
    main()
