"""What a command pays for the schema registry: `storystream publish` of one line with dev's
registry over HTTP (confluent-kafka's client), against the ids built in (the baseline).

    python -m bench.registry_client [--runs 10]

Runs both, interleaved, on one embedded broker and registry; prints the median wall time and
the median and least CPU time (user + system of the command's processes: a shared machine
disturbs it less than wall time) of each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from infra.broker import EmbeddedBroker
from infra.schema_registry import EmbeddedSchemaRegistry
from streams.codecs.registry import topic_subjects
from streams.kafka.admin import create_topics
from streams.settings import Settings

LINE = '{"type":"story_viewed","story_id":"s","viewer_id":"v","viewed_at":"2026-12-03T10:00:00Z"}\n'


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with (
        EmbeddedBroker() as broker,
        EmbeddedSchemaRegistry(topic_subjects()) as registry,
        tempfile.TemporaryDirectory() as data_dir,
    ):
        create_topics(Settings(broker=broker.bootstrap, partitions=4))
        runs: dict[str, list[tuple[float, float]]] = {"built-in ids": [], "registry": []}
        for _ in range(args.runs):
            for name, url in (("built-in ids", ""), ("registry", registry.url)):
                env = {
                    **os.environ,
                    "STORYSTREAM_BROKER": broker.bootstrap,
                    "STORYSTREAM_SCHEMA_REGISTRY_URL": url,
                    "STORYSTREAM_DATA_DIR": data_dir,
                }
                wall, cpu = time.perf_counter(), _children_cpu()
                done = subprocess.run(
                    [sys.executable, "-m", "streams.cli", "publish", "-"],
                    input=LINE,
                    text=True,
                    capture_output=True,
                    env=env,
                )
                if done.returncode != 0:
                    raise SystemExit(f"publish failed ({name}): {done.stderr}")
                runs[name].append((time.perf_counter() - wall, _children_cpu() - cpu))
    for name, figures in runs.items():
        walls, cpus = [w for w, _ in figures], [c for _, c in figures]
        print(
            f"publish of one line, {name:>12}: wall median {statistics.median(walls):.3f} s, "
            f"CPU median {statistics.median(cpus):.3f} s, least {min(cpus):.3f} s "
            f"({args.runs} runs)"
        )


if __name__ == "__main__":
    main()
