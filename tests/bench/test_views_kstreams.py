"""The Kafka Streams contender's Python side: its pass figures, its checks of schema and broker."""

from __future__ import annotations

import json

import pytest

from bench import views_kstreams
from bench.views_kstreams import KafkaStreamsPass, Unavailable

LINE = {
    "pass": 2,
    "threads": 1,
    "status": "ok",
    "count": 200000,
    "expected": 200000,
    "first_after_launch": 2.6,
    "seconds": 15.0,
    "process_cpu": 10.0,
    "stream_threads_cpu": 5.0,
    "seconds_committed": 15.5,
    "process_cpu_committed": 10.5,
    "stream_threads_cpu_committed": 5.2,
    "cpu_by_thread": {
        "java:StreamThread-N": 5.2,
        "vm:C2 CompilerThre": 2.0,
        "vm:C1 CompilerThre": 0.5,
        "vm:GC Thread#N": 1.0,
        "java threads (total)": 7.0,
        "java threads by /proc": 7.1,
    },
    "invalid": 0,
    "unknown_story": 1,
    "skipped": 0,
    "outputs": {"view-counts": 31208, "viewers": 159667, "seen": 159667},
}


def test_a_pass_line_is_read_with_its_jit_and_thread_breakdown() -> None:
    found = KafkaStreamsPass.of(json.loads(json.dumps(LINE)))
    assert (found.number, found.threads, found.warm, found.count) == (2, 1, True, 200_000)
    assert found.seconds_committed == 15.5 and found.process_cpu_committed == 10.5
    assert found.jit_cpu == pytest.approx(2.5)
    assert found.rejected == {"unknown_story": 1}  # zero counts are left out
    assert found.outputs["viewers"] == 159_667
    shown = found.top_threads(3)
    assert shown.startswith("java:StreamThread-N 5.20, vm:C2 CompilerThre 2.00")
    assert "total" not in found.top_threads() and "/proc" not in found.top_threads()


def test_a_cold_pass_is_the_first() -> None:
    assert not KafkaStreamsPass.of({**LINE, "pass": 1}).warm


def test_the_java_decoder_reads_the_current_schemas() -> None:
    views_kstreams.check_layouts()  # raises when a field it reads by hand has moved


def test_skipped_with_the_reason_on_the_embedded_broker_only(
    broker_impl: str, bootstrap: str
) -> None:
    if broker_impl == "tansu":
        with pytest.raises(Unavailable, match="JoinGroup"):
            views_kstreams.check_broker(bootstrap)
    elif broker_impl == "kafka":
        views_kstreams.check_broker(bootstrap)  # a real broker: no reason to skip
    else:
        pytest.skip("STORYSTREAM_BROKER is set: which broker it is cannot be told here")
