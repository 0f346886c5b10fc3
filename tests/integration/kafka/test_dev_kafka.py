"""`storystream dev --broker-impl kafka`: the whole system on Apache Kafka, kept on disk, so a
dev stopped and started again still has its stories, counts and consumer offsets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.process import free_port
from streams.api.auth import issue_token
from streams.settings import Settings
from tests.integration.cli import run

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class Dev:
    """`storystream dev --broker-impl kafka` in a subprocess of its own group, as in a
    terminal."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.api_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STORYSTREAM_")} | {
            "STORYSTREAM_DATA_DIR": str(root / "data"),
            "STORYSTREAM_API_PORT": str(self.api_port),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.since = 0

    def start(self) -> None:
        args = ["dev", "--broker-impl", "kafka", "--broker-port", str(free_port()), "--ttl", "1h"]
        out_path = self.root / "dev.out"
        self.since = out_path.stat().st_size if out_path.exists() else 0
        with open(self.root / "dev.out", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *args],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180  # the first start resolves jars and formats storage
        while "ready:" not in self.output():
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"dev not ready:\n{self.output()}"
            time.sleep(0.5)

    def output(self) -> str:
        """What this run of dev printed."""
        return (self.root / "dev.out").read_text(errors="replace")[self.since :]

    def interrupt(self) -> int:
        """Ctrl-C: dev stops its workers, object store and broker."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=90)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def get(self, path: str, user: str) -> tuple[int, Any]:
        secret = Settings().api_secret.get_secret_value()
        token = issue_token(user, secret, datetime.now(UTC))
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def publish(self, events: list[dict[str, Any]]) -> None:
        """`storystream publish` as a user runs it beside dev (it finds dev's broker)."""
        stdin = "".join(json.dumps(e) + "\n" for e in events)
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", "publish", "-"],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def broker(self) -> str:
        state = json.loads((self.root / "data" / "dev.json").read_text())
        return str(state["broker"])

    def wait_views(self, story: str, author: str, total: int) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            status, body = self.get(f"/stories/{story}/views", author)
            if status == 200 and body["total_views"] == total:
                return dict(body)
            assert time.monotonic() < deadline, f"views of {story}: {status} {body}"
            time.sleep(0.5)


def test_dev_on_kafka_keeps_its_stories_across_a_restart(
    kafka_runnable: None, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    story, author = f"kept-{tag}", f"author-{tag}"
    now = datetime.now(UTC).replace(microsecond=0)
    media = [
        {
            "name": "1080",
            "url": "https://cdn.example/k.jpg",
            "width": 1080,
            "height": 1920,
            "content_type": "image/jpeg",
        }
    ]
    posted = {
        "type": "story_posted",
        "story_id": story,
        "author_id": author,
        "created_at": _iso(now),
        "media": media,
        "audience": "public",
    }
    views = [
        {
            "type": "story_viewed",
            "story_id": story,
            "viewer_id": f"v{i}",
            "viewed_at": _iso(now + timedelta(seconds=i + 1)),
        }
        for i in range(5)
    ]
    dev = Dev(tmp_path)
    try:
        dev.start()
        assert "Apache Kafka 4." in dev.output()
        dev.publish([posted, *views[:3]])
        assert dev.wait_views(story, author, 3)["unique_viewers"] == 3
        assert dev.interrupt() == 0
        assert not (tmp_path / "data" / "dev.json").exists()

        dev.start()  # the same data directory: Kafka's log and the workers' RocksDB
        status, body = dev.get(f"/stories/{story}", author)
        assert status == 200 and body["story_id"] == story, body
        assert dev.wait_views(story, author, 3)["unique_viewers"] == 3
        # One view published again (the same line, the same event id) and two new ones:
        # nothing is counted twice across the restart.
        dev.publish([views[2], *views[3:]])
        assert dev.wait_views(story, author, 5)["unique_viewers"] == 5
        consumed = run(
            "consume", "story-view-counts", "--from-beginning", "--latest-per-key",
            "--until-idle", "2", broker=dev.broker(),
        )  # fmt: skip
        counts = {r["key"]: r["value"] for r in map(json.loads, consumed.stdout.splitlines())}
        assert counts[story]["total_views"] == 5
        assert dev.interrupt() == 0
    finally:
        dev.kill()


def test_dev_on_kafka_without_java_says_what_to_install(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYSTREAM_")} | {
        "STORYSTREAM_DATA_DIR": str(tmp_path / "data"),
        "PATH": str(tmp_path),  # no java here
        "JAVA_HOME": "",
    }
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "dev", "--broker-impl", "kafka"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "java not found" in result.stdout and "openjdk-17" in result.stdout, result.stdout
