"""Writes input records into the archive exactly once: one file at a time per (topic,
partition, hour), flushed every N records or T seconds, and never a record that a file already
holds.

Where a partition's archive stands is the files themselves. The consumer's committed offset is
where reading resumes: the first offset of the partition's oldest unwritten file (or the next
offset when none is open), committed after the files before it are uploaded. After a crash, and
between an upload and its commit, the records from there on are read again; a record is left
out when a file of its partition and hour already spans its offset (one listing of the hour's
files, the first time the hour is met after an assignment). A file of an hour holds every
record of that hour between its first and last offset, so spanning means holding it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from connectors.archive.files import Codec, Header, Row, encode_file
from connectors.archive.layout import HOUR_MS, ArchivedFile, parse_key, partition_prefix
from connectors.object_store import ObjectStore

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
CONTENT_TYPE = "avro/binary"
_RECORD_OVERHEAD = 48  # bytes a buffered record costs beyond its key and value, about
_MAX_INDEXED_HOURS = 10_000


def _covers(ranges: list[tuple[int, int]], offset: int) -> bool:
    """Whether a file of `ranges` (oldest first) spans `offset`; drops the files passed."""
    while ranges and ranges[0][1] < offset:  # offsets only grow: passed files are done
        ranges.pop(0)
    return bool(ranges) and ranges[0][0] <= offset


@dataclass
class _Open:
    """A file being filled: records of one partition and hour, in offset order."""

    topic: str
    partition: int
    hour: int
    opened: float
    records: list[Row] = field(default_factory=list)
    size: int = 0


@dataclass
class WriterStats:
    records: int = 0  # records written to files
    files: int = 0
    bytes: int = 0  # bytes uploaded
    already_archived: int = 0  # records left out: a file held them already
    expired: int = 0  # records left out: older than the archive's retention


class ArchiveWriter:
    """Buffers records into files and uploads them to `store`; see the module docstring."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        flush_records: int,
        flush_seconds: float,
        retention_ms: int | None = None,
        codec: Codec = "deflate",
        max_buffered_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if flush_records < 1:
            raise ValueError(f"flush_records must be at least 1, not {flush_records}")
        if flush_seconds <= 0:
            raise ValueError(f"flush_seconds must be positive, not {flush_seconds}")
        self._store = store
        self._flush_records = flush_records
        self._flush_seconds = flush_seconds
        self._retention_ms = retention_ms
        self._codec: Codec = codec
        self._max_buffered = max_buffered_bytes
        self._clock = clock
        self._monotonic = monotonic
        self._open: dict[tuple[str, int, int], _Open] = {}  # files being filled
        self._ready: list[_Open] = []  # full files, uploaded in this order
        self._next: dict[TopicPartition, int] = {}
        # (topic, partition, hour) -> (first, last) of the files already written there that
        # end at or after the offsets still to come, oldest first.
        self._index: dict[tuple[str, int, int], list[tuple[int, int]]] = {}
        self._cutoff_hour = self._oldest_hour()
        self.stats = WriterStats()

    # -- input ------------------------------------------------------------------------------
    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """The partitions are (again) this writer's: what their files hold is listed afresh."""
        wanted = set(partitions)
        for key in [k for k in self._index if (k[0], k[1]) in wanted]:
            del self._index[key]

    def add(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header] | None = None,
    ) -> None:
        """One consumed record, in its partition's offset order. An ObjectStoreError (listing
        what is archived) leaves the record unread: give it again."""
        hour = timestamp // HOUR_MS
        if hour < self._cutoff_hour:
            self._next[topic, partition] = offset + 1
            self.stats.expired += 1
            return
        where = (topic, partition, hour)
        ranges = self._index.get(where)
        if ranges is None:
            ranges = self._index[where] = self._listed(where, offset)
        self._next[topic, partition] = offset + 1
        if ranges and _covers(ranges, offset):
            self.stats.already_archived += 1
            return
        pending = self._open.get(where)
        if pending is None:
            pending = self._open[where] = _Open(topic, partition, hour, self._monotonic())
        records = pending.records
        records.append((partition, offset, timestamp, key, value, headers))
        pending.size += len(key or b"") + len(value or b"") + _RECORD_OVERHEAD
        if len(records) >= self._flush_records:  # full: uploaded by the next flush
            self._ready.append(self._open.pop(where))

    def _listed(self, where: tuple[str, int, int], offset: int) -> list[tuple[int, int]]:
        if len(self._index) >= _MAX_INDEXED_HOURS:  # forgotten hours are listed again if met
            for key in [k for k, ranges in self._index.items() if not ranges]:
                del self._index[key]
        topic, partition, hour = where
        files = (parse_key(k) for k in self._store.list_keys(partition_prefix(*where)))
        return sorted(
            (f.first, f.last)
            for f in files
            if f is not None and f.partition == partition and f.hour == hour and f.last >= offset
        )

    # -- output -----------------------------------------------------------------------------
    def flush_due(self) -> set[TopicPartition]:
        """Upload the files due: full, open for the flush interval, or the largest while the
        buffered records exceed the memory bound. Returns the partitions written; an upload's
        ObjectStoreError leaves its file (and those after it) to be uploaded again."""
        self._cutoff_hour = self._oldest_hour()
        now = self._monotonic()
        for where in [k for k, f in self._open.items() if now - f.opened >= self._flush_seconds]:
            self._ready.append(self._open.pop(where))
        if self.over_bound:  # the largest open files, to half the bound
            open_size = sum(f.size for f in self._open.values())
            for where in sorted(self._open, key=lambda k: -self._open[k].size):
                if open_size <= self._max_buffered // 2:
                    break
                open_size -= self._open[where].size
                self._ready.append(self._open.pop(where))
        return self._upload(None)

    def flush(self, partitions: Iterable[TopicPartition] | None = None) -> set[TopicPartition]:
        """Upload every file, open or full (of `partitions`, when given)."""
        wanted = None if partitions is None else set(partitions)
        for where in [k for k in self._open if wanted is None or (k[0], k[1]) in wanted]:
            self._ready.append(self._open.pop(where))
        return self._upload(wanted)

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget the buffered records of partitions this writer no longer owns (they are read
        again by their new owner from the committed offset)."""
        wanted = set(partitions)
        for where in [k for k in self._open if (k[0], k[1]) in wanted]:
            del self._open[where]
        self._ready = [f for f in self._ready if (f.topic, f.partition) not in wanted]
        for tp in wanted:
            self._next.pop(tp, None)
        self.assigned(wanted)

    def position(self, tp: TopicPartition) -> int | None:
        """The offset to commit for a partition: its oldest unwritten record's, or the next
        offset when every record read is written; None before any record was read."""
        firsts = [
            f.records[0][1]
            for f in (*self._open.values(), *self._ready)
            if (f.topic, f.partition) == tp
        ]
        return min(firsts) if firsts else self._next.get(tp)

    def next_offset(self, tp: TopicPartition) -> int | None:
        """The offset after the last record given of a partition (None before any)."""
        return self._next.get(tp)

    @property
    def over_bound(self) -> bool:
        """Whether the buffered records exceed the memory bound (uploads are failing)."""
        buffered = sum(f.size for f in (*self._open.values(), *self._ready))
        return buffered > self._max_buffered

    @property
    def buffered_records(self) -> int:
        return sum(len(f.records) for f in (*self._open.values(), *self._ready))

    def _upload(self, wanted: set[TopicPartition] | None) -> set[TopicPartition]:
        written: set[TopicPartition] = set()
        kept: list[_Open] = []
        try:
            while self._ready:
                pending = self._ready.pop(0)
                tp = (pending.topic, pending.partition)
                if wanted is not None and tp not in wanted:
                    kept.append(pending)
                    continue
                try:
                    self._write(pending)
                except BaseException:
                    self._ready.insert(0, pending)
                    raise
                written.add(tp)
        finally:
            self._ready[:0] = kept
        return written

    def _write(self, pending: _Open) -> None:
        records = pending.records
        archived = ArchivedFile(
            pending.topic, pending.partition, records[0][1], records[-1][1], pending.hour
        )
        data = encode_file(pending.topic, pending.partition, records, self._codec)
        self._store.put_bytes(archived.key, data, CONTENT_TYPE)
        self.stats.records += len(records)
        self.stats.files += 1
        self.stats.bytes += len(data)
        log.debug("archived %s (%d records, %d bytes)", archived.key, len(records), len(data))

    def _oldest_hour(self) -> int:
        """Records of hours before this one are past the retention: not archived."""
        if self._retention_ms is None:
            return -(1 << 62)
        return (int(self._clock() * 1000) - self._retention_ms) // HOUR_MS
