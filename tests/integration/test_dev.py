"""`storystream dev` stops in order on Ctrl-C: a terminal sends SIGINT to its whole foreground
process group, and the broker and workers, in groups of their own, are left to dev to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from infra.process import free_port

pytestmark = pytest.mark.integration


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
            return bool(answer.status == 200 and b"partitions" in answer.read())
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is dead too


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_ctrl_c_stops_dev_and_everything_it_started(tmp_path: Path) -> None:
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYSTREAM_")} | {
        "STORYSTREAM_DATA_DIR": str(tmp_path),
        "STORYSTREAM_API_PORT": str(api_port),
    }
    dev = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "dev", "--broker-port", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own foreground group, as in a terminal
    )
    try:
        deadline = time.monotonic() + 90
        while not _healthy(f"http://127.0.0.1:{api_port}"):
            assert dev.poll() is None and time.monotonic() < deadline, "dev did not start"
            time.sleep(0.5)
        started = _children(dev.pid)
        assert len(started) >= 3  # broker, object store, worker
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C
        dev.wait(timeout=10)  # a broker gone first made the workers' stop wait ~15 s
        assert dev.returncode == 0
        assert not [pid for pid in started if _alive(pid)]
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
