"""Fan-out on write: an author with N followers (default 10,000) posts a story.

    python -m bench.fanout [--followers 10000] [--broker tansu|kafka]

Prints the time from producing the post (with a producer already open, as an app's is) until the last follower's tray holding the story is
on `story-trays`, and the rate of tray updates per second from the post to the last tray;
`--json FILE` writes each follower's arrival time too.
Runs one worker (a subprocess) against a fresh broker (or STORYSTREAM_BROKER).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench.harness import WorkerProcess, broker, write_json
from streams.client import EventClient
from streams.kafka.admin import create_topics
from streams.publish.publisher import publish_lines
from streams.settings import Settings
from streams.topics import STORY_TRAYS


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _publish(bootstrap: str, events: list[dict[str, object]]) -> None:
    lines = [(i + 1, json.dumps(e).encode()) for i, e in enumerate(events)]
    summary = publish_lines(iter(lines), bootstrap, processes=1)
    assert summary.published == len(events) and not summary.invalid, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    parser.add_argument("--json", type=Path, help="write the results here for bench.report")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with broker(args.broker) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        create_topics(Settings(broker=bootstrap, partitions=4))
        worker = WorkerProcess(
            bootstrap, f"{tmp}/worker", STORYSTREAM_S3_ENDPOINT_URL="http://127.0.0.1:9"
        )
        try:
            worker.wait(worker.healthy, 120, "worker health")
            _publish(
                bootstrap,
                [
                    {
                        "type": "user_followed",
                        "follower_id": f"f{i}",
                        "followee_id": "author",
                        "at": _iso(now - timedelta(minutes=5)),
                    }
                    for i in range(args.followers)
                ],
            )
            worker.wait(
                lambda: (
                    worker.metric("storystream_events_processed_total", "user-follows")
                    >= args.followers
                ),
                300,
                "follows processed",
            )

            trays = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": "bench-fanout",
                    "enable.auto.commit": False,
                }
            )
            trays.assign([TopicPartition(STORY_TRAYS.name, p, OFFSET_END) for p in range(4)])
            trays.consume(1, timeout=2.0)  # settle the assignment at the end offsets
            # The post goes through the client an app keeps open: the timer leaves out a new
            # idempotent producer's start (its producer id), which is not fan-out.
            with EventClient(bootstrap, producer={"linger.ms": 0}) as client:
                client.user_followed(follower_id="warm-up", followee_id="nobody").result(30)
                started = time.perf_counter()
                client.story_posted(
                    story_id="big",
                    author_id="author",
                    created_at=now,
                    media=[
                        {
                            "name": "1080",
                            "url": "https://cdn.example/big.jpg",
                            "width": 1080,
                            "height": 1920,
                            "content_type": "image/jpeg",
                        }
                    ],
                ).result(30)
                acked = time.perf_counter() - started
            arrived: dict[bytes, float] = {}  # follower's tray key: first seen holding the post
            first = last = None
            deadline = time.monotonic() + 300
            while len(arrived) < args.followers and time.monotonic() < deadline:
                for msg in trays.consume(10_000, timeout=0.5):
                    if msg.error() is None and msg.value() is not None:
                        last = time.perf_counter()
                        arrived.setdefault(msg.key(), last - started)
                        first = first or last
            trays.close()
        finally:
            worker.stop()
    if first is None or last is None or len(arrived) < args.followers:
        raise SystemExit(f"only {len(arrived)} of {args.followers} trays arrived")
    total = last - started
    print(
        f"followers: {args.followers:,} (the post acknowledged by the broker in {acked * 1000:.0f} ms)"
    )
    print(
        f"post -> last tray on story-trays: {total:.2f}s (first tray after {first - started:.2f}s)"
    )
    print(f"tray updates: {args.followers / total:,.0f}/s from the post to the last tray")
    times = sorted(arrived.values())
    print(f"per follower: median {statistics.median(times):.2f}s after the post")
    write_json(
        args.json,
        {
            "followers": args.followers,
            "arrivals": times,
            "rate": args.followers / total,
        },
    )


if __name__ == "__main__":
    main()
