"""Publish throughput: `storystream publish` (validate + Avro + produce) vs raw confluent-kafka.

    python -m bench.publish [--events 500000] [--rounds 3]

All runs produce the same records to the same broker in the same process tree; the raw runs
produce the pre-encoded bytes that publish created, with publish's producer configuration, so
a ratio is the cost of validation and encoding on top of Kafka itself. Each round runs the two
publish runs and the two raw runs; the figures are of the median times (a single raw run swings
by 10% on this shared machine). Two pairs, each timed alike on both sides:

- **in process**: `publish_stream`, the call the command makes, with the command's defaults,
  from the call to its return (it builds its lanes, forks its workers, makes its producer,
  validates, encodes, produces, flushes), against a raw produce loop in this process, from its
  first produce to its flush (`bench.raw_produce.produce_all`, its producer made before).
- **commands**: `storystream publish FILE` in a subprocess, start to exit, against
  `python -m bench.raw_produce`, start to exit: it loads the pre-encoded records from a marshal
  file and produces them. The command pays Python's start and its imports (pydantic, the models,
  the lanes: ~0.45 s on this project's machine, one core busy), the raw command Python's start,
  confluent-kafka's import and loading its records (~0.2 s).

The target (at least a third of raw) is judged on both pairs. Both commands run as installed
ones do, from cached bytecode: the bench drops PYTHONDONTWRITEBYTECODE (set on this project's
machines), which otherwise recompiled publish's 14 modules at every run (~0.1 s).
"""

from __future__ import annotations

import argparse
import json
import marshal
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
from bench.raw_produce import Record, produce_all
from streams.kafka.admin import create_topics
from streams.kafka.clients import producer_config
from streams.publish.publisher import (
    _LANES,
    BULK_PRODUCER,
    chunked,
    default_processes,
    encode_chunk,
    numbered_lines,
    publish_stream,
)
from streams.settings import Settings

NAMES = {
    "call": "storystream publish, in process",
    "raw loop": "raw confluent-kafka produce, in process",
    "command": "storystream publish FILE, start to exit",
    "raw command": "raw produce command, start to exit",
}


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


def raw_loop(bootstrap: str, records: list[Record]) -> float:
    """Seconds to produce `records` from this process, first produce to flush."""
    producer = Producer(producer_config(bootstrap, **BULK_PRODUCER))  # publish's config
    with Timer() as timer:
        remaining = produce_all(producer, records)
    assert remaining == 0, f"{remaining} undelivered"
    return timer.seconds


def raw_command(records_path: Path, bootstrap: str, env: dict[str, str]) -> float:
    """Seconds for `python -m bench.raw_produce` over the records, start to exit."""
    config = json.dumps(producer_config(bootstrap, **BULK_PRODUCER))
    seconds, _ = timed_command(["bench.raw_produce", str(records_path), config], env)
    return seconds


def timed_command(module_args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds for `python -m MODULE ARGS...` in a subprocess, start to exit, and its output;
    the bench stops if it fails."""
    with Timer() as timer:
        result = subprocess.run(
            [sys.executable, "-m", *module_args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        sys.exit(f"{module_args[0]} failed: {result.stdout}{result.stderr}")
    return timer.seconds, result.stdout


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
        records_path = Path(tmp) / "records.marshal"
        records_path.write_bytes(marshal.dumps(records))
        times: dict[str, list[float]] = {name: [] for name in NAMES}
        for _ in range(args.rounds):
            times["command"].append(publish_command(path, env, args.events))
            times["call"].append(publish_call(path, bootstrap, args.events))
            times["raw command"].append(raw_command(records_path, bootstrap, env))
            times["raw loop"].append(raw_loop(bootstrap, records))

    print("rounds (s):", "; ".join(f"{n} {' '.join(f'{t:.2f}' for t in times[n])}" for n in NAMES))
    seconds = {name: median(values) for name, values in times.items()}
    for name, label in NAMES.items():
        print(f"{label:<48} {rate(args.events, seconds[name])}  median")
    met = True
    for publish, raw, what in (
        ("call", "raw loop", "in process"),
        ("command", "raw command", "commands"),
    ):
        ratio = seconds[raw] / seconds[publish]
        met = met and ratio >= 1 / 3
        print(f"ratio publish/raw, {what + ':':<12} {ratio:.3f}")
    print(f"target >= 1/3 on both pairs: {'met' if met else 'not met'}")
    unmatched = seconds["raw loop"] / seconds["command"]
    print(f"(the command against the raw loop, its start unmatched: {unmatched:.3f})")
    command_rate = args.events / seconds["command"]
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
    seconds, output = timed_command(["streams.cli", "publish", str(path)], env)
    assert f"published {events}," in output, output
    return seconds


if __name__ == "__main__":
    main()
