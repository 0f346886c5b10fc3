"""The embedded S3-compatible object store (moto's server) on loopback, for dev and tests."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from infra.process import ChildService, free_port, spawn

log = logging.getLogger(__name__)

# moto accepts any credentials; boto3 refuses to sign without some.
CREDENTIALS = ("storystream", "storystream-secret")


class ObjectStoreServerError(RuntimeError):
    """The embedded object store could not be started."""


class EmbeddedS3(ChildService):
    """moto's S3 server in a child process on a loopback port (objects live in its memory).

    `stop()` (or the context manager's exit) ends it, and the kernel ends it if this process
    dies first (PR_SET_PDEATHSIG), so no orphan is left behind.
    """

    credentials = CREDENTIALS
    region = "us-east-1"

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        super().__init__(log_path)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedS3:
        if self._log_path is None:
            self._log_path = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
        args = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        with open(self._log_path, "ab") as log_file:
            self._proc = spawn(args, log=log_file)
        self._wait_ready(timeout)
        log.info("embedded object store on %s (pid %s)", self.endpoint_url, self._proc.pid)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ObjectStoreServerError(
                    f"embedded object store exited ({self._proc.returncode}): {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1.0):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise ObjectStoreServerError(
            f"embedded object store not ready after {timeout}s: {self.log_tail()}"
        )
