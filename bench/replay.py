"""`storystream replay` against the live worker on the same events, in the same run.

    python -m bench.replay [--stories 1000] [--views 100000] [--users 10000] [--brokers tansu]

On each broker asked for (fresh, or STORYSTREAM_BROKER): the events of `bench.e2e` (follows,
ready posts, then views) are published before anything reads them. A live worker then starts
on them: its rate is the events over the time from its being healthy (its start left out)
until its group has committed the end of every topic it reads (its stage topics too). Then
`storystream replay` of the whole log into fresh prefixed topics, timed as a command (its start included), with its peak RSS; and the peak RSS of a replay of a
fifth of the views, to show memory does not grow with the range.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.e2e import PARTITIONS, _publish, _write, generate
from bench.harness import WorkerProcess, broker, brokers_argument, settled
from streams.kafka.admin import create_topics
from streams.settings import Settings


def live_rate(bootstrap: str, data_dir: str, events: int) -> tuple[float, float]:
    """(events/s, seconds) of a worker started on a log already holding `events` input
    records: from the moment it is healthy (its start left out) until its group has committed
    the end of every topic it reads, its own stage topics included (the fan-out, the marks)."""
    worker = WorkerProcess(
        bootstrap,
        data_dir,
        STORYSTREAM_S3_ENDPOINT_URL="http://127.0.0.1:9",
        STORYSTREAM_PARTITIONS=str(PARTITIONS),
    )
    try:
        worker.wait(worker.healthy, 120, "worker health")
        started = time.perf_counter()
        settled(worker, bootstrap, 900)
        seconds = time.perf_counter() - started
        return events / seconds, seconds
    finally:
        worker.stop()


def replay_run(bootstrap: str, prefix: str, until: str | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, summary line) of `storystream replay` as a command."""
    command = [sys.executable, "-m", "streams.cli", "replay", "--output-prefix", prefix]
    if until:
        command += ["--to", until]
    env = {**os.environ, "STORYSTREAM_BROKER": bootstrap,
           "STORYSTREAM_PARTITIONS": str(PARTITIONS)}  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:  # its high-water mark, read while it runs
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
        except (OSError, IndexError):
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    assert proc.stdout is not None and proc.returncode == 0, proc.returncode
    return seconds, peak / 1024, proc.stdout.read().decode().strip().splitlines()[0]


def run_on(impl: str, args: argparse.Namespace) -> str:
    setup, views, _ = generate(args.stories, args.views, args.users, 2)
    events = len(setup) + len(views)
    with broker(impl) as bootstrap, tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        create_topics(Settings(broker=bootstrap, partitions=PARTITIONS))
        _publish(bootstrap, _write(Path(tmp) / "setup.jsonl", setup))
        _publish(bootstrap, _write(Path(tmp) / "views.jsonl", views))
        rate, live_seconds = live_rate(bootstrap, f"{tmp}/worker", events)
        fifth = views[len(views) // 5]["viewed_at"]
        small_seconds, small_peak, _ = replay_run(bootstrap, "bench-r1-", fifth)
        seconds, peak, line = replay_run(bootstrap, "bench-r2-")
    return "\n".join([
        f"{impl}: {events:,} input events ({len(views):,} views), 4 partitions, "
        f"load average {os.getloadavg()[0]:.2f}:",
        f"  live worker (until caught up)        {rate:>10,.0f} events/s ({live_seconds:.1f}s)",
        f"  replay, whole log (as a command)     {events / seconds:>10,.0f} events/s "
        f"({seconds:.1f}s), peak RSS {peak:,.0f} MiB",
        f"  replay / live                        {events / seconds / rate:>10.2f}",
        f"  replay to a fifth of the views: {small_seconds:.1f}s, peak RSS {small_peak:,.0f} MiB",
        f"  {line}",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=1_000)
    parser.add_argument("--views", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--brokers", type=brokers_argument, default="tansu")
    args = parser.parse_args()
    for impl in args.brokers:
        print(run_on(impl, args), flush=True)


if __name__ == "__main__":
    main()
