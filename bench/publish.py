"""Publish throughput: `storystream publish` (validate + Avro + produce) vs raw confluent-kafka.

    python -m bench.publish [--events 500000] [--rounds 3]

Both runs produce the same records to the same broker in the same process tree; the raw run
produces the pre-encoded bytes that the publish run created, with publish's producer
configuration, so the ratio is the cost of validation and encoding on top of Kafka itself.
They alternate for `--rounds` rounds (publish, then raw) and the ratio is that of the median
times: a single raw run swings by 10% on this shared machine (0.91-1.08 s for the same bytes).

The publish command runs as an installed one does, from cached bytecode: the bench drops
PYTHONDONTWRITEBYTECODE (set on this project's machines) for it, which otherwise recompiled
the 14 modules publish imports at every run (~0.1 s, 3% of publishing 500k lines).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from statistics import median

from confluent_kafka import Producer

from bench.harness import Timer, broker, rate
from streams.admin import create_topics
from streams.kafka import producer_config
from streams.publish import BULK_PRODUCER, chunked, encode_chunk, numbered_lines
from streams.settings import Settings


def generate(path: Path, count: int, seed: int = 7) -> None:
    """A realistic mix: mostly views, then reactions, posts and follows."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(count):
            t = f"2026-11-22T10:{i // 60_000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z"
            roll = rng.random()
            story = f"s{rng.randrange(5000)}"
            if roll < 0.80:
                event = {
                    "type": "story_viewed",
                    "story_id": story,
                    "viewer_id": f"u{rng.randrange(200_000)}",
                    "viewed_at": t,
                }
            elif roll < 0.90:
                event = {
                    "type": "story_reacted",
                    "story_id": story,
                    "user_id": f"u{i}",
                    "reaction": rng.choice(["like", "fire", "🔥", "😂"]),
                    "reacted_at": t,
                }
            elif roll < 0.95:
                event = {
                    "type": "story_posted",
                    "story_id": f"p{i}",
                    "author_id": f"a{i % 997}",
                    "created_at": t,
                    "audience": "followers",
                }
            else:
                event = {
                    "type": "user_followed",
                    "follower_id": f"u{i}",
                    "followee_id": f"a{i % 997}",
                    "at": t,
                }
            out.write(json.dumps(event) + "\n")


def raw_produce(bootstrap: str, records: list[tuple[str, bytes, bytes, int]]) -> float:
    producer = Producer(producer_config(bootstrap, **BULK_PRODUCER))  # publish's config
    with Timer() as timer:
        for topic, key, value, timestamp in records:
            while True:
                try:
                    producer.produce(topic, value, key, -1, None, None, timestamp)  # as publish
                    break
                except BufferError:
                    producer.poll(0.05)
        remaining = producer.flush(300)
    assert remaining == 0, f"{remaining} undelivered"
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3, help="publish/raw pairs; medians")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        create_topics(Settings(broker=bootstrap, partitions=4))
        path = Path(tmp) / "events.jsonl"
        generate(path, args.events)
        print(f"{args.events:,} events, {path.stat().st_size / 1e6:.1f} MB, {os.cpu_count()} cores")

        env = {**os.environ, "STORYSTREAM_BROKER": bootstrap}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: see the module's docstring
        with path.open("rb") as stream:
            records = [
                r
                for chunk in chunked(numbered_lines(stream))
                for r in encode_chunk(chunk, timedelta(hours=24), None)[0]
            ]
        publish_times, raw_times = [], []
        for _ in range(args.rounds):
            publish_times.append(publish_once(path, env, args.events))
            raw_times.append(raw_produce(bootstrap, records))

    publish_seconds, raw_seconds = median(publish_times), median(raw_times)
    print(
        f"rounds (publish s / raw s): {', '.join(f'{p:.2f}/{r:.2f}' for p, r in zip(publish_times, raw_times, strict=True))}"
    )
    publish_rate = args.events / publish_seconds
    raw_rate = args.events / raw_seconds
    print(
        f"storystream publish (CLI, validate+Avro+produce): {rate(args.events, publish_seconds)}  median"
    )
    print(
        f"raw confluent-kafka produce of the same bytes:     {rate(args.events, raw_seconds)}  median"
    )
    ratio = publish_rate / raw_rate
    print(
        f"ratio publish/raw: {ratio:.3f}  (target >= 1/3: {'met' if ratio >= 1 / 3 else 'not met'}; "
        f"absolute target 100,000/s: {'met' if publish_rate >= 100_000 else 'not met'})"
    )


def publish_once(path: Path, env: dict[str, str], events: int) -> float:
    """Seconds for `storystream publish FILE` in a subprocess, start to exit."""
    with Timer() as timer:
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", "publish", str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        sys.exit(f"publish failed: {result.stdout}{result.stderr}")
    assert f"published {events}," in result.stdout, result.stdout
    return timer.seconds


if __name__ == "__main__":
    main()
