"""Worker supervision (`dev`, `worker --processes`): a dead worker is restarted, with backoff."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli.worker_pool import Backoff, PooledWorker, WorkerPool, describe_exit

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_backoff_doubles_to_its_cap_and_starts_over() -> None:
    backoff = Backoff(first=1, most=30)
    assert [backoff.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.reset()
    assert backoff.next() == 1


def test_exit_codes_name_their_signal() -> None:
    assert describe_exit(-9) == "code -9 (SIGKILL)"
    assert describe_exit(-15) == "code -15 (SIGTERM)"
    assert describe_exit(1) == "code 1"


class Health:
    """A worker's /health, set by the test."""

    def __init__(self) -> None:
        self.ok = False

    def __call__(self, url: str) -> bool:
        return self.ok


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[PooledWorker]:
    slot = PooledWorker(
        0, SLEEPER, dict(os.environ), tmp_path / "worker-0.log", "http://w0", is_healthy=Health()
    )
    yield slot
    WorkerPool([slot]).stop(5)


def _kill(worker: PooledWorker) -> int:
    assert worker.proc is not None and worker.proc.poll() is None
    pid = worker.proc.pid
    os.kill(pid, signal.SIGKILL)
    worker.proc.wait()
    return pid


def test_a_dead_worker_is_restarted_after_its_delay_and_reported(worker: PooledWorker) -> None:
    health = worker.is_healthy
    assert isinstance(health, Health)
    worker.start()
    assert worker.supervise(0) == []  # running: nothing to say
    first = _kill(worker)

    lines = worker.supervise(10)
    assert lines == [
        f"worker 0 (pid {first}) exited with code -9 (SIGKILL); restarting it in 1 s; "
        f"its log: {worker.log_path}"
    ]
    assert worker.log_path is not None
    died = f"worker 0 (pid {first}) exited with code -9 (SIGKILL); restarting it in 1 s"
    assert f"--- storystream: {died}\n" in worker.log_path.read_text()
    assert worker.supervise(10.5) == []  # its delay is not over
    lines = worker.supervise(11)
    assert worker.pid != first and worker.proc is not None and worker.proc.poll() is None
    assert lines == [f"worker 0 restarted (pid {worker.pid}, restart 1)"]
    assert worker.supervise(12) == []  # not healthy yet
    health.ok = True
    assert worker.supervise(13) == ["worker 0 is healthy again (http://w0)"]

    # Dying again soon after: the delay doubles, up to its cap.
    delays = []
    now = 20.0
    for _ in range(6):
        _kill(worker)
        line = worker.supervise(now)[0]
        delays.append(float(line.split("restarting it in ")[1].split(" s")[0]))
        now += delays[-1]
        assert worker.supervise(now)[0].startswith("worker 0 restarted")
        assert worker.supervise(now + 1) == ["worker 0 is healthy again (http://w0)"]
        now += 2
    assert delays == [2, 4, 8, 16, 30, 30]
    assert worker.restarts == 7


def test_a_restarted_worker_healthy_for_a_while_starts_the_backoff_over(
    worker: PooledWorker,
) -> None:
    health = worker.is_healthy
    assert isinstance(health, Health)
    health.ok = True
    worker.start()
    for now in (0.0, 10.0):  # two quick deaths: the next delay would be 4 s
        _kill(worker)
        worker.supervise(now)
        worker.supervise(now + 5)
        assert worker.supervise(now + 6) == ["worker 0 is healthy again (http://w0)"]
    health.ok = False
    worker.supervise(16 + 70)  # alive 70 s but not answering: no reset
    _kill(worker)
    assert "restarting it in 4 s" in worker.supervise(100)[0]
    worker.supervise(104)
    health.ok = True
    worker.supervise(105)  # healthy again at 105
    worker.supervise(164)
    worker.supervise(165)  # 60 s healthy: reset
    _kill(worker)
    assert "restarting it in 1 s" in worker.supervise(170)[0]


def test_a_worker_that_exits_cleanly_is_restarted_too(tmp_path: Path) -> None:
    slot = PooledWorker(
        1, [sys.executable, "-c", "pass"], dict(os.environ), tmp_path / "w1.log", "http://w1"
    )
    slot.start()
    assert slot.proc is not None
    slot.proc.wait()
    assert "exited with code 0; restarting it in 1 s" in slot.supervise(0)[0]


def test_stop_ends_every_worker(tmp_path: Path) -> None:
    pool = WorkerPool(
        PooledWorker(i, SLEEPER, dict(os.environ), tmp_path / f"w{i}.log", f"http://w{i}")
        for i in range(3)
    )
    pool.start()
    assert not pool.any_exited()
    pool.stop(5)
    assert pool.any_exited()
    assert [w.proc.returncode for w in pool.workers if w.proc] == [-signal.SIGTERM] * 3
