"""The archive connector on the real embedded broker and moto's S3: killed mid-file (SIGKILL of
`storystream archive`, and a crash right after an upload, before its commit) and restarted, it
holds every record of the input topics exactly once, byte for byte."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.archive import ArchiveReader
from connectors.s3_store import S3ObjectStore
from infra.process import spawn, stop
from infra.s3 import EmbeddedS3
from streams.settings import Settings
from streams.worker.archiver import Archiver, archived_topics
from tests.integration.archive_data import (
    Held,
    archived_records,
    broker_records,
    input_events,
    own_broker,
)
from tests.integration.worker_fixture import embedded_s3  # noqa: F401
from tests.integration.workers import publish, wait_for

BASE = datetime(2030, 6, 1, 22, tzinfo=UTC)  # three hours across midnight


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """This module's own broker (see tests.integration.archive_data)."""
    yield from own_broker(tmp_path_factory)


def _store(server: EmbeddedS3, bucket: str) -> S3ObjectStore:
    return S3ObjectStore(
        bucket,
        endpoint_url=server.endpoint_url,
        credentials=server.credentials,
        create_bucket=True,
    )


def _missing(reader: ArchiveReader, held: Held) -> int:
    archived = {where for where, _ in archived_records(reader)}
    return len(held.keys() - archived)


def _assert_exactly_once(reader: ArchiveReader, held: Held) -> None:
    found = archived_records(reader)
    counts = Counter(where for where, _ in found)
    twice = [where for where, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} records archived more than once, e.g. {twice[:3]}"
    archived = dict(found)
    assert held.keys() <= archived.keys(), f"{len(held.keys() - archived.keys())} not archived"
    different = [where for where, record in held.items() if archived[where] != record]
    assert not different, f"archived bytes differ from the broker's: {different[:3]}"
    assert {topic for topic, _, _ in held} == set(archived_topics())


def test_a_sigkilled_archiver_restarted_holds_every_record_exactly_once(
    settings: Settings,
    embedded_s3: EmbeddedS3,  # noqa: F811
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    publish(settings.bootstrap(), input_events(tag, BASE, hours=3))
    held = broker_records(settings.bootstrap(), archived_topics())
    reader = ArchiveReader(_store(embedded_s3, f"archive-kill-{tag}"))
    env = {
        **os.environ,
        "STORYSTREAM_BROKER": settings.bootstrap(),
        "STORYSTREAM_PARTITIONS": str(settings.partitions),
        "STORYSTREAM_DATA_DIR": str(tmp_path),
        "STORYSTREAM_APP_ID": f"archive-{tag}",
        "STORYSTREAM_S3_ENDPOINT_URL": embedded_s3.endpoint_url,
        "STORYSTREAM_S3_ACCESS_KEY_ID": embedded_s3.credentials[0],
        "STORYSTREAM_S3_SECRET_ACCESS_KEY": embedded_s3.credentials[1],
        "STORYSTREAM_ARCHIVE_BUCKET": f"archive-kill-{tag}",
        "STORYSTREAM_ARCHIVE_FLUSH_RECORDS": "5",
        "STORYSTREAM_ARCHIVE_FLUSH_INTERVAL": "1h",  # the rest stays buffered: mid-file
    }
    command = [sys.executable, "-m", "streams.cli", "archive"]
    with open(tmp_path / "first.log", "ab") as log:
        first = spawn(command, log=log, env=env)
    try:
        wait_for(lambda: len(reader.store.list_keys("archive/")) >= 10, 90, "archive files")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert _missing(reader, held) > 0  # killed with records read but not yet written

    # Other file boundaries than before: files rewritten under the same names cannot hide
    # a record written twice.
    env["STORYSTREAM_ARCHIVE_FLUSH_RECORDS"] = "7"
    env["STORYSTREAM_ARCHIVE_FLUSH_INTERVAL"] = "1s"
    with open(tmp_path / "second.log", "ab") as log:
        second = spawn(command, log=log, env=env)
    try:
        wait_for(lambda: _missing(reader, held) == 0, 120, "every record archived")
        time.sleep(2)  # anything written twice would be written by now (files flush each second)
    finally:
        stop(second, 30)
    assert second.returncode == 0, (tmp_path / "second.log").read_text()
    _assert_exactly_once(reader, held)


def _committed(broker: str, group: str, tp: tuple[str, int]) -> int:
    consumer = Consumer({"bootstrap.servers": broker, "group.id": group})
    try:
        [found] = consumer.committed([TopicPartition(*tp)], timeout=10)
    finally:
        consumer.close()
    offset: int = found.offset
    return max(offset, 0)  # -1001: nothing committed


class Crash(BaseException):
    """The process dies here."""


class CrashAfterUploads(S3ObjectStore):
    """Dies right after its n-th upload is stored: before the offsets it covers are committed."""

    def __init__(self, server: EmbeddedS3, bucket: str, uploads: int) -> None:
        super().__init__(
            bucket,
            endpoint_url=server.endpoint_url,
            credentials=server.credentials,
            create_bucket=True,
        )
        self.left = uploads

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
        super().put_bytes(key, data, content_type)
        self.left -= 1
        if self.left == 0:
            raise Crash


def test_a_crash_between_upload_and_commit_duplicates_nothing(
    settings: Settings,
    embedded_s3: EmbeddedS3,  # noqa: F811
) -> None:
    tag = uuid.uuid4().hex[:8]
    publish(settings.bootstrap(), input_events(tag, BASE, hours=3, seed=11))
    held = broker_records(settings.bootstrap(), archived_topics())
    ends: dict[tuple[str, int], int] = {}
    for topic, partition, offset in held:
        ends[topic, partition] = max(ends.get((topic, partition), 0), offset + 1)
    bucket = f"archive-crash-{tag}"
    configured = settings.model_copy(
        update={"archive_flush_records": 4, "archive_flush_interval": timedelta(hours=1)}
    )
    crashing = Archiver(
        configured, CrashAfterUploads(embedded_s3, bucket, 12), group_id=f"archive-{tag}"
    )
    try:
        crashing.run()
    except Crash:
        pass
    else:
        raise AssertionError("the archiver did not upload 12 files")
    reader = ArchiveReader(_store(embedded_s3, bucket))
    assert 0 < _missing(reader, held) < len(held)

    again = Archiver(configured, reader.store, group_id=f"archive-{tag}")
    behind = {
        tp: end
        for tp, end in ends.items()
        if _committed(settings.bootstrap(), f"archive-{tag}", tp) < end
    }
    assert behind

    caught_up: list[bool] = []
    started = time.monotonic()

    def until() -> bool:
        if all((again.writer.next_offset(tp) or 0) >= end for tp, end in behind.items()):
            caught_up.append(True)
        return bool(caught_up) or time.monotonic() - started > 120

    again.run(until=until)  # then writes what it holds, commits and leaves the group
    assert caught_up, "the restarted archiver did not read to the end"
    assert again.writer.stats.already_archived > 0  # it met records the crashed run had written
    _assert_exactly_once(reader, held)
