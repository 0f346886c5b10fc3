"""The live loop: one consumer-group member that polls every topic of the topology in batches,
hands them to the driver, produces what they made and makes each batch durable."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from processors.context import Policy
from streams.codecs.registry import SchemaRegistry
from streams.kafka.clients import engine_consumer_config
from streams.runtime.collector import batch_collection
from streams.runtime.driver import BATCH_RECORDS, Driver, PartitionState
from streams.runtime.durability import AtLeastOnce, Durability, Transactional
from streams.runtime.limits import topic_limits
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord, in_record
from streams.runtime.restore import Restorer, Standbys
from streams.runtime.routing import OutRecord, Router
from streams.runtime.store import PartitionStore, StateMemory
from streams.runtime.topology import Topology

log = logging.getLogger(__name__)


class Engine:
    """Runs the topology over the partitions the group assigns this worker, until `stop()`."""

    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        state_dir: Path,
        topology: Topology,
        registry: SchemaRegistry,
        policy: Policy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
        batch_size: int = BATCH_RECORDS,
        batch_bytes: int = 8 * 1024 * 1024,
        tick_interval: float = 0.5,
        on_assignment: Callable[[set[int]], None] | None = None,
        on_commit: Callable[[], None] | None = None,
        transactional_id: str | None = None,
        standby_interval: float | None = None,
        state_memory: StateMemory | None = None,
    ) -> None:
        """With `transactional_id`, each batch is one Kafka transaction (`Transactional`);
        with `standby_interval` (seconds), the worker keeps standby replicas (`Standbys`).
        `on_assignment` is told the partitions after each rebalance, `on_commit` after each
        batch is durable. `state_memory`: what RocksDB may use for every partition store
        (default: `default_memory()`)."""
        self.topology = topology
        self.policy = policy
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._state_dir = state_dir
        self.state_memory = state_memory
        self._registry = registry
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._tick_interval = tick_interval
        self._on_assignment = on_assignment
        self._on_commit = on_commit
        self._transactional_id = transactional_id
        self._standby_interval = standby_interval
        self._assigned: dict[int, PartitionState] = {}
        self._stopping = threading.Event()
        self._last_tick = 0.0
        self.ready = threading.Event()
        self.running = False
        self.failure: BaseException | None = None  # why run() ended, if it failed

    # -- what the API reads -----------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    @property
    def assigned_partitions(self) -> set[int]:
        return set(self._assigned)

    def store(self, partition: int) -> PartitionStore | None:
        assigned = self._assigned.get(partition)
        return assigned.store if assigned else None

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        """Consume, process and commit until stopped; commits what it holds first."""
        limits = topic_limits(self._bootstrap, self._produced_topics())
        router = Router(self.topology, self._registry, self.metrics, limits)
        self._driver = Driver(self.topology, router, self.policy, self.metrics)
        self._router = router
        self._restorer = Restorer(
            self._bootstrap,
            self._group_id,
            self.topology,
            self._state_dir,
            self.metrics,
            limits.get(self.topology.changelog),
            self.state_memory,
        )
        standbys = (
            Standbys(self._restorer, self.topology.partitions, self._standby_interval, self.metrics)
            if self._standby_interval
            else None
        )
        consumer = Consumer(engine_consumer_config(self._bootstrap, self._group_id))
        durability: Durability = (
            Transactional(
                self._bootstrap,
                self.topology.changelog,
                consumer,
                self._stopping,
                self._transactional_id,
            )
            if self._transactional_id is not None
            else AtLeastOnce(self._bootstrap, self.topology.changelog, consumer, self._stopping)
        )
        self._producer = durability.producer
        consumer.subscribe(
            sorted(self.topology.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        last_housekeeping = 0.0
        with batch_collection():
            self.running = True
            try:
                while not self._stopping.is_set():
                    messages = self._fetch(consumer)
                    durability.begin()
                    records = _records_of(messages)
                    started = time.monotonic()
                    touched = self._driver.process(
                        self._assigned, records, self.clock(), between_runs=self._between_runs
                    )
                    self._between_runs()
                    if started - last_housekeeping >= self._tick_interval:
                        last_housekeeping = started
                        self._measure_lag(consumer)
                        if standbys is not None:
                            standbys.catch_up(set(self._assigned))
                    self._produce_forwards_and_changelog()
                    durable = {
                        p: s for p, s in self._assigned.items() if p in touched or s.store.dirty
                    }
                    if records or durable:
                        durability.commit(durable, _next_offsets(records))
                        self._count_committed()
                    if records:
                        self.metrics.batch_seconds.set(time.monotonic() - started)
            finally:
                self.running = False
                try:
                    durability.abort()  # a batch left open by a failure must not be seen
                    consumer.close()
                finally:
                    durability.close()
                    for assigned in self._assigned.values():
                        assigned.store.close()
                    self._assigned.clear()

    def _count_committed(self) -> None:
        """What `processed` counted up to this commit is now durable."""
        processed, committed = self.metrics.processed.values(), self.metrics.committed
        for topic, count in processed.items():
            committed.inc(topic, count - committed.value(topic))
        if self._on_commit is not None:
            self._on_commit()

    def _produced_topics(self) -> list[str]:
        topology = self.topology
        routes = [r.topic for r in topology.routes.values() if r.topic is not None]
        return [*routes, *topology.output_topics, topology.changelog]

    def _fetch(self, consumer: Consumer) -> list[Message]:
        """Up to batch_size records and about batch_bytes of values: one poll, topped up from
        what the client has already fetched (no waiting), so a busy worker takes big batches
        while an idle one answers within the poll timeout. The bytes bound a batch of stage
        records, each of which carries many forwarded messages."""
        step = 1000
        messages: list[Message] = consumer.consume(step, timeout=0.1)
        size = sum(len(m.value() or b"") for m in messages)
        while messages and len(messages) < self._batch_size and size < self._batch_bytes:
            more = consumer.consume(min(step, self._batch_size - len(messages)), timeout=0)
            if not more:
                break
            messages += more
            size += sum(len(m.value() or b"") for m in more)
        return messages

    def _between_runs(self) -> None:
        """After each handler run: hand its records to the producer (sent while the batch goes
        on), and run the timers if they are due."""
        self._produce(self._router.take_records())
        if time.monotonic() - self._last_tick >= self._tick_interval:
            self._last_tick = time.monotonic()
            self._driver.tick(self._assigned, self.clock())
            self._produce(self._router.take_records())

    def _produce(self, records: list[OutRecord]) -> None:
        produce = self._producer.produce  # (topic, value, key, partition): positional, cheap
        for topic, key, value, partition, _ in records:  # stamped when sent (CreateTime)
            try:
                produce(topic, value, key, partition)
            except BufferError:
                self._produce_waiting(topic, key, value, partition)

    def _produce_waiting(self, topic: str, key: bytes, value: bytes | None, partition: int) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, partition)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _produce_forwards_and_changelog(self) -> None:
        """The batch's forwards (one record per stage partition), then every changed state
        key that is not derived, on the partition's changelog."""
        self._produce(list(self._router.take_forwards()))
        derived = self.topology.derived_prefixes
        produce, topic = self._producer.produce, self.topology.changelog
        for partition, state in self._assigned.items():
            for key, value in state.store.dirty.items():
                if key.startswith(derived):
                    continue
                try:
                    produce(topic, value, key, partition)
                except BufferError:
                    self._produce_waiting(topic, key, value, partition)

    # -- rebalance --------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        started = time.monotonic()
        for number in sorted(numbers - set(self._assigned)):
            self._assigned[number] = self._restorer.restore(number)[0]
        for tp in partitions:
            applied = self._assigned[tp.partition].applied.get(tp.topic)
            if applied is not None:
                tp.offset = applied + 1
        consumer.assign(partitions)
        log.info(
            "assigned partitions %s (restored in %.2fs)",
            sorted(numbers),
            time.monotonic() - started,
        )
        self._assignment_changed()
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        for number in numbers & set(self._assigned):
            self._assigned.pop(number).store.close()
        log.info("revoked partitions %s", sorted(numbers))
        self._assignment_changed()

    def _assignment_changed(self) -> None:
        self.metrics.assigned.set(len(self._assigned))
        if self._on_assignment:
            self._on_assignment(set(self._assigned))

    def _measure_lag(self, consumer: Consumer) -> None:
        """Records between the consumer's positions and the partitions' ends (from the last
        fetch responses: only as right as the broker's high watermarks)."""
        try:
            positions = consumer.position(consumer.assignment())
        except KafkaException:  # while rebalancing: keep the last figure
            return
        lag = 0
        for tp in positions:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                lag += max(high - tp.offset, 0)
        self.metrics.lag.set(lag)


def _records_of(messages: list[Message]) -> list[InRecord]:
    """The consumed records of a poll; errors other than end-of-partition are logged."""
    records: list[InRecord] = []
    append = records.append
    for m in messages:
        error = m.error()
        if error is None:
            append(in_record(m))
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer: %s", error.str())
    return records


def _next_offsets(records: list[InRecord]) -> list[TopicPartition]:
    """The offsets to commit: after the last record of each (topic, partition) consumed in
    offset order, so the last one seen is the highest."""
    last = {(r.topic, r.partition): r.offset for r in records}
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
