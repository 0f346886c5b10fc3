"""The embedded broker starts, answers metadata, stops, and never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from confluent_kafka.admin import AdminClient

from infra.broker import EmbeddedBroker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().split()[2] != "Z"


def test_start_answers_metadata_then_stop_ends_it() -> None:
    broker = EmbeddedBroker().start()
    pid = broker._proc.pid  # type: ignore[union-attr]
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=5)
    assert metadata.brokers
    broker.stop()
    assert not broker.running
    assert not _alive(pid)


def test_broker_dies_with_a_killed_parent() -> None:
    script = (
        "import sys, time\n"
        "from infra.broker import EmbeddedBroker\n"
        "b = EmbeddedBroker().start()\n"
        "print(b._proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
