"""`storystream worker --processes 2`: two members of the group under one supervisor, on
API_PORT and API_PORT + 1; one that is killed is restarted; SIGTERM stops both."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pytest

from infra.process import free_ports
from infra.s3 import EmbeddedS3
from streams.settings import Settings
from tests.integration import worker_fixture
from tests.integration.test_write_api import post_ready_story, s3_env
from tests.integration.worker_fixture import StartWorker, WorkerProcess, http_get
from tests.integration.workers import SECRET, children, wait_for
from tests.integration.write_client import call

pytestmark = pytest.mark.integration
embedded_s3 = worker_fixture.embedded_s3
start_worker = worker_fixture.start_worker


def _partitions(url: str) -> list[int] | None:
    """The partitions the process at `url` holds, or None while it does not answer."""
    try:
        status, body = http_get(url + "/health", timeout=2)
    except OSError:
        return None
    return list(json.loads(body)["partitions"]) if status == 200 else None


def test_two_processes_split_the_partitions_and_a_killed_one_comes_back(
    settings: Settings, embedded_s3: EmbeddedS3, start_worker: StartWorker, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    port = free_ports(2)
    worker = start_worker(
        tmp_path / "w",
        app_id=f"wp-{tag}",
        api_secret=SECRET,
        api_port=port,
        worker_processes=2,
        **s3_env(embedded_s3, f"wp-{tag}"),
    )
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    everything = list(range(settings.partitions))

    def split() -> bool:
        parts = [_partitions(url) for url in urls]
        return all(parts) and sorted(parts[0] + parts[1]) == everything  # type: ignore[operator]

    wait_for(split, 90, "the two processes sharing the partitions")
    assert (tmp_path / "w" / "process-0").is_dir() and (tmp_path / "w" / "process-1").is_dir()

    story, author, viewer = f"s-{tag}", f"ann-{tag}", f"bob-{tag}"
    post_ready_story(settings, story, author)
    second = WorkerProcess(worker.proc, urls[1], worker.log_path, SECRET, worker.env)
    wait_for(lambda: second.get(f"/stories/{story}", author)[0] == 200, 30, "the story")
    assert call(second, "POST", f"/stories/{story}/views", viewer).status == 202
    wait_for(
        lambda: call(worker, "GET", f"/stories/{story}/views", author).body.get("total_views") == 1,
        30,
        "the view counted, read through either process",
    )

    first = children(worker.proc.pid)
    assert len(first) == 2
    os.kill(first[1], signal.SIGKILL)
    wait_for(lambda: len(set(children(worker.proc.pid)) - set(first)) == 1, 30, "a restart")
    wait_for(split, 90, "the restarted process back in the group")
    assert worker.running
    log = worker.log_path.read_text(errors="replace")
    assert f"worker 1 (pid {first[1]}) exited with code -9 (SIGKILL); restarting it" in log

    now = children(worker.proc.pid)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(60) == 0
    assert not [pid for pid in now if Path(f"/proc/{pid}").exists()]
