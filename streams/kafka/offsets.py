"""Where partitions end and where a time starts, right on every broker the project runs on.

Kafka reports a partition's end (high watermark) exactly and seeks by time with its time
index. The embedded broker (Tansu) reports the end of a partition whose last produce batch
held several records as that batch's first offset plus one, and answers every seek by time
with the partition's start. So on it the rest of the last batch is found by reading past the
reported end, and a seek by time starts at the beginning (readers filter by time anyway).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from streams.kafka.clients import consume_arrived

EMBEDDED_CLUSTER_ID = "tansu_cluster"
PROBE_SECONDS = 2.0


def misreports_ends(consumer: Consumer) -> bool:
    """Whether the broker is the embedded one, whose end offsets are wrong after batches."""
    cluster_id: str | None = consumer.list_topics(timeout=10).cluster_id
    return cluster_id == EMBEDDED_CLUSTER_ID


def end_offsets(
    consumer: Consumer, partitions: Iterable[tuple[str, int]], timeout: float = 10
) -> dict[tuple[str, int], tuple[int, int]]:
    """(first offset, end offset) of each (topic, partition) now: the end is the offset the
    next record will get. Leaves the consumer unassigned."""
    wanted = list(partitions)
    bounds = {
        (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=timeout)
        for t, p in wanted
    }
    if wanted and misreports_ends(consumer):
        bounds = _probed(consumer, bounds)
    return bounds


def _probed(
    consumer: Consumer, bounds: dict[tuple[str, int], tuple[int, int]]
) -> dict[tuple[str, int], tuple[int, int]]:
    """The ends found by reading from each reported end minus one: a fetch there returns the
    whole last produce batch, and records stop coming once it is read."""
    probes = {tp: high for tp, (low, high) in bounds.items() if high > low}
    if not probes:
        return bounds
    consumer.assign([TopicPartition(t, p, high - 1) for (t, p), high in probes.items()])
    ends = dict(probes)
    started = time.monotonic()
    seen: set[tuple[str, int]] = set()
    while time.monotonic() - started < PROBE_SECONDS:
        batch = consume_arrived(consumer, 0.2)
        if not batch and len(seen) == len(probes):
            break  # every partition's last batch was read, and nothing more came
        for msg in batch:
            if msg.error() is not None:
                continue
            tp = (msg.topic(), msg.partition())
            seen.add(tp)
            ends[tp] = max(ends[tp], msg.offset() + 1)
    consumer.unassign()
    return {tp: (low, ends.get(tp, high)) for tp, (low, high) in bounds.items()}


def offsets_at(
    consumer: Consumer, partitions: Iterable[tuple[str, int]], at_ms: int, timeout: float = 10
) -> dict[tuple[str, int], int]:
    """The first offset of each partition whose record may be at or after `at_ms` (Kafka's
    time index; the partition's start on the embedded broker); -1 where none is."""
    wanted = [TopicPartition(t, p, at_ms) for t, p in partitions]
    if not wanted:
        return {}
    found = consumer.offsets_for_times(wanted, timeout=timeout)
    return {(tp.topic, tp.partition): tp.offset for tp in found}
