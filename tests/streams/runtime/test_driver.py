"""The driver: a record that fails costs that record alone (its run undone, the rest applied
once), records are applied in (time, topic rank) order, and keys are checked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.context import Policy, Put
from schemas.records import DeadLetter, StoryViewer
from streams.codecs.avro import AvroCodec
from streams.codecs.registry import EmbeddedRegistry
from streams.kafka.partitioning import partition_for
from streams.runtime.context import StageContext
from streams.runtime.driver import Driver, PartitionState
from streams.runtime.errors import Unavailable
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord
from streams.runtime.routing import OutRecord, Router
from streams.runtime.store import PartitionStore
from streams.runtime.topology import Route, Stage, Topology

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
REGISTRY = EmbeddedRegistry()


class Counting:
    """Per record: adds one to a counter key and publishes a StoryViewer; a value of b"boom"
    raises after writing, a value of b"huge" publishes a record over the topic's limit."""

    def __init__(self) -> None:
        self.calls = 0

    def handle(self, ctx: StageContext, records: Sequence[InRecord]) -> None:
        self.calls += 1
        for record in records:
            key = b"count\x01" + (record.key or b"")
            ctx.store.put(key, str(int(ctx.store.get(key) or b"0") + 1).encode())
            viewer = "x" * 2000 if record.value == b"huge" else f"v{record.offset}"
            ctx.emit([Put(f"s/{viewer}", _viewer(viewer))])
            if record.value == b"boom":
                raise ValueError(f"boom at {record.offset}")

    def tick(self, ctx: StageContext) -> None:
        pass


def _viewer(viewer: str) -> StoryViewer:
    return StoryViewer.model_construct(story_id="s", viewer_id=viewer, first_viewed_at=AT)


class Recording:
    """Records the (topic, offset) of each record it is given, in order."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log

    def handle(self, ctx: StageContext, records: Sequence[InRecord]) -> None:
        self.log += [(r.topic, r.offset) for r in records]

    def tick(self, ctx: StageContext) -> None:
        pass


def _driver(
    tmp: Path, stages: tuple[Stage, ...], external: frozenset[str] = frozenset(), limit: int = 1000
) -> tuple[Driver, Router, dict[int, PartitionState]]:
    topology = Topology(
        stages, {"x": Route("x", "x-topic")}, 4, "changelog", external_inputs=external
    )
    router = Router(topology, REGISTRY, Metrics(), {"story-viewers": limit})
    driver = Driver(topology, router, Policy(), router.metrics)
    return driver, router, {0: PartitionState(PartitionStore(tmp / "p0"))}


def _records(values: list[bytes], topic: str = "in", key: bytes = b"k") -> list[InRecord]:
    return [InRecord(topic, 0, i, key, v, 1_000 + i) for i, v in enumerate(values)]


def _dead(records: list[OutRecord]) -> list[DeadLetter]:
    codec = AvroCodec("DeadLetter", REGISTRY, "story-dead-letters-value")
    return [codec.decode(r.value) for r in records if r.topic == "story-dead-letters"]  # type: ignore[misc]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.sets(st.integers(0, 59), max_size=8))
def test_each_failing_record_is_dead_lettered_alone_and_the_rest_applied_once(
    tmp_path_factory: Any, size: int, failing: set[int]
) -> None:
    handler = Counting()
    driver, router, partitions = _driver(
        tmp_path_factory.mktemp("d"), (Stage("s", ("in",), handler),)
    )
    values = [b"boom" if i in failing else b"ok" for i in range(size)]
    driver.process(partitions, _records(values), AT)
    store = partitions[0].store
    good = [i for i in range(size) if i not in failing]
    assert int(store.get(b"count\x01k") or b"0") == len(good)  # applied once, none twice
    records = router.take_records()
    letters = _dead(records)
    assert sorted(letter.offset for letter in letters) == sorted(i for i in failing if i < size)
    assert all("processing failed: ValueError: boom at" in letter.error for letter in letters)
    viewers = [r.key for r in records if r.topic == "story-viewers"]
    assert viewers == [f"s/v{i}".encode() for i in good]  # outputs of failed runs dropped
    assert partitions[0].applied == {"in": size - 1}
    store.close()


def test_an_output_over_its_topics_limit_dead_letters_its_record(tmp_path: Path) -> None:
    driver, router, partitions = _driver(tmp_path, (Stage("s", ("in",), Counting()),))
    driver.process(partitions, _records([b"ok", b"huge", b"ok"]), AT)
    records = router.take_records()
    (letter,) = _dead(records)
    assert letter.offset == 1 and letter.error.startswith("output too large: story-viewers")
    assert [r.key for r in records if r.topic == "story-viewers"] == [b"s/v0", b"s/v2"]
    partitions[0].store.close()


def test_a_dead_letter_too_large_for_its_topic_names_the_record_instead(tmp_path: Path) -> None:
    driver, router, partitions = _driver(tmp_path, (Stage("s", ("in",), Counting()),))
    huge = InRecord("in", 0, 5, b"k", b"boom" + b"\xff" * 1_200_000, 1_000)
    huge_boom = huge._replace(value=b"boom")
    router.dead_letter(huge, "undecodable", 0)
    router.keep()
    driver.process(partitions, [huge_boom._replace(offset=6)], AT)
    letters = _dead(router.take_records())
    assert letters[0].original_value is None and letters[0].original_key == b"k"
    assert "1,200,005 bytes) not copied" in letters[0].error
    assert "in[0]@5" in letters[0].error and "62 6f 6f 6d ff" in letters[0].error
    assert letters[1].original_value == b"boom"  # small: copied
    partitions[0].store.close()


def test_records_of_several_topics_go_in_time_then_rank_order(tmp_path: Path) -> None:
    log: list[tuple[str, int]] = []
    stages = (
        Stage("first", ("a", "b"), Recording(log)),
        Stage("second", ("c",), Recording(log)),
    )
    driver, _, partitions = _driver(tmp_path, stages)
    records = [
        InRecord("c", 0, 0, b"k", b"", 10),
        InRecord("c", 0, 1, b"k", b"", 20),
        InRecord("b", 0, 0, b"k", b"", 10),
        InRecord("a", 0, 0, b"k", b"", 20),
        InRecord("a", 0, 1, b"k", b"", 5),
    ]
    driver.process(partitions, records, AT)
    assert log == [("a", 1), ("b", 0), ("c", 0), ("a", 0), ("c", 1)]
    driver.process(partitions, records, AT)  # all already reflected: nothing again
    assert len(log) == 5
    partitions[0].store.close()


def _keyed(key: bytes | None, partition: int, offset: int) -> InRecord:
    return InRecord("in", partition, offset, key, b"ok", 1_000)


def test_producers_records_need_a_utf8_key_on_its_murmur2_partition(tmp_path: Path) -> None:
    handler = Counting()
    driver, router, partitions = _driver(
        tmp_path, (Stage("s", ("in",), handler),), external=frozenset({"in"})
    )
    home = partition_for(b"story-1", 4)
    other = (home + 1) % 4
    partitions = {p: PartitionState(PartitionStore(tmp_path / f"q{p}")) for p in {home, other}}
    records = [
        _keyed(b"story-1", home, 0),
        _keyed(None, home, 1),
        _keyed(b"\xff\xfe", home, 2),
        _keyed(b"story-1", other, 0),
        _keyed(b"story-1", home, 3),
    ]
    driver.process(partitions, records, AT)
    letters = {(d.partition, d.offset): d.error for d in _dead(router.take_records())}
    assert letters.keys() == {(home, 1), (home, 2), (other, 0)}
    assert "has no key" in letters[home, 1]
    assert "not UTF-8" in letters[home, 2]
    assert f"belongs to partition {home}" in letters[other, 0]
    assert partitions[home].store.get(b"count\x01story-1") == b"2"
    assert partitions[other].store.get(b"count\x01story-1") is None
    for state in partitions.values():
        state.store.close()


class Unreachable:
    def handle(self, ctx: StageContext, records: Sequence[InRecord]) -> None:
        raise Unavailable("registry down")

    def tick(self, ctx: StageContext) -> None:
        pass


def test_a_service_that_cannot_answer_fails_the_batch_and_dead_letters_nothing(
    tmp_path: Path,
) -> None:
    driver, router, partitions = _driver(tmp_path, (Stage("s", ("in",), Unreachable()),))
    with pytest.raises(Unavailable):
        driver.process(partitions, _records([b"ok", b"ok"]), AT)
    assert router.take_records() == []
    partitions[0].store.close()


def test_a_sink_stage_with_timers_is_refused() -> None:
    # A sink's records may be applied later than they arrive (replay holds them back): a timer
    # of its own would then act before records it should have followed.
    class Due:
        def first_due(self, store: PartitionStore) -> int | None:
            return None

    stage = Stage("tray", ("tray-topic",), Counting(), timers=(Due(),), sink=True)
    with pytest.raises(ValueError, match="stage tray: a sink has no timers"):
        Topology((stage,), {}, 4, "changelog")
