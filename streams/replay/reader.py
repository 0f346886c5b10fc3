"""A replay's input: each input partition's range of offsets, fixed when the replay starts, read
in bounded memory and merged into one stream in (event time, topic rank, partition, offset)
order."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streams.kafka.clients import reader_config
from streams.kafka.offsets import end_offsets, offsets_at
from streams.runtime.records import InRecord, in_record

BUFFERED_PER_PARTITION = 5_000  # records held per partition before its fetches pause


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


def plan_spans(bootstrap: str, topics: Iterable[str], start_ms: int | None) -> list[Span]:
    """The spans of every partition of `topics`: from the first record that may be at or after
    `start_ms` (the beginning without it) to the end each partition has now."""
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
        start = starts.get(tp, low)
        start = high if start < 0 else max(start, low)  # -1: nothing at or after start_ms
        spans.append(Span(tp[0], tp[1], start, high, low))
    return spans


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
        buffer, end = self._buffers[tp], self._spans[tp].end
        while True:
            while not buffer:
                if self._next[tp] >= end:
                    return
                self._fill(tp)
            record = buffer.popleft()
            if record.offset >= end:
                return
            yield record

    def _fill(self, wanted: tuple[str, int]) -> None:
        """Fetch until `wanted` has records (or its end is reached), pausing full partitions."""
        self._resume(wanted)
        while not self._buffers[wanted] and self._next[wanted] < self._spans[wanted].end:
            for msg in self._consumer.consume(10_000, timeout=1.0):
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
    """The records of every stream (each in offset order) as one stream, the smallest head
    first by (timestamp, topic rank, partition, offset): deterministic for the same input."""
    heap: list[tuple[int, int, int, int, int, InRecord]] = []
    sources = list(streams)
    for index, source in enumerate(sources):
        head = next(source, None)
        if head is not None:
            heap.append(
                (head.timestamp, rank(head.topic), head.partition, head.offset, index, head)
            )
    heapq.heapify(heap)
    while heap:
        *_, index, record = heap[0]
        yield record
        head = next(sources[index], None)
        if head is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(
                heap, (head.timestamp, rank(head.topic), head.partition, head.offset, index, head)
            )
