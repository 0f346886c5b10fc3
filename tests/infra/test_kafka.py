"""The Apache Kafka launcher: clear errors without Java or Maven, jars resolved once under a lock,
a node that keeps its data across a clean stop and a SIGKILL, and no node outliving its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

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


def _records(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "launcher-test", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        found: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(found) < 20 and time.monotonic() < deadline:
            for msg in consumer.consume(100, timeout=0.5):
                if msg.error() is None:
                    found.append(msg.value())
        return found
    finally:
        consumer.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[KafkaCluster]:
    _require_java()
    with KafkaCluster(data_dir=tmp_path / "kafka") as cluster:
        yield cluster


def test_a_node_keeps_its_records_across_a_clean_stop_and_a_sigkill(node: KafkaCluster) -> None:
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result()
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all"})
    for i in range(20):
        producer.produce("kept", str(i).encode())
    assert producer.flush(30) == 0
    expected = [str(i).encode() for i in range(20)]
    pid = node.nodes[0]._proc.pid  # type: ignore[union-attr]
    node.stop_node(0)
    assert not _alive(pid)
    node.start_node(0)
    assert _records(node.bootstrap, "kept") == expected
    node.kill_node(0)
    node.start_node(0)
    assert _records(node.bootstrap, "kept") == expected


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
