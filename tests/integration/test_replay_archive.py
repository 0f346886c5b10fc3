"""Replay reads from the archive what the broker no longer holds, and gives what a replay of the
full log gives.

The embedded broker has no retention and no DeleteRecords, so "no longer holds" is the replay's
seam `deleted_below` (plan_spans treats the offsets below it as deleted: the broker reader
starts there and never reads lower), after the archive connector has archived everything up to
that point. A replay with the seam and no archive must then differ from the full one, which
shows the seam hides what it claims to."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.archive import ArchiveReader
from connectors.s3_store import S3ObjectStore
from infra.s3 import EmbeddedS3
from streams.replay import ReplaySummary, replay
from streams.settings import Settings
from streams.topics import TOPICS
from streams.worker.archiver import Archiver, archived_topics
from tests.integration.archive_data import broker_records, input_events, own_broker
from tests.integration.worker_fixture import embedded_s3  # noqa: F401
from tests.integration.workers import publish

BASE = datetime(2031, 3, 4, 10, tzinfo=UTC)
END = BASE + timedelta(hours=6)
Outputs = dict[tuple[str, int], list[tuple[bytes | None, bytes | None, int]]]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """This module's own broker (see tests.integration.archive_data)."""
    yield from own_broker(tmp_path_factory)


def _later_events(tag: str) -> list[dict[str, Any]]:
    """Views and reactions, hours 3-5, of the stories posted in hours 0-3 (archived only)."""
    rng = random.Random(3)
    stories = [f"s{i}-{tag}" for i in range(30)]
    users = [f"u{i}-{tag}" for i in range(12)]

    def at() -> str:
        return (BASE + timedelta(hours=3, seconds=rng.randrange(7200))).isoformat()

    events: list[dict[str, Any]] = []
    for _ in range(200):
        events.append({"type": "story_viewed", "story_id": rng.choice(stories),
                       "viewer_id": rng.choice(users), "viewed_at": at()})  # fmt: skip
    for _ in range(40):
        events.append({"type": "story_reacted", "story_id": rng.choice(stories),
                       "user_id": rng.choice(users), "reaction": "wow", "reacted_at": at()})  # fmt: skip
    return events


def _outputs(broker: str, prefix: str, idle: float = 2.0) -> Outputs:
    """Every output record of a replay, partition by partition in offset order."""
    topics = [prefix + spec.name for spec in TOPICS if spec.kind in ("output", "dead-letters")]
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": "tests-outputs", "enable.auto.commit": False}
    )
    found: Outputs = {}
    try:
        metadata = consumer.list_topics(timeout=10).topics
        consumer.assign(
            [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata[t].partitions]
        )
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for msg in consumer.consume(1000, timeout=0.2):
                last = time.monotonic()
                if msg.error() is None:
                    where = (msg.topic().removeprefix(prefix), msg.partition())
                    found.setdefault(where, []).append((msg.key(), msg.value(), msg.timestamp()[1]))
    finally:
        consumer.close()
    return found


@pytest.fixture(scope="module")
def archived(settings: Settings, embedded_s3: EmbeddedS3) -> tuple[ArchiveReader, dict[Any, int]]:  # noqa: F811
    """Hours 0-3 published and archived; then hours 3-5 published and not archived. Returns
    the archive and, per partition, the offset the broker is to hold from (all archived below)."""
    tag = uuid.uuid4().hex[:8]
    publish(settings.bootstrap(), input_events(tag, BASE, hours=3, seed=5))
    held = broker_records(settings.bootstrap(), archived_topics())
    floor: dict[tuple[str, int], int] = {}
    for topic, partition, offset in held:
        floor[topic, partition] = max(floor.get((topic, partition), 0), offset + 1)
    store = S3ObjectStore(
        f"replay-archive-{tag}",
        endpoint_url=embedded_s3.endpoint_url,
        credentials=embedded_s3.credentials,
        create_bucket=True,
    )
    configured = settings.model_copy(
        update={"archive_flush_records": 37, "archive_flush_interval": timedelta(hours=1)}
    )
    archiver = Archiver(configured, store, group_id=f"archive-{tag}")
    started = time.monotonic()
    reached: list[bool] = []

    def until() -> bool:
        if all((archiver.writer.next_offset(tp) or 0) >= end for tp, end in floor.items()):
            reached.append(True)
        return bool(reached) or time.monotonic() - started > 120

    archiver.run(until=until)  # writes every open file when it ends
    assert reached, "the archiver did not read everything"
    publish(settings.bootstrap(), _later_events(tag))
    return ArchiveReader(store), floor


def _same_as_full(
    settings: Settings,
    reader: ArchiveReader,
    floor: dict[tuple[str, int], int],
    start: datetime | None,
) -> tuple[ReplaySummary, ReplaySummary, Outputs]:
    """A replay with the broker's start deleted and the archive, and one of the full log:
    the same records applied, the same outputs (every record, partition and order)."""
    run = uuid.uuid4().hex[:6]
    full = replay(settings, f"full-{run}-", start, END)
    cut = replay(settings, f"cut-{run}-", start, END, archive=reader, deleted_below=floor)
    assert full.records == cut.records > 0
    outputs = _outputs(settings.bootstrap(), f"full-{run}-")
    assert _outputs(settings.bootstrap(), f"cut-{run}-") == outputs
    assert cut.missing == ()
    return full, cut, outputs


def test_a_replay_of_the_whole_log_reads_the_archive_below_the_brokers_first_offsets(
    settings: Settings, archived: tuple[ArchiveReader, dict[Any, int]]
) -> None:
    reader, floor = archived
    full, cut, outputs = _same_as_full(settings, reader, floor, None)
    assert all(served.archive[2] == 0 for served in full.sources)
    served = {(s.topic, s.partition): s for s in cut.sources}
    for tp, below in floor.items():
        if tp not in served:  # a topic the topology does not consume (media-uploaded)
            assert tp[0] == "media-uploaded"
            continue
        first, last, count = served[tp].archive
        assert (first, count) == (0, last + 1), served[tp]  # every offset from 0, in order
        # Up to the broker's first offset, where the broker takes over; unless the partition
        # was cut before (a record past the range's end and its lateness, in both replays).
        if served[tp].broker[2]:
            assert (last, served[tp].broker[0]) == (below - 1, below), served[tp]
    both = [s for s in cut.sources if s.archive[2] and s.broker[2]]
    assert both
    assert f", broker offsets {floor[both[0].topic, both[0].partition]}-" in str(both[0])
    assert str(both[0]).startswith(f"{both[0].topic}[{both[0].partition}]: archive offsets 0-")

    run = uuid.uuid4().hex[:6]
    blind = replay(settings, f"blind-{run}-", None, END, deleted_below=floor)
    assert blind.records < full.records
    assert blind.missing and "no archive is configured" in blind.missing[0]
    assert _outputs(settings.bootstrap(), f"blind-{run}-") != outputs


def test_a_replay_from_a_time_reads_the_archives_hours_from_that_time(
    settings: Settings, archived: tuple[ArchiveReader, dict[Any, int]]
) -> None:
    reader, floor = archived
    start = BASE + timedelta(hours=1, minutes=30)
    _, cut, _ = _same_as_full(settings, reader, floor, start)
    from_archive = sum(s.archive[2] for s in cut.sources)
    whole_archive = sum(floor[s.topic, s.partition] for s in cut.sources)
    assert 0 < from_archive < whole_archive  # the files of hours before 11:00 were not read
