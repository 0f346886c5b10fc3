"""The topology driven in this process over every partition, as Kafka Streams' TopologyTestDriver:
the repartition topics are in-memory queues, time is the input's event time. Replay and the
tests use it; the ordering, fault isolation and timers are the live driver's own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from processors.context import Policy
from schemas.types import from_millis, millis
from streams.codecs.registry import SchemaRegistry
from streams.runtime.driver import BATCH_RECORDS, Driver, PartitionState
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord
from streams.runtime.routing import OutRecord, Router
from streams.runtime.store import PartitionStore
from streams.runtime.topology import Topology

Sink = Callable[[OutRecord, int], None]  # an output record and its timestamp (event time, ms)
# Forwards to sink stages held back at most (their JSON): about 270,000 tray messages.
HOLD_BYTES = 32 * 1024 * 1024
# The event time a chunk spans at most: what a live batch of a worker behind its input spans,
# so each story's count and sketch is read and written once for many of its views.
SPAN_MS = 10 * 60_000


class InProcessDriver:
    """Applies input records in the order given, delivering every forward in process.

    Records are applied in chunks, as the live engine applies a poll's records in a batch: at
    most `batch_size` records spanning less than `span_ms` of event time, and never across the
    time a stage's timer may be due (`Stage.timers`). Before a chunk whose first record is at
    time t, the timers run at t - 1 ms, so a story due at t expires after the events of t are
    applied (the processors take events up to and including `expires_at`). While an entry
    waits in a due bucket for its exact time, the timers run again every `tick_ms`.

    A timer set within a chunk (a story posted already near its expiry) runs at the chunk's
    end: late by less than `span_ms` of event time, which changes what is emitted only in its
    timestamp (the processors judge events by their own times, not by the timers'). Outputs
    are stamped with the time the driver has reached, the chunk's latest, unless the handler
    gives the time of the events behind them (`OutRecord.timestamp`: the views stage gives a
    story's latest view, the tray stage a tray's last message).

    Forwards to a sink stage (`Stage.sink`: the trays) are held back until `hold_bytes` of
    them wait, and at the end of each `pipe` and `advance`: applied many chunks at once, each
    tray is read and written once for many of its owner's messages, as a live tray stage that
    lags behind the views takes its backlog. Their outputs carry the time of the messages
    behind them (`OutRecord.timestamp`), not the time the driver has reached."""

    def __init__(
        self,
        topology: Topology,
        registry: SchemaRegistry,
        policy: Policy,
        state_dir: Path,
        *,
        sink: Sink | None = None,
        batch_size: int = BATCH_RECORDS,
        span_ms: int = SPAN_MS,
        tick_ms: int = 1000,
        hold_bytes: int = HOLD_BYTES,
        metrics: Metrics | None = None,
    ) -> None:
        self.topology = topology
        self.metrics = metrics or Metrics()
        self.router = Router(topology, registry, self.metrics)
        self.driver = Driver(topology, self.router, policy, self.metrics)
        self.partitions = {
            p: PartitionState(PartitionStore(state_dir / f"p{p}"))
            for p in range(topology.partitions)
        }
        self.outputs: list[tuple[OutRecord, int]] = []
        self._sink: Sink = sink or (lambda record, ts: self.outputs.append((record, ts)))
        consumed = set(topology.topics)
        self._internal = {r.topic for r in topology.routes.values() if r.topic in consumed}
        self._outputs = set(topology.output_topics)
        self._sinks = {t for stage in topology.stages if stage.sink for t in stage.topics}
        self._held: list[InRecord] = []
        self._held_bytes = 0
        self._hold_bytes = hold_bytes
        self._timers = [timer for stage in topology.stages for timer in stage.timers]
        self._next_offset: dict[tuple[str, int], int] = defaultdict(int)
        self._batch_size = batch_size
        self._span_ms = span_ms
        self._tick_ms = tick_ms
        self.watermark_ms: int | None = None

    @property
    def now(self) -> datetime | None:
        return None if self.watermark_ms is None else from_millis(self.watermark_ms)

    def pipe(self, records: Iterable[InRecord]) -> int:
        """Apply `records`, given in the order to apply them; returns how many."""
        chunk: list[InRecord] = []
        end_ms = 0  # records at this time or later go in the next chunk
        count = 0
        for record in records:
            count += 1
            if chunk and (record.timestamp >= end_ms or len(chunk) >= self._batch_size):
                self._apply(chunk)
                chunk = []
            if not chunk:
                end_ms = self._start_chunk(record.timestamp)
            chunk.append(record)
        if chunk:
            self._apply(chunk)
        self._release()
        return count

    def _start_chunk(self, at_ms: int) -> int:
        """Run the timers due before `at_ms`, where a chunk starts; the time from which its
        records go in the next chunk (always after `at_ms`)."""
        ran_to = at_ms - 1
        if self.watermark_ms is not None:  # (advance_to never moves time back)
            self.advance_to(ran_to)
        end = at_ms + self._span_ms
        due = self._first_due()
        if due is not None:
            # Due after the timers' time: they run before the first record past it. Reached
            # already: the entry waits for its exact time in the bucket; run them again later.
            end = min(end, due + 1 if due > ran_to else at_ms + self._tick_ms)
        return end

    def _first_due(self) -> int | None:
        """The earliest time any stage's timer may be due, over every partition."""
        times = [
            due
            for state in self.partitions.values()
            for timer in self._timers
            if (due := timer.first_due(state.store)) is not None
        ]
        return min(times, default=None)

    def advance_to(self, at_ms: int) -> None:
        """Move event time to `at_ms` (never back) and run the timers there."""
        if self.watermark_ms is not None and at_ms < self.watermark_ms:
            return
        self.watermark_ms = at_ms
        self.driver.tick(self.partitions, from_millis(at_ms))
        self._deliver()

    def advance(self, until: datetime) -> None:
        """`advance_to` a time, and apply what is held back."""
        self.advance_to(millis(until))
        self._release()

    def _apply(self, chunk: list[InRecord]) -> None:
        latest = max(r.timestamp for r in chunk)
        if self.watermark_ms is None or latest > self.watermark_ms:
            self.watermark_ms = latest
        self.driver.process(self.partitions, chunk, from_millis(self.watermark_ms))
        self._deliver()

    def _deliver(self, release: bool = False) -> None:
        """Hand the outputs to the sink and apply the forwards, until none are left (those to
        sink stages are held back until enough wait, or `release`); then the stores are
        written (no changelog: this state is rebuilt by replaying)."""
        while True:
            forwarded = self._route(self.router.take_records())
            forwarded += self._route(list(self.router.take_forwards()))
            if self._sinks:
                forwarded = self._hold(forwarded)
            if not forwarded:
                if not self._held or (not release and self._held_bytes < self._hold_bytes):
                    break
                forwarded, self._held, self._held_bytes = self._held, [], 0
            assert self.watermark_ms is not None
            self.driver.process(self.partitions, forwarded, from_millis(self.watermark_ms))
        for state in self.partitions.values():
            state.store.flush()

    def _hold(self, records: list[InRecord]) -> list[InRecord]:
        """The records to apply now; those for sink stages join the held ones."""
        now: list[InRecord] = []
        sinks, held = self._sinks, self._held
        for record in records:
            if record.topic in sinks:
                held.append(record)
                self._held_bytes += len(record.value or b"")
            else:
                now.append(record)
        return now

    def _release(self) -> None:
        """Apply what is held back."""
        if self._held:
            self._deliver(release=True)

    def _route(self, records: list[OutRecord]) -> list[InRecord]:
        """Outputs to the sink; records for the topology's own stages as consumed records."""
        forwarded: list[InRecord] = []
        reached = self.watermark_ms or 0
        for record in records:
            timestamp = reached if record.timestamp is None else record.timestamp
            if record.topic in self._internal:
                position = (record.topic, record.partition)
                offset = self._next_offset[position]
                self._next_offset[position] = offset + 1
                forwarded.append(
                    InRecord(
                        record.topic, record.partition, offset, record.key, record.value, timestamp
                    )
                )
            elif record.topic in self._outputs:
                self._sink(record, timestamp)
            # else: a side effect outside the topology (the media service's objects stage)
        return forwarded

    def close(self) -> None:
        for state in self.partitions.values():
            state.store.flush()
            state.store.close()
