"""Child processes that die with their parent (no orphans, even on SIGKILL of the parent)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # A process group of its own: Ctrl-C in a terminal signals the whole foreground group,
    # and a broker or worker stopping at once with its parent left the parent's orderly stop
    # (workers first, then the broker) waiting ~15 s on a broker already gone. The parent
    # stops its children; if it dies, the kernel's SIGTERM below does.
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: list[str], log: IO[Any] | int | None = subprocess.DEVNULL, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """Start `args` as a child that the kernel terminates when this process dies."""
    preexec: Callable[[], None] = _die_with_parent
    return subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec, **kwargs
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; always reaps the child."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive TCP ports that are free on `host` right now (what
    `storystream worker --processes` takes from its API_PORT)."""
    for _ in range(100):
        first = free_port(host)
        with ExitStack() as held:
            try:
                for port in range(first, first + count):
                    held.enter_context(socket.socket()).bind((host, port))
            except OSError:
                continue
            return first
    raise OSError(f"no {count} consecutive free ports on {host}")


class ChildService:
    """A server in a child process, logging to a file: what the embedded broker and object
    store share (subclasses set `_proc` in `start()`, and `_log_path` if it was not given)."""

    def __init__(self, log_path: Path | None = None) -> None:
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's log, for error messages."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)
            self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
