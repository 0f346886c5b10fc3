"""Worker subprocesses for integration tests, and small polling helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from infra.process import free_port, spawn, stop
from streams.api.auth import issue_token
from tests.integration.cli import run

SECRET = "test-secret-of-at-least-32-bytes-long"


class Worker:
    """`storystream worker` in a subprocess; its log is kept next to its data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            **env,
            "STORYSTREAM_API_PORT": str(self.port),
            "STORYSTREAM_DATA_DIR": str(data_dir),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.with_suffix(".log"), "ab")  # noqa: SIM115
        self.proc = spawn([sys.executable, "-m", "streams.cli", "worker"], log=log, env=self.env)
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, 30)

    def partitions(self) -> list[int] | None:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as answer:
                return list(json.loads(answer.read())["partitions"])
        except (OSError, ValueError):
            return None

    def get(self, path: str, user: str) -> tuple[int, Any]:
        token = issue_token(user, SECRET, datetime.now(UTC))
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def children(pid: int) -> list[int]:
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


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def publish(broker: str, events: list[dict[str, Any]], env: dict[str, str] | None = None) -> None:
    stdin = "".join(json.dumps(e) + "\n" for e in events).encode()
    result = run("publish", "-", broker=broker, stdin=stdin, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def latest(broker: str, topic: str, keys: set[str] | None = None) -> dict[str, Any]:
    """The decoded compacted view of `topic` (limited to `keys`), via the command line."""
    result = run("consume", topic, "--latest-per-key", "--until-idle", "1", broker=broker)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return {r["key"]: r["value"] for r in records if keys is None or r["key"] in keys}


def raw_history(
    broker: str, topic: str, idle: float = 1.0
) -> list[tuple[bytes, bytes | None, int]]:
    """Every record of `topic` as (key, value bytes, timestamp ms), partition by partition."""
    return raw_histories(broker, [topic], idle)[topic]


def raw_histories(
    broker: str, topics: Iterable[str], idle: float = 1.0
) -> dict[str, list[tuple[bytes, bytes | None, int]]]:
    """`raw_history` of several topics, read together: until nothing new came for `idle`
    seconds from any of them (not their end offsets, which the embedded broker misreports
    after batched produces)."""
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": "tests-raw", "enable.auto.commit": False}
    )
    try:
        out: dict[str, list[tuple[bytes, bytes | None, int]]] = {topic: [] for topic in topics}
        assignment = [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in out
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        consumer.assign(assignment)
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for msg in consumer.consume(1000, timeout=0.2):
                last = time.monotonic()
                if msg.error() is None:
                    out[msg.topic()].append((msg.key(), msg.value(), msg.timestamp()[1]))
        return out
    finally:
        consumer.close()


def raw_latest(broker: str, topic: str) -> dict[bytes, bytes]:
    """The byte-exact compacted view of `topic`: last value per key, tombstoned keys omitted."""
    return raw_latests(broker, [topic])[topic]


def raw_latests(broker: str, topics: Iterable[str]) -> dict[str, dict[bytes, bytes]]:
    """`raw_latest` of several topics, read together (see `raw_histories`)."""
    views: dict[str, dict[bytes, bytes]] = {}
    for topic, history in raw_histories(broker, topics).items():
        view: dict[bytes, bytes | None] = {}
        for key, value, _ in history:
            view[key] = value
        views[topic] = {k: v for k, v in view.items() if v is not None}
    return views
