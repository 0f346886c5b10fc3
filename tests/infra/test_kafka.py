"""The Apache Kafka launcher: clear errors without Java or Maven, jars resolved once under a lock,
no node outliving its parent. (Nodes stopped, killed and restarted on their data under a
running worker: tests/integration/kafka/test_broker_failures.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.kafka import KafkaCluster, KafkaUnavailable
from infra.kafka.jars import java_binary, kafka_classpath
from tests.infra.test_broker import _alive


def _require_java() -> str:
    try:
        return java_binary()
    except KafkaUnavailable as exc:
        pytest.skip(f"Apache Kafka unavailable: {exc}")


@pytest.fixture
def java() -> str:
    """The java a node would run on (skipped, naming what is missing, without one)."""
    return _require_java()


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with nothing on it, JAVA_HOME unset and an empty jar cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("STORYSTREAM_KAFKA_CACHE", str(tmp_path / "cache"))
    return bin_dir


def test_missing_java_is_named_with_what_to_install(empty_path: Path) -> None:
    with pytest.raises(KafkaUnavailable, match=r"java not found.*Java 17\+.*openjdk-17"):
        KafkaCluster().start()


def test_missing_maven_is_named_when_jars_are_not_cached(java: str, empty_path: Path) -> None:
    (empty_path / "java").symlink_to(java)
    with pytest.raises(KafkaUnavailable, match=r"mvn not found.*apt-get install maven"):
        KafkaCluster().start()


def test_jars_are_resolved_once_by_one_of_two_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes resolving a fresh cache at once run Maven once; both get the jars."""
    _require_java()
    real_mvn = subprocess.run(["which", "mvn"], capture_output=True, text=True).stdout.strip()
    if not real_mvn:
        pytest.skip("Apache Kafka unavailable: mvn not found on PATH (apt-get install maven)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "mvn-calls"
    wrapper = bin_dir / "mvn"
    wrapper.write_text(f'#!/bin/sh\necho run >> {calls}\nexec {real_mvn} "$@"\n')
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STORYSTREAM_KAFKA_CACHE": str(tmp_path / "cache"),
    }
    script = "from infra.kafka.jars import kafka_classpath; print(kafka_classpath())"
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300)[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs[0] == outputs[1]
    jars = sorted(p.name for p in Path(outputs[0]).parent.glob("*.jar"))
    assert any(name.startswith("kafka_2.13-4.") for name in jars), jars
    assert calls.read_text().count("run") == 1
    monkeypatch.setenv("STORYSTREAM_KAFKA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # cached: Maven is not needed again
    assert kafka_classpath() == outputs[0]


def test_a_node_dies_with_a_killed_parent(tmp_path: Path) -> None:
    _require_java()
    script = (
        "import sys, time\n"
        "from infra.kafka import KafkaCluster\n"
        f"c = KafkaCluster(data_dir={str(tmp_path / 'kafka')!r}).start()\n"
        "print(c.nodes[0]._proc.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
