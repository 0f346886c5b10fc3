"""The one driver of the topology: ordering, key checks, fault isolation and timers, for the
live engine, replay and the tests alike.

Within a partition, records are applied in (timestamp, topic rank, offset) order, in runs of
one topic. A run that raises is undone (its state writes and outputs dropped) and split in
halves until the records that fail are alone: each becomes a dead letter with the reason and
every other record of the batch is applied, once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from processors.context import Policy
from streams.kafka.partitioning import partition_for
from streams.runtime.context import StageContext
from streams.runtime.errors import Unavailable
from streams.runtime.limits import RecordTooLarge
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord, timestamp_of
from streams.runtime.routing import Router
from streams.runtime.store import PartitionStore
from streams.runtime.topology import Stage, Topology

log = logging.getLogger(__name__)
KEY_CACHE_SIZE = 200_000
# Input records applied in one batch at most, live (a poll's records) and in replay (a chunk):
# a batch's forwards (a post's fan-out to every follower) are held in memory until it ends.
# A worker behind its input takes this many at once: each story's count and sketch, and each
# tray, is then read and written once for more of its views.
BATCH_RECORDS = 50_000


@dataclass
class PartitionState:
    """A partition this driver applies records to: its store, and the last offset of each
    input topic its state reflects."""

    store: PartitionStore
    applied: dict[str, int] = field(default_factory=dict)


class Driver:
    """Applies batches of records and timer ticks to partitions through the topology."""

    def __init__(
        self, topology: Topology, router: Router, policy: Policy, metrics: Metrics
    ) -> None:
        self.topology = topology
        self.router = router
        self.policy = policy
        self.metrics = metrics
        self._key_partitions: dict[bytes, int] = {}
        self._traceback_logged = 0.0

    def context(self, partition: int, store: PartitionStore, now: datetime) -> StageContext:
        return StageContext(partition, store, now, self.policy, self.metrics, self.router)

    def process(
        self,
        partitions: Mapping[int, PartitionState],
        records: list[InRecord],
        now: datetime,
        between_runs: Callable[[], None] | None = None,
    ) -> set[int]:
        """Apply `records` (of any partitions, each partition's in offset order per topic) to
        the partitions given; records of others, and those a partition's state already
        reflects, are passed over. Returns the partitions that applied records."""
        by_partition: dict[int, list[InRecord]] = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record)
        touched: set[int] = set()
        for partition, items in by_partition.items():
            state = partitions.get(partition)
            if state is None:
                continue
            applied = state.applied
            last = {r.topic: r.offset for r in items}
            first = {r.topic: r.offset for r in reversed(items)}
            if any(offset <= applied.get(topic, -1) for topic, offset in first.items()):
                items = [r for r in items if r.offset > applied.get(r.topic, -1)]
                if not items:
                    continue
            touched.add(partition)
            ctx = self.context(partition, state.store, now)
            self._apply_partition(ctx, items, last.keys(), between_runs)
            for topic, offset in last.items():
                applied[topic] = max(applied.get(topic, -1), offset)
        return touched

    def _apply_partition(
        self,
        ctx: StageContext,
        items: list[InRecord],
        topics: KeysView[str],
        between_runs: Callable[[], None] | None,
    ) -> None:
        """Apply one partition's new records, in order, run by run."""
        if not self.topology.external_inputs.isdisjoint(topics):
            items = self._with_valid_keys(ctx, items)
        if len(topics) == 1:  # one topic, the usual case: one run, sorted with a C key
            items.sort(key=timestamp_of)
            runs: Iterable[list[InRecord]] = (items,) if items else ()
        else:
            rank = self.topology.rank
            items.sort(key=lambda r: (r.timestamp, rank(r.topic), r.offset))
            runs = _runs(items)
        for run in runs:
            self._apply(ctx, run)
            self.metrics.processed.inc(run[0].topic, len(run))
            if between_runs is not None:
                between_runs()  # a long batch does not hold timers back

    def tick(self, partitions: Mapping[int, PartitionState], now: datetime) -> None:
        """Run every stage's timers on every partition at `now`."""
        for partition, state in partitions.items():
            ctx = self.context(partition, state.store, now)
            for stage in self.topology.stages:
                self._tick(ctx, stage)

    # -- fault isolation --------------------------------------------------------------------
    def _apply(self, ctx: StageContext, records: list[InRecord]) -> None:
        """Apply a run of one topic's records; on failure, isolate the records that fail."""
        try:
            self.topology.stage_of(records[0].topic).handler.handle(ctx, records)
        except Unavailable:
            raise  # not the records' fault: the batch is redone once the service is back
        except Exception as exc:
            ctx.store.drop_run()
            self.router.drop()
            if len(records) == 1:
                self._failed(ctx, records[0], exc)
            else:
                middle = len(records) // 2
                self._apply(ctx, records[:middle])
                self._apply(ctx, records[middle:])
            return
        ctx.store.keep_run()
        self.router.keep()

    def _failed(self, ctx: StageContext, record: InRecord, exc: Exception) -> None:
        if isinstance(exc, RecordTooLarge):
            reason = f"output too large: {exc}"
        else:
            reason = f"processing failed: {type(exc).__name__}: {exc}"
            self._log_traceback(record, exc)
        ctx.dead_letter(record, reason)
        self.router.keep()

    def _log_traceback(self, record: InRecord, exc: Exception) -> None:
        """A processing failure is a bug or an input no check caught: its traceback is logged,
        at most one every few seconds (a stream of such records must not flood the log)."""
        now = time.monotonic()
        if now - self._traceback_logged >= 10.0:
            self._traceback_logged = now
            log.warning(
                "record %s[%s]@%s failed",
                record.topic,
                record.partition,
                record.offset,
                exc_info=exc,
            )

    def _tick(self, ctx: StageContext, stage: Stage) -> None:
        try:
            stage.handler.tick(ctx)
        except Exception as exc:  # left for the next tick; the records go on
            ctx.store.drop_run()
            self.router.drop()
            self.metrics.timer_failures.inc(stage.name)
            now = time.monotonic()
            if now - self._traceback_logged >= 10.0:
                self._traceback_logged = now
                log.error("timers of stage %s failed", stage.name, exc_info=exc)
            return
        ctx.store.keep_run()
        self.router.keep()

    # -- keys -------------------------------------------------------------------------------
    def _with_valid_keys(self, ctx: StageContext, records: list[InRecord]) -> list[InRecord]:
        """The records whose key is fit to process: producers' records must be keyed, the
        key UTF-8, and on the partition Kafka's default partitioner gives it (the state of a
        key lives there). The others are dead-lettered, saying why."""
        external = self.topology.external_inputs
        cache, partitions = self._key_partitions, self.topology.partitions
        valid: list[InRecord] = []
        for record in records:
            key = record.key
            if record.topic not in external or (
                key is not None and cache.get(key) == record.partition
            ):
                valid.append(record)
                continue
            reason = self._key_problem(record, partitions)
            if reason is None:
                if len(cache) >= KEY_CACHE_SIZE:
                    cache.clear()
                assert key is not None
                cache[key] = record.partition
                valid.append(record)
            else:
                ctx.dead_letter(record, reason)
        self.router.keep()
        return valid

    @staticmethod
    def _key_problem(record: InRecord, partitions: int) -> str | None:
        key = record.key
        if key is None:
            return "record has no key: input records are keyed (contract section 4)"
        try:
            text = key.decode()
        except UnicodeDecodeError:
            return f"key is not UTF-8: {key[:80]!r}"
        expected = partition_for(key, partitions)
        if expected != record.partition:
            return (
                f"key {text[:80]!r} belongs to partition {expected} (murmur2, Kafka's default "
                f"partitioner), not {record.partition}: produce with the default partitioner"
            )
        return None


def _runs(items: list[InRecord]) -> Iterator[list[InRecord]]:
    """Consecutive records of one topic."""
    start = 0
    for end in range(1, len(items) + 1):
        if end == len(items) or items[end].topic != items[start].topic:
            yield items[start:end]
            start = end
