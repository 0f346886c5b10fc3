"""The worker processes of `storystream dev`: one that dies is restarted, with backoff."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from infra.process import spawn

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
# A worker that stayed healthy this long after a restart is no longer crash-looping: its next
# restart waits FIRST_DELAY again.
HEALTHY_RESET = 60.0


def healthy(url: str) -> bool:
    """Whether the worker at `url` answers /health with 200 (it is consuming)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def describe_exit(code: int) -> str:
    """`code 1`, or `code -9 (SIGKILL)` for a death by signal."""
    if code < 0:
        try:
            return f"code {code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"code {code}"
    return f"code {code}"


@dataclass
class Backoff:
    """Delays doubling from `first` up to `most`; `reset` starts over."""

    first: float = FIRST_DELAY
    most: float = MAX_DELAY
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.first

    def next(self) -> float:
        """The delay to wait now; the one after it doubles."""
        delay = self._next
        self._next = min(self.most, delay * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


class DevWorker:
    """One `storystream worker` child: started, watched, restarted after a death."""

    def __init__(
        self,
        index: int,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        url: str,
        *,
        backoff: Backoff | None = None,
        is_healthy: Callable[[str], bool] = healthy,
    ) -> None:
        self.index = index
        self.args = args
        self.env = env
        self.log_path = log_path
        self.url = url
        self.backoff = backoff or Backoff()
        self.is_healthy = is_healthy
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._restart_at: float | None = None  # a death seen, its restart due then
        self._back_since: float | None = None  # restarted and healthy since then
        self._awaiting_health = False

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        """Start the process, its output appended to its log."""
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = spawn(self.args, log=log, env=self.env)

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def supervise(self, now: float) -> list[str]:
        """Look at the process once (`now`: a monotonic time); what happened, as lines to print.

        A death schedules a restart after the backoff's delay; the restart happens at a later
        call once that time is reached; a restarted worker is reported back once healthy.
        """
        if self.proc is None:
            return []
        if self._restart_at is not None:
            if now < self._restart_at:
                return []
            self._restart_at = None
            self.restarts += 1
            self.start()
            self._awaiting_health = True
            return [f"worker {self.index} restarted (pid {self.pid}, restart {self.restarts})"]
        code = self.proc.poll()
        if code is not None:
            delay = self.backoff.next()
            self._restart_at = now + delay
            self._awaiting_health = False
            self._back_since = None
            line = (
                f"worker {self.index} (pid {self.pid}) exited with {describe_exit(code)}; "
                f"restarting it in {delay:g} s; its log: {self.log_path}"
            )
            with open(self.log_path, "a") as log:  # where the next start's output follows
                log.write(f"--- storystream dev: {line}\n")
            return [line]
        if self._awaiting_health:
            if not self.is_healthy(self.url):
                return []
            self._awaiting_health = False
            self._back_since = now
            return [f"worker {self.index} is healthy again ({self.url})"]
        if (
            self._back_since is not None
            and now - self._back_since >= HEALTHY_RESET
            and self.is_healthy(self.url)
        ):
            self._back_since = None
            self.backoff.reset()
        return []


class DevWorkers:
    """The worker processes of one `storystream dev`."""

    def __init__(self, workers: Iterable[DevWorker]) -> None:
        self.workers = list(workers)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def any_exited(self) -> bool:
        """Whether a worker's process has ended (before dev supervises them)."""
        return any(worker.exited() for worker in self.workers)

    def supervise(self, now: float | None = None) -> list[str]:
        """One look at every worker (`DevWorker.supervise`)."""
        moment = time.monotonic() if now is None else now
        return [line for worker in self.workers for line in worker.supervise(moment)]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker at once, SIGKILL those still running after `timeout`."""
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in running:
            proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
