"""The embedded schema registry (`infra.registry_server`) in a child process on loopback."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from infra.process import ChildService, free_port, spawn

log = logging.getLogger(__name__)


class RegistryServerError(RuntimeError):
    """The embedded schema registry could not be started."""


class EmbeddedSchemaRegistry(ChildService):
    """A Confluent-compatible registry serving the repository's schemas with their fixed ids.

    `topic_subjects` maps each topic's value subject to its record (`story-state-value` ->
    `StoryState`). `stop()` (or the context manager's exit) ends it, and the kernel ends it if
    this process dies first.
    """

    def __init__(
        self,
        topic_subjects: Mapping[str, str],
        port: int = 0,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
    ):
        self.topic_subjects = dict(topic_subjects)
        self.host = host
        self.port = port or free_port(host)
        super().__init__(log_path)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedSchemaRegistry:
        if self._log_path is None:
            self._log_path = Path(tempfile.mkstemp(prefix="registry-", suffix=".log")[1])
        args = [sys.executable, "-m", "infra.registry_server"]
        args += ["--host", self.host, "--port", str(self.port)]
        args += [f"--subject={s}={r}" for s, r in sorted(self.topic_subjects.items())]
        with open(self._log_path, "ab") as log_file:
            self._proc = spawn(args, log=log_file)
        self._wait_ready(timeout)
        log.info("embedded schema registry on %s (pid %s)", self.url, self._proc.pid)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RegistryServerError(
                    f"embedded schema registry exited ({self._proc.returncode}): " + self.log_tail()
                )
            try:
                with urllib.request.urlopen(f"{self.url}/subjects", timeout=1.0):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RegistryServerError(
            f"embedded schema registry not ready after {timeout}s: {self.log_tail()}"
        )
