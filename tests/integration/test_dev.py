"""`storystream dev` stops in order on Ctrl-C: a terminal sends SIGINT to its whole foreground
process group, and the broker and workers, in groups of their own, are left to dev to stop.
A worker that dies is restarted while the broker, object store and other workers stay up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from infra.process import free_port
from streams.api.auth import issue_token
from streams.settings import Settings
from tests.integration.workers import children

pytestmark = pytest.mark.integration

DEFAULT_SECRET = Settings.model_fields["api_secret"].get_default().get_secret_value()


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
        started = children(dev.pid)
        assert len(started) >= 3  # broker, object store, worker
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C
        dev.wait(timeout=10)  # a broker gone first made the workers' stop wait ~15 s
        assert dev.returncode == 0
        assert not [pid for pid in started if _alive(pid)]
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()


def _workers_of(pid: int) -> list[int]:
    """The `storystream worker` processes among `pid`'s children."""
    found = []
    for child in children(pid):
        try:
            args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streams.cli" in args and b"worker" in args and _alive(child):
            found.append(child)
    return found


def _get(url: str, user: str) -> tuple[int, Any]:
    token = issue_token(user, DEFAULT_SECRET, datetime.now(UTC))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, str(exc)


def _poll(what: str, check: Callable[[], Any], timeout: float, dev: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        assert dev.poll() is None, f"dev exited ({dev.returncode}) while waiting for {what}"
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)


def _publish(lines: list[dict[str, str]], data_dir: Path, cwd: Path) -> None:
    """`storystream publish` from another directory, pointed at dev by its data dir alone."""
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "publish", "-"],
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True,
        text=True,
        env=_clean_env() | {"STORYSTREAM_DATA_DIR": str(data_dir)},
        cwd=cwd,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STORYSTREAM_")}


def _story(story_id: str, author: str, viewers: list[str]) -> list[dict[str, str]]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    posted = {"type": "story_posted", "story_id": story_id, "author_id": author,
              "created_at": now, "audience": "public"}  # fmt: skip
    views = [{"type": "story_viewed", "story_id": story_id, "viewer_id": v, "viewed_at": now}
             for v in viewers]  # fmt: skip
    return [posted, *views]


def test_a_killed_worker_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    data_dir, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir()
    api = f"http://127.0.0.1:{free_port()}"
    env = _clean_env() | {
        "STORYSTREAM_DATA_DIR": str(data_dir),
        "STORYSTREAM_API_PORT": api.rsplit(":", 1)[1],
    }
    output = tmp_path / "dev.out"
    with open(output, "wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "dev", "--broker-port", str(free_port())],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _poll("dev's ready line", lambda: "ready: " in output.read_text(), 90, dev)
        assert f"elsewhere: export STORYSTREAM_DATA_DIR={data_dir}" in output.read_text()
        [worker] = _workers_of(dev.pid)
        others = set(children(dev.pid)) - {worker}  # the broker and the object store

        _publish(_story("s-before", "alice", ["v1", "v2", "v3"]), data_dir, elsewhere)
        counts = {"story_id": "s-before", "unique_viewers": 3, "total_views": 3}
        views = f"{api}/stories/s-before/views"
        _poll("the views before", lambda: _get(views, "alice") == (200, counts), 30, dev)

        os.kill(worker, signal.SIGKILL)
        restarted = _poll(
            "a new worker",
            lambda: [pid for pid in _workers_of(dev.pid) if pid != worker],
            30,
            dev,
        )
        back = "worker 0 is healthy again"
        _poll("the restarted worker to be healthy", lambda: back in output.read_text(), 90, dev)
        assert _healthy(api)
        assert len(restarted) == 1 and not _alive(worker)
        assert others <= set(children(dev.pid)) and all(_alive(pid) for pid in others)
        lines = output.read_text()
        log_path = data_dir / "worker-0.log"
        assert (
            f"worker 0 (pid {worker}) exited with code -9 (SIGKILL); restarting it in 1 s; "
            f"its log: {log_path}" in lines
        ), lines
        assert "--- storystream: worker 0 (pid" in log_path.read_text()

        # What was published before is still there (the broker kept it; the worker restored).
        assert _get(views, "alice") == (200, counts)
        status, story = _get(f"{api}/stories/s-before", "bob")
        assert status == 200 and story["status"] == "active", story
        # And what is published after is processed.
        _publish(_story("s-after", "alice", ["v1", "v4"]), data_dir, elsewhere)
        _publish(_story("s-before", "alice", ["v4"])[1:], data_dir, elsewhere)
        after = {"story_id": "s-after", "unique_viewers": 2, "total_views": 2}
        _poll(
            "the views after",
            lambda: (
                _get(f"{api}/stories/s-after/views", "alice") == (200, after)
                and _get(views, "alice") == (200, counts | {"unique_viewers": 4, "total_views": 4})
            ),
            30,
            dev,
        )

        # `post` from elsewhere with dev's data directory alone: its store, its API (--wait).
        photo = elsewhere / "photo.png"
        Image.new("RGB", (320, 200), (200, 40, 40)).save(photo)
        posted = subprocess.run(
            [sys.executable, "-m", "streams.cli", "post", "--author", "alice", "--media",
             str(photo), "--wait", "--timeout", "60"],
            capture_output=True, text=True, timeout=90, cwd=elsewhere,
            env=_clean_env() | {"STORYSTREAM_DATA_DIR": str(data_dir)},
        )  # fmt: skip
        assert posted.returncode == 0, posted.stderr
        done = json.loads(posted.stdout)
        assert done["status"] == "active"
        assert [r["name"] for r in done["renditions"]] == ["320", "thumbnail"]
        assert dev.poll() is None
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGINT)
            try:
                dev.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()
    assert dev.returncode == 0, output.read_text()
