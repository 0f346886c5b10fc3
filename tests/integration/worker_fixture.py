"""Shared integration fixtures: worker subprocesses, the embedded object store, an API client.

Import the fixtures into a test module (`from tests.integration.worker_fixture import
embedded_s3, start_worker  # noqa: F401`); they need the session `settings` (the broker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.process import free_port, spawn, stop
from infra.s3 import EmbeddedS3
from streams.api.auth import issue_token
from streams.settings import Settings


@pytest.fixture(scope="session")
def embedded_s3() -> Iterator[EmbeddedS3]:
    """moto's S3 server, started once for the session."""
    with EmbeddedS3() as server:
        yield server


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class WorkerProcess:
    """A `storystream worker` child process and a small client for its HTTP API."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    api_secret: str
    env: dict[str, str] = field(repr=False)

    def get(self, path: str, user: str | None = None) -> tuple[int, Any]:
        """GET `path` (as `user`, with a signed token, when given): (status, decoded JSON)."""
        headers = {}
        if user is not None:
            token = issue_token(user, self.api_secret, datetime.now(UTC))
            headers["Authorization"] = f"Bearer {token}"
        status, body = http_get(self.url + path, headers)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def healthy(self) -> bool:
        try:
            return http_get(self.url + "/health", timeout=2)[0] == 200
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited ({self.proc.returncode}) before it was healthy:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not healthy after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after `timeout`."""
        stop(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None


StartWorker = Callable[..., WorkerProcess]


def _env_name(name: str) -> str:
    return name if name.startswith("STORYSTREAM_") else f"STORYSTREAM_{name.upper()}"


def launch_worker(
    settings: Settings, data_dir: Path, *, wait: bool = True, **env: Any
) -> WorkerProcess:
    """Start one `storystream worker` on the session broker (the caller stops it).

    Keyword arguments are settings (`app_id=...`, `story_ttl="8s"`, or full `STORYSTREAM_...`
    names); `api_port` defaults to a free port; `wait` waits until /health answers 200.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    overrides = {_env_name(k): str(v) for k, v in env.items() if v is not None}
    full_env = {
        **os.environ,
        "STORYSTREAM_BROKER": settings.bootstrap(),
        "STORYSTREAM_PARTITIONS": str(settings.partitions),
        "STORYSTREAM_DATA_DIR": str(data_dir),
        "STORYSTREAM_API_PORT": str(free_port()),
        **overrides,
    }
    port = full_env["STORYSTREAM_API_PORT"]
    log_path = data_dir / f"worker-{port}.log"
    with open(log_path, "ab") as log:
        proc = spawn([sys.executable, "-m", "streams.cli", "worker"], log=log, env=full_env)
    worker = WorkerProcess(
        proc=proc,
        url=f"http://127.0.0.1:{port}",
        log_path=log_path,
        api_secret=full_env.get("STORYSTREAM_API_SECRET", settings.api_secret.get_secret_value()),
        env=full_env,
    )
    if wait:
        try:
            worker.wait_healthy()
        except BaseException:
            worker.stop()
            raise
    return worker


@pytest.fixture
def start_worker(settings: Settings) -> Iterator[StartWorker]:
    """A factory: `start_worker(data_dir, **env)` is `launch_worker` on the session broker;
    every worker it started is stopped at teardown, whatever the test did."""
    started: list[WorkerProcess] = []

    def start(data_dir: Path, *, wait: bool = True, **env: Any) -> WorkerProcess:
        worker = launch_worker(settings, data_dir, wait=False, **env)
        started.append(worker)
        if wait:
            worker.wait_healthy()
        return worker

    yield start
    for worker in started:
        worker.stop()
