"""The archive connector without a broker: file layout and format, the writer's exactly-once
under crashes at any upload (a property), flushing, retention, reading back in offset order."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.archive import (
    ArchivedFile,
    ArchivedRecord,
    ArchiveReader,
    ArchiveWriter,
    decode_file,
    encode_file,
    parse_key,
    sweep,
)
from connectors.archive.layout import HOUR_MS, partition_prefix
from connectors.memory_store import InMemoryObjectStore
from connectors.object_store import ObjectStore, ObjectStoreError

BASE_HOUR = int(datetime(2026, 11, 22, 22, tzinfo=UTC).timestamp()) // 3600  # a day's end


class Crash(BaseException):
    """The process dies here (not an error the archiver handles)."""


class CrashingStore(InMemoryObjectStore):
    """Dies right after its n-th upload is stored: between an upload and its commit."""

    def __init__(self, objects: dict[str, tuple[bytes, str]], after: int | None) -> None:
        super().__init__("archive")
        self._objects = objects
        self._after = after
        self.uploads = 0

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
        super().put_bytes(key, data, content_type)
        self.uploads += 1
        if self._after is not None and self.uploads >= self._after:
            raise Crash


class UploadsFail(InMemoryObjectStore):
    failing = True

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
        if self.failing:
            raise ObjectStoreError(f"put {key}: unavailable")
        super().put_bytes(key, data, content_type)


class ListingFails(InMemoryObjectStore):
    failing = False

    def list_keys(self, prefix: str) -> list[str]:
        if self.failing:
            raise ObjectStoreError(f"list {prefix}: unavailable")
        return super().list_keys(prefix)


def _record(partition: int, offset: int, hour: int, minute: int = 0) -> ArchivedRecord:
    timestamp = (BASE_HOUR + hour) * HOUR_MS + minute * 60_000 + offset
    return ArchivedRecord(partition, offset, timestamp, f"k{offset}".encode(), b"\x00v%d" % offset)


def _archived(store: ObjectStore) -> dict[tuple[str, int], list[ArchivedRecord]]:
    """Every archived record by topic and partition, checking each file against its name."""
    found: dict[tuple[str, int], list[ArchivedRecord]] = {}
    for key in store.list_keys("archive/"):
        archived = parse_key(key)
        assert archived is not None, key
        records = list(decode_file(store.get_bytes(key)))
        assert [r.offset for r in records] == sorted(r.offset for r in records)
        assert (records[0].offset, records[-1].offset) == (archived.first, archived.last)
        assert {r.timestamp // HOUR_MS for r in records} == {archived.hour}
        assert {r.partition for r in records} == {archived.partition}
        found.setdefault((archived.topic, archived.partition), []).extend(records)
    return found


class TestLayout:
    def test_a_file_key_names_topic_hour_partition_and_offsets(self) -> None:
        archived = ArchivedFile("story-viewed", 3, 120, 4567, BASE_HOUR + 1)
        assert archived.key == (
            "archive/story-viewed/date=2026-11-22/hour=23/"
            "story-viewed+3+00000000000000000120+00000000000000004567.avro"
        )
        assert parse_key(archived.key) == archived

    def test_keys_that_are_not_archive_files_are_not_parsed(self) -> None:
        good = ArchivedFile("story-viewed", 3, 1, 2, BASE_HOUR).key
        assert parse_key(good.replace("+3+", "+x+")) is None
        assert parse_key(good.replace("story-viewed+", "story-posted+")) is None
        assert parse_key(good + ".tmp") is None
        assert parse_key("media/m1/720.jpg") is None

    def test_one_partitions_prefix_is_not_anothers(self) -> None:
        ten = ArchivedFile("t", 10, 1, 2, BASE_HOUR).key
        assert not ten.startswith(partition_prefix("t", 1, BASE_HOUR))
        assert ten.startswith(partition_prefix("t", 10, BASE_HOUR))


class TestFiles:
    @pytest.mark.parametrize("codec", ["deflate", "null"])
    def test_any_avro_reader_reads_what_is_written(self, codec: str) -> None:
        records = [
            ArchivedRecord(2, 7, 1_790_000_000_123, b"story-1", b"\x00\x00\x00\x00\x05abc"),
            ArchivedRecord(2, 9, 1_790_000_000_124, None, None, [("trace", b"1"), ("x", None)]),
            ArchivedRecord(2, 10, -1, b"", b""),
        ]
        data = encode_file("story-viewed", 2, records, codec)  # type: ignore[arg-type]
        reader = fastavro.reader(io.BytesIO(data))
        assert reader.metadata["storystream.topic"] == "story-viewed"
        assert reader.metadata["avro.codec"] == codec
        rows = list(reader)
        assert rows[1] == {
            "partition": 2,
            "offset": 9,
            "timestamp": 1_790_000_000_124,
            "key": None,
            "value": None,
            "headers": [{"key": "trace", "value": b"1"}, {"key": "x", "value": None}],
        }
        assert list(decode_file(data)) == records

    def test_large_files_are_written_in_blocks(self) -> None:
        records = [ArchivedRecord(0, n, n, b"k", b"v" * 1000) for n in range(3000)]
        data = encode_file("t", 0, records)
        blocks = list(fastavro.block_reader(io.BytesIO(data)))
        assert len(blocks) > 1
        assert list(decode_file(data)) == records


def _writer(store: ObjectStore, **kwargs: object) -> ArchiveWriter:
    options: dict[str, object] = {"flush_records": 1000, "flush_seconds": 3600.0}
    options.update(kwargs)
    return ArchiveWriter(store, **options)  # type: ignore[arg-type]


def _feed(writer: ArchiveWriter, topic: str, records: list[ArchivedRecord]) -> None:
    for r in records:
        writer.add(topic, r.partition, r.offset, r.timestamp, r.key, r.value, None)


class TestWriter:
    def test_a_file_is_written_every_n_records_of_a_partition_and_hour(
        self, make_store: Callable[..., ObjectStore]
    ) -> None:
        store = make_store()
        writer = _writer(store, flush_records=3)
        hours = [0, 0, 1, 0, 1, 1, 0, 2]  # in offset order: the hours interleave
        records = [_record(0, n, h) for n, h in enumerate(hours)]
        _feed(writer, "story-viewed", records)
        assert store.list_keys("archive/") == []  # full files wait for the next flush
        assert writer.flush_due() == {("story-viewed", 0)}
        names = [parse_key(k) for k in store.list_keys("archive/")]
        assert sorted((f.hour - BASE_HOUR, f.first, f.last) for f in names if f) == [
            (0, 0, 3),
            (1, 2, 5),
        ]
        assert writer.position(("story-viewed", 0)) == 6  # offset 6 (hour 0) is not written
        writer.flush()
        assert writer.position(("story-viewed", 0)) == 8
        assert sorted(_archived(store)["story-viewed", 0]) == records

    def test_a_file_open_for_the_interval_is_written(self) -> None:
        store = InMemoryObjectStore()
        now = [0.0]
        writer = _writer(store, flush_seconds=10.0, monotonic=lambda: now[0])
        _feed(writer, "t", [_record(0, 0, 0)])
        now[0] = 9.9
        assert writer.flush_due() == set()
        _feed(writer, "t", [_record(0, 1, 0)])
        now[0] = 10.0
        assert writer.flush_due() == {("t", 0)}
        assert [r.offset for r in _archived(store)["t", 0]] == [0, 1]

    def test_buffered_bytes_are_bounded(self) -> None:
        store = InMemoryObjectStore()
        writer = _writer(store, max_buffered_bytes=30_000)
        for n in range(40):
            writer.add("t", n % 4, n, BASE_HOUR * HOUR_MS, b"k", b"v" * 1000, None)
        writer.flush_due()
        assert 0 < writer.buffered_records
        assert sum(len(v) for v in _archived(store).values()) + writer.buffered_records == 40
        assert writer.buffered_records * 1000 <= 15_000

    def test_a_failed_upload_keeps_the_file_and_the_position(self) -> None:
        store = UploadsFail()
        writer = _writer(store, flush_records=2)
        _feed(writer, "t", [_record(0, n, 0) for n in range(3)])
        with pytest.raises(ObjectStoreError):
            writer.flush_due()
        assert writer.position(("t", 0)) == 0
        store.failing = False
        writer.flush()
        assert [r.offset for r in _archived(store)["t", 0]] == [0, 1, 2]

    def test_a_failed_listing_leaves_the_record_unread(self) -> None:
        store = ListingFails()
        writer = _writer(store)
        _feed(writer, "t", [_record(0, 0, 0)])
        store.failing = True
        with pytest.raises(ObjectStoreError):
            _feed(writer, "t", [_record(0, 1, 1)])  # a new hour: its files are listed
        assert writer.next_offset(("t", 0)) == 1
        store.failing = False
        _feed(writer, "t", [_record(0, 1, 1)])
        writer.flush()
        assert [r.offset for r in sorted(_archived(store)["t", 0])] == [0, 1]

    def test_records_past_the_retention_are_not_archived(self) -> None:
        store = InMemoryObjectStore()
        now_s = (BASE_HOUR + 10) * 3600.0
        writer = _writer(store, retention_ms=5 * HOUR_MS, clock=lambda: now_s)
        _feed(writer, "t", [_record(0, 0, 4, 59), _record(0, 1, 5), _record(0, 2, 9)])
        writer.flush()
        assert [r.offset for r in _archived(store)["t", 0]] == [1, 2]
        assert writer.stats.expired == 1

    def test_dropped_partitions_are_read_again_from_their_position(self) -> None:
        store = InMemoryObjectStore()
        writer = _writer(store, flush_records=2)
        _feed(writer, "t", [_record(0, n, n % 2) for n in range(5)])
        writer.flush_due()
        committed = writer.position(("t", 0))
        writer.drop([("t", 0)])
        assert writer.position(("t", 0)) is None
        assert writer.buffered_records == 0
        other = _writer(store, flush_records=2)
        assert committed is not None
        _feed(other, "t", [_record(0, n, n % 2) for n in range(committed, 5)])
        other.flush()
        assert [r.offset for r in sorted(_archived(store)["t", 0])] == [0, 1, 2, 3, 4]


@settings(max_examples=150, deadline=None)
@given(
    hours=st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=60), min_size=1, max_size=3),
    flush_records=st.integers(1, 6),
    flush_seconds=st.integers(1, 4),
    batch=st.integers(1, 9),
    commit_every=st.integers(1, 4),
    crash_after=st.integers(1, 40),
)
def test_a_crash_at_any_upload_then_a_restart_archives_every_record_exactly_once(
    hours: list[list[int]],
    flush_records: int,
    flush_seconds: int,
    batch: int,
    commit_every: int,
    crash_after: int,
) -> None:
    """Partitions of records whose hours interleave, consumed in batches, flushed by count
    and by time, committed every few rounds; the process dies right after an upload (before
    its commit); a new writer resumes from the committed offsets."""
    log = {
        p: [_record(p, n, h, minute=n % 60) for n, h in enumerate(hs)] for p, hs in enumerate(hours)
    }
    objects: dict[str, tuple[bytes, str]] = {}
    committed: dict[int, int] = {}

    def run(store: CrashingStore) -> None:
        now = [0.0]
        writer = ArchiveWriter(
            store,
            flush_records=flush_records,
            flush_seconds=float(flush_seconds),
            monotonic=lambda: now[0],
        )
        writer.assigned(("t", p) for p in log)
        cursors = {p: committed.get(p, 0) for p in log}
        rounds = 0
        while any(cursors[p] < len(log[p]) for p in log):
            for p, records in log.items():
                chunk = records[cursors[p] : cursors[p] + batch]
                cursors[p] += len(chunk)
                _feed(writer, "t", chunk)
            now[0] += 1
            writer.flush_due()
            rounds += 1
            if rounds % commit_every == 0:
                for p in log:
                    position = writer.position(("t", p))
                    if position is not None:
                        committed[p] = position
        writer.flush()

    try:
        run(CrashingStore(objects, after=crash_after))
    except Crash:
        pass
    run(CrashingStore(objects, after=None))
    archived = _archived(CrashingStore(objects, after=None))
    for p, records in log.items():
        got = archived.get(("t", p), [])
        assert Counter(r.offset for r in got) == Counter(r.offset for r in records)
        assert sorted(got) == records  # equal bytes, timestamps, keys


class TestReader:
    def test_a_partitions_records_come_back_in_offset_order_across_hours(self) -> None:
        store = InMemoryObjectStore()
        writer = _writer(store, flush_records=2)
        hours = [0, 1, 0, 2, 1, 0, 0, 2, 25, 1]
        records = [_record(1, n, h) for n, h in enumerate(hours)]
        _feed(writer, "t", records)
        _feed(writer, "t", [_record(0, 0, 0)])
        writer.flush()
        reader = ArchiveReader(store)
        files = reader.files("t")
        assert sorted(files) == [0, 1]
        assert list(reader.records(files[1])) == records
        assert [r.offset for r in reader.records(files[1], below=6)] == [0, 1, 2, 3, 4, 5]
        from_hour_1 = reader.files("t", from_ms=(BASE_HOUR + 1) * HOUR_MS + 1)
        assert [r.offset for r in reader.records(from_hour_1[1])] == [1, 3, 4, 7, 8, 9]
        tomorrow = reader.files("t", from_ms=(BASE_HOUR + 25) * HOUR_MS)
        assert [r.offset for r in reader.records(tomorrow[1])] == [8]

    def test_a_record_in_two_files_is_read_once(self) -> None:
        store = InMemoryObjectStore()
        records = [_record(0, n, 0) for n in range(4)]
        for first, last in ((0, 2), (2, 3)):
            store.put_bytes(
                ArchivedFile("t", 0, first, last, BASE_HOUR).key,
                encode_file("t", 0, records[first : last + 1]),
            )
        reader = ArchiveReader(store)
        assert list(reader.records(reader.files("t")[0])) == records
        assert reader.duplicates == 1


def test_retention_deletes_the_hours_before_the_cutoff(
    make_store: Callable[..., ObjectStore],
) -> None:
    store = make_store()
    kept_elsewhere = "media/m1/720.jpg"
    store.put_bytes(kept_elsewhere, b"x")
    for topic in ("a", "b"):
        for hour in (-30, -2, -1, 0, 1, 30):  # hour 0 is 22:00, hour 2 the next day
            records = [_record(0, 0, hour)]
            archived = ArchivedFile(topic, 0, 0, 0, BASE_HOUR + hour)
            store.put_bytes(archived.key, encode_file(topic, 0, records))
    assert sweep(store, BASE_HOUR) == 6
    left = sorted({f.hour - BASE_HOUR for k in store.list_keys("archive/") if (f := parse_key(k))})
    assert left == [0, 1, 30]
    assert sweep(store, BASE_HOUR) == 0
    assert store.list_keys("media/") == [kept_elsewhere]
