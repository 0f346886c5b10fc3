"""Worker processes under one supervisor (`storystream dev`, `storystream worker --processes`):
one that dies is restarted, with backoff."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from infra.process import spawn
from streams.settings import Settings

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


class PooledWorker:
    """One `storystream worker` child: started, watched, restarted after a death. Its output
    goes to `log_path` (appended), or with None to the supervisor's own."""

    def __init__(
        self,
        index: int,
        args: list[str],
        env: dict[str, str],
        log_path: Path | None,
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
        """Start the process, its output appended to its log (or the supervisor's)."""
        if self.log_path is None:
            self.proc = spawn(self.args, log=None, env=self.env)
            return
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
                f"restarting it in {delay:g} s"
            )
            if self.log_path is None:
                return [line]
            with open(self.log_path, "a") as log:  # where the next start's output follows
                log.write(f"--- storystream: {line}\n")
            return [f"{line}; its log: {self.log_path}"]
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


class WorkerPool:
    """The worker processes of one supervisor."""

    def __init__(self, workers: Iterable[PooledWorker]) -> None:
        self.workers = list(workers)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def any_exited(self) -> bool:
        """Whether a worker's process has ended (before dev supervises them)."""
        return any(worker.exited() for worker in self.workers)

    def supervise(self, now: float | None = None) -> list[str]:
        """One look at every worker (`PooledWorker.supervise`)."""
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


def shifted_url(url: str, index: int) -> str:
    """The API URL of worker `index` when worker 0's is `url`: its port plus `index`."""
    parts = urllib.parse.urlsplit(url)
    if parts.port is None:
        raise ValueError(
            f"STORYSTREAM_API_URL {url!r} names no port: with several processes each serves on "
            "its own (API_PORT + its index), so give the URL with API_PORT in it"
        )
    host = parts.netloc.rsplit(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{parts.port + index}"))


def child_env(settings: Settings, index: int, data_dir: Path, share: int = 1) -> dict[str, str]:
    """The environment of worker `index` under a supervisor: the supervisor's own, with its
    settings as resolved (flags, a running dev's), its own API port (and URL) and data directory,
    and 1/`share` of the state memory."""
    env = {
        **os.environ,
        "STORYSTREAM_BROKER": settings.bootstrap(),
        "STORYSTREAM_API_PORT": str(settings.api_port + index),
        "STORYSTREAM_DATA_DIR": str(data_dir),
        "STORYSTREAM_STORY_TTL": f"{settings.story_ttl.total_seconds()}s",
        "STORYSTREAM_EXPIRY_GRACE": f"{settings.expiry_grace.total_seconds()}s",
        "STORYSTREAM_PARTITIONS": str(settings.partitions),
        "STORYSTREAM_SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "STORYSTREAM_STATE_MEMORY_MB": str(max(16, settings.state_memory_mb // share)),
        "STORYSTREAM_WORKER_ENGINE": str(settings.worker_engine).lower(),
        "STORYSTREAM_WORKER_PROCESSES": "1",
    }
    if settings.api_url:
        env["STORYSTREAM_API_URL"] = shifted_url(settings.api_url, index)
    if settings.s3_endpoint_url:
        env["STORYSTREAM_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        env["STORYSTREAM_S3_ACCESS_KEY_ID"] = settings.s3_access_key_id
        env["STORYSTREAM_S3_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key.get_secret_value()
    return env


def _own_url(settings: Settings, index: int) -> str:
    """Where the supervisor asks worker `index` for its health."""
    own = settings.model_copy(update={"api_port": settings.api_port + index, "api_url": None})
    return own.advertised_api_url()


def run_processes(settings: Settings) -> int:
    """`storystream worker --processes N` (N > 1): N workers on this host until SIGINT/SIGTERM.

    One Python process runs its engine on one core at most (the GIL), so a host's cores are
    used as Kafka Streams uses stream threads: each process is a member of the consumer group,
    with API_PORT + its index, DATA_DIR/process-<index> and 1/N of STATE_MEMORY_MB. One that
    dies is restarted with backoff; their output is this process's."""
    processes = settings.worker_processes
    if settings.api_port == 0:
        print("storystream worker: --processes needs a fixed API_PORT (not 0)", file=sys.stderr)
        return 2
    if settings.api_port + processes - 1 > 65535:
        print(
            f"storystream worker: --processes {processes} from API_PORT {settings.api_port} "
            "runs past port 65535",
            file=sys.stderr,
        )
        return 2
    try:
        envs = [
            child_env(settings, i, settings.data_dir / f"process-{i}", share=processes)
            for i in range(processes)
        ]
    except ValueError as exc:
        print(f"storystream worker: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    command = [sys.executable, "-m", "streams.cli", "worker"]
    pool = WorkerPool(
        PooledWorker(i, command, env, None, _own_url(settings, i)) for i, env in enumerate(envs)
    )
    pool.start()
    try:
        while not stopping.wait(0.5):
            for line in pool.supervise():
                print(f"storystream worker: {line}", file=sys.stderr, flush=True)
    finally:
        pool.stop()
    return 0
