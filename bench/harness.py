"""Shared benchmark plumbing: a broker (embedded unless STORYSTREAM_BROKER is set), timing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.broker import EmbeddedBroker


@contextmanager
def broker(impl: str = "tansu") -> Iterator[str]:
    """Bootstrap servers of STORYSTREAM_BROKER, or of a fresh broker: the embedded one
    (`tansu`) or a single-node Apache Kafka (`kafka`, on a temporary directory)."""
    configured = os.environ.get("STORYSTREAM_BROKER")
    if configured:
        yield configured
        return
    if impl == "kafka":
        from infra.kafka import KafkaCluster

        with KafkaCluster() as kafka:
            yield kafka.bootstrap
        return
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap


def write_json(path: str | os.PathLike[str] | None, data: object) -> None:
    """A bench's results as JSON for `bench.report` (`--json FILE`); nothing without a path."""
    if path is not None:
        with open(path, "w") as out:
            json.dump(data, out, indent=1)


def brokers_argument(value: str) -> list[str]:
    """`--brokers tansu,kafka`: the brokers a benchmark runs on, in that order."""
    chosen = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(chosen) - {"tansu", "kafka"})
    if unknown or not chosen:
        raise ValueError(f"--brokers: {unknown or 'none'}; choose from tansu, kafka")
    return chosen


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f}/s  ({count:,} in {seconds:.2f}s)"


class WorkerProcess:
    """A `storystream worker` subprocess (STORYSTREAM_WORKER_PROCESSES of them under it, in
    `env`) with its API URLs; stopped on exit."""

    def __init__(self, bootstrap: str, data_dir: str, **env: str) -> None:
        import subprocess
        import sys

        from infra.process import free_ports, spawn

        processes = int(env.get("STORYSTREAM_WORKER_PROCESSES", "1"))
        # A fixed port keeps the worker id, so a restart finds its state directory.
        given = env.get("STORYSTREAM_API_PORT")
        self.port = int(given) if given else free_ports(processes)
        self.urls = [f"http://127.0.0.1:{self.port + i}" for i in range(processes)]
        self.url = self.urls[0]
        full_env = {
            **os.environ,
            "STORYSTREAM_BROKER": bootstrap,
            "STORYSTREAM_DATA_DIR": data_dir,
            "STORYSTREAM_API_PORT": str(self.port),
            **env,
        }
        self._log = open(f"{data_dir}.log", "wb")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] = spawn(
            [sys.executable, "-m", "streams.cli", "worker"], log=self._log, env=full_env
        )

    def metric(self, name: str, label: str | None = None) -> float:
        """A counter's total over every process of the worker."""
        return sum(self._metric(url, name, label) for url in self.urls)

    @staticmethod
    def _metric(url: str, name: str, label: str | None) -> float:
        import urllib.request

        for attempt in range(5):  # a busy worker may answer slowly; never read that as zero
            try:
                with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
                    text = answer.read().decode()
                break
            except OSError:
                if attempt == 4:
                    raise
                time.sleep(1)
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (label is None or f'"{label}"' in line):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait(self, check: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {self._log.name}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def healthy(self) -> bool:
        """Whether every process of the worker answers /health with 200."""
        import urllib.request

        try:
            for url in self.urls:
                with urllib.request.urlopen(url + "/health", timeout=1) as answer:
                    if answer.status != 200:
                        return False
        except OSError:
            return False
        return True

    def cpu_seconds(self) -> float:
        """User and system CPU time so far of the worker's processes (its children too)."""
        total = 0.0
        for pid in _tree(self.proc.pid):
            try:
                total += cpu_seconds(pid)
            except FileNotFoundError:  # ended since it was listed
                pass
        return total

    def stop(self) -> None:
        from infra.process import stop

        stop(self.proc, 30)
        self._log.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, now."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            found += _tree(int(child))
    return found


def group_caught_up(bootstrap: str, app_id: str = "storystream", partitions: int = 4) -> bool:
    """Whether the worker group of `app_id` has committed the end of every topic it reads: the
    inputs and its own stage topics (a fan-out in a long batch keeps its stage topics behind;
    a metric that only says records were fetched does not)."""
    from confluent_kafka import Consumer, TopicPartition

    from streams.kafka.clients import reader_config
    from streams.kafka.offsets import end_offsets
    from streams.topics import STAGES, TOPICS, stage_topic

    topics = [s.name for s in TOPICS if s.kind in ("input", "pipeline")]
    topics += [stage_topic(app_id, stage) for stage in STAGES]
    group = Consumer(reader_config(bootstrap, **{"group.id": f"{app_id}-engine"}))
    probe = Consumer(reader_config(bootstrap, **{"group.id": f"{app_id}-bench-probe"}))
    try:
        wanted = [(t, p) for t in topics for p in range(partitions)]
        ends = end_offsets(probe, wanted)
        committed = group.committed([TopicPartition(t, p) for t, p in wanted], timeout=10)
        done = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
        return all(done[tp] >= end for tp, (_, end) in ends.items())
    finally:
        group.close()
        probe.close()


def settled(
    worker: WorkerProcess, bootstrap: str, seconds: float = 600, app_id: str = "storystream"
) -> None:
    """Until the worker's group has committed the end of every topic it reads (its stage
    topics too: a fan-out forwarded in a long batch is not done until they are), with no
    batch under way: a batch's forwards reach the stage topics only at its end, so until
    then the worker has processed more than it committed. Twice in a row, to be sure."""
    deadline = time.monotonic() + seconds
    settled_at = None
    while time.monotonic() < deadline:
        processed = worker.metric("storystream_events_processed_total")
        committed = worker.metric("storystream_events_committed_total")
        if processed == committed and group_caught_up(bootstrap, app_id):
            if settled_at == committed:
                return
            settled_at = committed
        else:
            settled_at = None
        if worker.proc.poll() is not None:
            raise RuntimeError("the worker exited")
        time.sleep(0.2)
    raise TimeoutError("the worker did not settle")
