"""Publish throughput: `storystream publish` (validate + Avro + produce) vs raw confluent-kafka.

    python -m bench.publish [--events 500000] [--rounds 3]

All runs produce the same records to the same broker in the same process tree; the raw run
produces the pre-encoded bytes that publish created, with publish's producer configuration,
so the ratio is the cost of validation and encoding on top of Kafka itself. Each round runs
publish twice, then raw, and the figures are of the median times: a single raw run swings by
10% on this shared machine (0.91-1.08 s for the same bytes).

- **publish, in process**: `publish_stream`, the call the command makes, with the command's
  defaults, timed from the call to its return: it builds its lanes, forks its workers, makes
  its producer, validates, encodes, produces and flushes. The raw run is timed the same way,
  from its first produce to its flush, its imports and producer made before. The target (at
  least a third of raw) is judged on this pair: like for like.
- **publish, the command**: `storystream publish FILE` in a subprocess, start to exit. It adds
  the interpreter's start and its imports (pydantic, the models, the lanes: ~0.45 s on this
  project's machine, one core busy), a fixed cost the raw run has none of. It runs as an
  installed command does, from cached bytecode: the bench drops PYTHONDONTWRITEBYTECODE (set
  on this project's machines), which otherwise recompiled its 14 modules at every run (~0.1 s).
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
from streams.publish import (
    _LANES,
    BULK_PRODUCER,
    chunked,
    default_processes,
    encode_chunk,
    numbered_lines,
    publish_stream,
)
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
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of command, call and raw; medians"
    )
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
        command_times, call_times, raw_times = [], [], []
        for _ in range(args.rounds):
            command_times.append(publish_command(path, env, args.events))
            call_times.append(publish_call(path, bootstrap, args.events))
            raw_times.append(raw_produce(bootstrap, records))

    rounds = zip(command_times, call_times, raw_times, strict=True)
    print(
        f"rounds (command s / in process s / raw s): {', '.join('/'.join(f'{t:.2f}' for t in r) for r in rounds)}"
    )
    command_s, call_s, raw_s = median(command_times), median(call_times), median(raw_times)
    print(f"storystream publish, in process:              {rate(args.events, call_s)}  median")
    print(f"storystream publish, the command:             {rate(args.events, command_s)}  median")
    print(f"raw confluent-kafka produce of the same bytes: {rate(args.events, raw_s)}  median")
    ratio, command_ratio = raw_s / call_s, raw_s / command_s
    print(
        f"ratio publish/raw: {ratio:.3f} in process (target >= 1/3: "
        f"{'met' if ratio >= 1 / 3 else 'not met'}), {command_ratio:.3f} for the command "
        "with its start and imports"
    )
    command_rate = args.events / command_s
    print(
        f"absolute target 100,000/s (the command): {'met' if command_rate >= 100_000 else 'not met'}"
    )


def publish_call(path: Path, bootstrap: str, events: int) -> float:
    """Seconds for `publish_stream` over the file, as the command calls it."""
    _LANES.clear()  # built within the time, as the command builds them
    with path.open("rb") as stream, Timer() as timer:
        summary = publish_stream(stream, bootstrap, processes=default_processes())
    assert summary.published == events and not summary.invalid, summary
    return timer.seconds


def publish_command(path: Path, env: dict[str, str], events: int) -> float:
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
