"""A replay's input: each input partition's range of offsets, fixed when the replay starts, read
in bounded memory (from the archive below what the broker still holds, then from the broker)
and merged into one stream in (event time, topic rank, partition, offset) order."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from connectors.archive import ArchivedFile, ArchiveReader, hour_of
from connectors.object_store import ObjectStoreError
from streams.kafka.clients import consume_arrived, reader_config
from streams.kafka.offsets import end_offsets, offsets_at
from streams.runtime.records import InRecord, in_record

# Records held per partition before its fetches pause: more than a fetch brings (about 1 MB of
# a partition), since a partition paused within a fetch has the rest fetched again while the
# merge waits for it (README, replay).
BUFFERED_PER_PARTITION = 20_000
# A paused partition's fetches resume once it holds fewer: its next records are on their way
# before they are wanted, not fetched while the merge waits for them.
RESUME_BELOW = BUFFERED_PER_PARTITION // 2


@dataclass(frozen=True)
class Span:
    """The offsets [start, end) of one topic partition that a replay reads."""

    topic: str
    partition: int
    start: int
    end: int
    first: int = 0  # the partition's first offset still on the broker

    @property
    def size(self) -> int:
        return max(self.end - self.start, 0)


def plan_spans(
    bootstrap: str,
    topics: Iterable[str],
    start_ms: int | None,
    deleted_below: Mapping[tuple[str, int], int] | None = None,
) -> list[Span]:
    """The spans of every partition of `topics`: from the first record that may be at or after
    `start_ms` (the beginning without it) to the end each partition has now.

    `deleted_below` treats a partition's offsets below the given one as deleted by retention:
    a test seam for brokers without retention or DeleteRecords (the embedded one)."""
    consumer = Consumer(reader_config(bootstrap, **{"group.id": "storystream-replay"}))
    try:
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [(t, p) for t in topics if t in metadata for p in metadata[t].partitions]
        bounds = end_offsets(consumer, partitions)
        starts = offsets_at(consumer, partitions, start_ms) if start_ms is not None else {}
    finally:
        consumer.close()
    spans = []
    for tp in sorted(partitions):
        low, high = bounds[tp]
        if deleted_below and tp in deleted_below:
            low = min(max(low, deleted_below[tp]), high)
        start = starts.get(tp, low)
        start = high if start < 0 else max(start, low)  # -1: nothing at or after start_ms
        spans.append(Span(tp[0], tp[1], start, high, low))
    return spans


@dataclass
class Served:
    """The offsets of one partition that each source gave a reader: (first, last, count)."""

    topic: str
    partition: int
    archive: list[int] = field(default_factory=lambda: [-1, -1, 0])
    broker: list[int] = field(default_factory=lambda: [-1, -1, 0])

    def __str__(self) -> str:
        parts = [
            f"{name} offsets {first}-{last} ({count:,} record{'s' if count != 1 else ''})"
            for name, (first, last, count) in (("archive", self.archive), ("broker", self.broker))
            if count
        ]
        return f"{self.topic}[{self.partition}]: {', '.join(parts) or 'nothing'}"

    @property
    def read(self) -> int:
        return self.archive[2] + self.broker[2]


def _tallied(records: Iterator[InRecord], tally: list[int]) -> Iterator[InRecord]:
    for record in records:
        if tally[2] == 0:
            tally[0] = record.offset
        tally[1] = record.offset
        tally[2] += 1
        yield record


@dataclass(frozen=True)
class ArchivePlan:
    """The archive's files each span reads below the broker's first offset, and the offsets
    found in neither."""

    files: dict[tuple[str, int], list[ArchivedFile]]
    missing: list[str]


def plan_archive(
    archive: ArchiveReader | None, spans: list[Span], start_ms: int | None
) -> ArchivePlan:
    """For each span the broker may no longer hold the start of (it starts at the partition's
    first offset, above 0): the archive's files below that offset, of the hours from
    `start_ms`'s on. What neither holds is named in `missing`."""
    gone = [s for s in spans if s.first > 0 and s.start == s.first]
    if not gone:
        return ArchivePlan({}, [])
    if archive is None:
        return ArchivePlan({}, [f"{_gone(s)}, and no archive is configured" for s in gone])
    files: dict[tuple[str, int], list[ArchivedFile]] = {}
    missing: list[str] = []
    # From a day before the range: records of earlier hours are told from records missing.
    listed_from = None if start_ms is None else start_ms - 86_400_000
    by_topic: dict[str, dict[int, list[ArchivedFile]]] = {}
    for span in gone:
        if span.topic not in by_topic:
            try:
                by_topic[span.topic] = archive.files(span.topic, listed_from)
            except ObjectStoreError as exc:
                raise ObjectStoreError(f"reading the archive of {span.topic}: {exc}") from exc
        found = [f for f in by_topic[span.topic].get(span.partition, []) if f.first < span.first]
        wanted = [f for f in found if start_ms is None or f.hour >= hour_of(start_ms)]
        files[span.topic, span.partition] = wanted
        if not found:
            missing.append(f"{_gone(span)}, and the archive has none of them")
            continue
        low = 0 if start_ms is None else found[0].first
        missing += [
            f"{span.topic}[{span.partition}]: offsets {first}-{last} are neither on the broker "
            "nor in the archive"
            for first, last in _holes(found, low, span.first)
        ]
    return ArchivePlan(files, missing)


def _gone(span: Span) -> str:
    return f"{span.topic}[{span.partition}]: the broker no longer holds offsets below {span.first}"


def _holes(files: list[ArchivedFile], low: int, below: int) -> list[tuple[int, int]]:
    """The offsets in [low, below) that no file's range covers, as (first, last) runs."""
    holes = []
    at = low
    for archived in sorted(files):
        if archived.first > at:
            holes.append((at, min(archived.first, below) - 1))
        at = max(at, archived.last + 1)
        if at >= below:
            break
    if at < below:
        holes.append((at, below - 1))
    return [(first, last) for first, last in holes if first <= last]


def partition_input(
    span: Span,
    broker: BrokerReader,
    archive: ArchiveReader | None,
    files: list[ArchivedFile],
    served: Served,
) -> Iterator[InRecord]:
    """One partition's records in offset order: the archive's below the broker's first
    offset, then the broker's span; `served` counts what each source gave."""
    if archive is not None and files:
        topic, partition = span.topic, span.partition
        archived = (
            InRecord(topic, partition, r.offset, r.key, r.value, r.timestamp)
            for r in archive.records(files, below=span.first)
        )
        yield from _tallied(archived, served.archive)
    yield from _tallied(broker.records((span.topic, span.partition)), served.broker)


class BrokerReader:
    """Reads spans from the broker with one consumer: each span's records in offset order,
    at most BUFFERED_PER_PARTITION held per partition at a time."""

    def __init__(self, bootstrap: str, spans: list[Span]) -> None:
        self._consumer = Consumer(
            reader_config(
                bootstrap,
                **{
                    "group.id": "storystream-replay",
                    "fetch.wait.max.ms": 10,
                    "enable.partition.eof": True,  # a span may end in markers, not records
                    "auto.offset.reset": "earliest",  # records deleted meanwhile are skipped
                },
            )
        )
        self._spans = {(s.topic, s.partition): s for s in spans if s.size}
        self._buffers: dict[tuple[str, int], deque[InRecord]] = {tp: deque() for tp in self._spans}
        self._next = {tp: span.start for tp, span in self._spans.items()}
        self._paused: set[tuple[str, int]] = set()
        self.read = 0  # records read so far
        if self._spans:
            self._consumer.assign(
                [TopicPartition(t, p, s.start) for (t, p), s in self._spans.items()]
            )

    def records(self, tp: tuple[str, int]) -> Iterator[InRecord]:
        """One span's records, in offset order, up to its end."""
        if tp not in self._spans:  # an empty span
            return
        buffer, end, paused = self._buffers[tp], self._spans[tp].end, self._paused
        while True:
            while not buffer:
                if self._next[tp] >= end:
                    return
                self._fill(tp)
            record = buffer.popleft()
            if tp in paused and len(buffer) < RESUME_BELOW:
                self._resume(tp)
            if record.offset >= end:
                return
            yield record

    def _fill(self, wanted: tuple[str, int]) -> None:
        """Fetch until `wanted` has records (or its end is reached), pausing full partitions."""
        self._resume(wanted)
        while not self._buffers[wanted] and self._next[wanted] < self._spans[wanted].end:
            for msg in consume_arrived(self._consumer, 1.0):
                self._take(msg)
            for tp, buffer in self._buffers.items():
                if len(buffer) >= BUFFERED_PER_PARTITION and tp not in self._paused:
                    self._consumer.pause([TopicPartition(*tp)])
                    self._paused.add(tp)

    def _take(self, msg: Message) -> None:
        tp = (msg.topic(), msg.partition())
        span = self._spans.get(tp)
        if span is None:
            return
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:  # nothing left below the end
                self._next[tp] = max(self._next[tp], span.end)
            return
        if msg.offset() < self._next[tp]:
            return
        self._next[tp] = msg.offset() + 1
        if msg.offset() < span.end:
            self._buffers[tp].append(in_record(msg))
            self.read += 1
        elif tp not in self._paused:  # past the fixed end: nothing more to read here
            self._consumer.pause([TopicPartition(*tp)])
            self._paused.add(tp)

    def _resume(self, tp: tuple[str, int]) -> None:
        if tp in self._paused and self._next[tp] < self._spans[tp].end:
            self._consumer.resume([TopicPartition(*tp)])
            self._paused.discard(tp)

    def close(self) -> None:
        self._consumer.close()


def merged(streams: Iterable[Iterator[InRecord]], rank: Callable[[str], int]) -> Iterator[InRecord]:
    """The records of every stream (each one partition's, in offset order) as one stream, the
    smallest head first by (timestamp, topic rank, partition, offset): deterministic for the
    same input."""
    heap: list[tuple[int, int, int, int, int, InRecord]] = []
    sources = list(streams)
    # A stream is one partition's: its rank and partition are its first record's.
    places: list[tuple[int, int]] = []
    for index, source in enumerate(sources):
        head = next(source, None)
        places.append((0, 0) if head is None else (rank(head.topic), head.partition))
        if head is not None:
            heap.append((head.timestamp, *places[index], head.offset, index, head))
    heapq.heapify(heap)
    replace, pop = heapq.heapreplace, heapq.heappop
    while heap:
        *_, index, record = heap[0]
        yield record
        head = next(sources[index], None)
        if head is None:
            pop(heap)
        else:
            topic_rank, partition = places[index]
            replace(heap, (head.timestamp, topic_rank, partition, head.offset, index, head))
