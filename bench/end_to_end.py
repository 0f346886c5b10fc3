"""End to end on each broker: views published with `storystream publish`, timed until a worker's
`story-view-counts` accounts for every one, beside a bare consume-and-decode of the same views.

    python -m bench.end_to_end [--views 100000 --stories 1000] [--brokers tansu,kafka]

What a user sees (an acceptance run): one `storystream worker` subprocess on a fresh broker, the
stories published and processed first, then a JSON-lines file of views given to `storystream
publish`. The clock starts when publish starts and stops when a reader of `story-view-counts`
(latest record per story) sums to the number of views. The baseline, in the same run on the
same broker, reads the same views back from `story-viewed` and decodes them (bench.views'
ceiling loop): the rate no consumer of that topic can beat here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.harness import WorkerProcess, broker, brokers_argument
from bench.views_baselines import ceiling
from streams.codecs.avro import AvroCodec
from streams.codecs.registry import make_registry
from streams.kafka.admin import create_topics
from streams.settings import Settings

PARTITIONS = 4


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_events(tmp: Path, stories: int, views: int) -> tuple[Path, Path]:
    """posts.jsonl and views.jsonl: views spread over the stories by distinct viewers, none
    by the story's author."""
    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    posts, lines = tmp / "posts.jsonl", tmp / "views.jsonl"
    with posts.open("w") as out:
        for i in range(stories):
            event = {
                "type": "story_posted",
                "story_id": f"e2e-s{i}",
                "author_id": f"e2e-a{i % 100}",
                "created_at": _iso(now - timedelta(minutes=5)),
                "audience": "public",
                "media": [
                    {
                        "name": "1080",
                        "url": f"https://cdn.example/{i}.jpg",
                        "width": 1080,
                        "height": 1920,
                        "content_type": "image/jpeg",
                    }
                ],
            }
            out.write(json.dumps(event) + "\n")
    with lines.open("w") as out:
        for i in range(views):
            event = {
                "type": "story_viewed",
                "story_id": f"e2e-s{rng.randrange(stories)}",
                "viewer_id": f"e2e-u{i}",
                "viewed_at": _iso(now - timedelta(minutes=4) + timedelta(milliseconds=i)),
            }
            out.write(json.dumps(event) + "\n")
    return posts, lines


def publish(bootstrap: str, path: Path, env: dict[str, str]) -> float:
    """`storystream publish PATH`; its wall time."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli.main", "publish", str(path)],
        env={**os.environ, **env, "STORYSTREAM_BROKER": bootstrap},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"publish failed: {result.stdout}{result.stderr}")
    return time.perf_counter() - started


class CountsReader(threading.Thread):
    """Tails `story-view-counts`, keeping each story's latest total; `done` is set when they
    sum to `expected` (the time it happened in `finished`)."""

    def __init__(self, bootstrap: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.expected = bootstrap, expected
        self.done = threading.Event()
        self.stopping = threading.Event()
        self.finished = 0.0
        self.totals: dict[bytes, int] = {}

    def run(self) -> None:
        codec = AvroCodec("ViewCount", make_registry(None), "story-view-counts-value")
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-e2e-{time.time_ns()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        consumer.assign(
            [TopicPartition("story-view-counts", p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
        )
        try:
            while not self.stopping.is_set():
                for msg in consumer.consume(10_000, timeout=0.1):
                    if msg.error() is None and msg.value() is not None:
                        self.totals[msg.key()] = codec.decode_dict(msg.value())["total_views"]
                if sum(self.totals.values()) >= self.expected:
                    self.finished = time.perf_counter()
                    self.done.set()
                    return
        finally:
            consumer.close()


def run_on(impl: str, stories: int, views: int, tmp: Path, posts: Path, lines: Path) -> str:
    """The figures on a fresh broker of kind `impl`, as a printable line."""
    env = {"STORYSTREAM_STORY_TTL": "1h", "STORYSTREAM_PARTITIONS": str(PARTITIONS)}
    with broker(impl) as bootstrap:
        create_topics(Settings(broker=bootstrap, partitions=PARTITIONS))
        worker = WorkerProcess(
            bootstrap,
            str(tmp / f"worker-{impl}"),
            STORYSTREAM_S3_ENDPOINT_URL="http://127.0.0.1:9",
            **env,
        )
        try:
            worker.wait(worker.healthy, 120, "worker healthy")
            publish(bootstrap, posts, env)
            worker.wait(
                lambda: (
                    worker.metric("storystream_events_processed_total", "story-posted") >= stories
                ),
                120,
                "posts processed",
            )
            reader = CountsReader(bootstrap, views)
            reader.start()
            started = time.perf_counter()
            publish_seconds = publish(bootstrap, lines, env)
            if not reader.done.wait(600):
                reader.stopping.set()
                raise TimeoutError(f"{impl}: counts reached {sum(reader.totals.values())}")
            end_to_end = reader.finished - started
        finally:
            worker.stop()
        count, seconds, _ = ceiling(bootstrap, "story-viewed", PARTITIONS, views)
    assert count == views, f"{impl}: ceiling read {count} of {views}"
    return (
        f"{impl:<6} publish {views / publish_seconds:>9,.0f}/s ({publish_seconds:.2f}s)   "
        f"end to end {views / end_to_end:>9,.0f}/s ({end_to_end:.2f}s)   "
        f"baseline consume+decode {count / seconds:>9,.0f}/s ({seconds:.2f}s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=100_000)
    parser.add_argument("--stories", type=int, default=1_000)
    parser.add_argument(
        "--brokers",
        type=brokers_argument,
        default="tansu,kafka",
        help="brokers to run on, one after the other (default tansu,kafka)",
    )
    args = parser.parse_args()
    print(f"{args.views:,} views of {args.stories:,} stories; {os.cpu_count()} cores", flush=True)
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as name:
        tmp = Path(name)
        posts, views = write_events(tmp, args.stories, args.views)
        for impl in args.brokers:
            line = run_on(impl, args.stories, args.views, tmp, posts, views)
            print(line, flush=True)
            lines.append(line)
    print("\nsame run:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
