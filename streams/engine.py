"""The stream engine of a worker: one consumer-group member that reads every story-keyed and
internal topic in batches, runs the stages' handlers against per-partition RocksDB state,
and makes each batch durable before committing it.

A batch is made durable in this order: (1) outputs, forwards and changelog records are
produced and acknowledged; (2) a one-record checkpoint (the input offsets the state now
reflects) is produced to each touched changelog partition and acknowledged; (3) the local
RocksDB write batch is applied; (4) the input offsets are committed. A restart restores each
partition from the changelog up to its last checkpoint and resumes the inputs right after the
offsets recorded there, so state updates are applied exactly once even though the broker gives
no transactions; outputs may repeat (at least once), and are idempotent upserts or tombstones.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from processors.context import Forward, ForwardMany, Output, Policy, Put, PutMany, Tombstone
from schemas.records import DeadLetter
from streams.codecs import AvroCodec
from streams.kafka import CHANGELOG_DELETE_RETENTION_MS, producer_config
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.registry import SchemaRegistry
from streams.store import CHECKPOINT_KEY, PartitionStore
from streams.topics import DEAD_LETTERS, topic_of_record

log = logging.getLogger(__name__)

# A batch allocates millions of short-lived objects (records, views, keys), and every 700 of
# them Python's default collector ran a young collection, and every 7,000 or so a collection
# that walks the long-lived ones too (caches, the store's pending writes): about a sixth of the
# views path's CPU (bench.views_engine, alternating runs: 48.0/42.7 vs 41.1/33.5 us a view).
# While the engine runs, young collections run every 50,000 allocations instead.
GC_THRESHOLDS = (50_000, 20, 100)


class InRecord(NamedTuple):
    """A consumed record, undecoded (a NamedTuple: built once per record, cheaply)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


def _in_record(m: Message, _new: Any = tuple.__new__) -> InRecord:
    """A consumed message as an InRecord (without the NamedTuple's __new__: half the cost)."""
    record: InRecord = _new(
        InRecord, (m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1])
    )
    return record


_timestamp = itemgetter(5)  # InRecord.timestamp, as a C-level sort key


class Handler(Protocol):
    """A stage's wiring: decodes its topics' records and applies its processors."""

    @property
    def topics(self) -> tuple[str, ...]: ...

    def handle(self, ctx: PartitionContext, records: Sequence[InRecord]) -> None: ...

    def tick(self, ctx: PartitionContext) -> None: ...


class DerivedKeys(Protocol):
    """State keys that are rebuilt from other keys on restore instead of being changelogged:
    the keys that start with one of `derived_prefixes`."""

    derived_prefixes: tuple[bytes, ...]

    def rebuild(
        self, store: PartitionStore, key: bytes, old: bytes | None, new: bytes | None
    ) -> None:
        """`key` is being restored from `old` to `new`: write the keys derived from it."""
        ...


@dataclass
class PartitionContext:
    """What a handler sees of one partition during a batch."""

    engine: Engine
    partition: int
    store: PartitionStore
    now: datetime
    touched: bool = False

    @property
    def policy(self) -> Policy:
        return self.engine.policy

    def emit(self, outputs: Iterable[Output]) -> None:
        self.engine.emit(self, outputs)

    def dead_letter(self, record: InRecord, reason: str) -> None:
        self.engine.dead_letter(record, reason, self.now)


@dataclass
class _Assigned:
    store: PartitionStore
    applied: dict[str, int] = field(default_factory=dict)  # input topic -> last applied offset
    caught_up: bool = True  # False: a standby turn stopped at a checkpoint before the end


class Engine:
    """Runs the handlers over the assigned partitions until `stop()`."""

    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        state_dir: Path,
        partitions: int,
        handlers: Sequence[Handler],
        registry: SchemaRegistry,
        policy: Policy,
        changelog_topic: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
        batch_size: int = 20_000,
        tick_interval: float = 0.5,
        on_assignment: Callable[[set[int]], None] | None = None,
        output_prefix: str = "",
        transactional_id: str | None = None,
        standby_interval: float | None = None,
    ) -> None:
        """With `transactional_id`, each batch (outputs, forwards, changelog, checkpoints and
        input offsets) is one Kafka transaction: exactly-once outputs for read_committed
        consumers, on brokers that implement transactions.

        With `standby_interval` (seconds), the worker keeps a warm local copy of every
        partition it does not own (a standby replica), bringing one of them up to date from
        the changelog at a time, so that each is at most about that old: taking a partition
        over after another worker fails then replays only the changelog's tail."""
        self.policy = policy
        self.partitions = partitions
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._state_dir = state_dir
        self._handlers = list(handlers)
        self._derived = [h for h in handlers if hasattr(h, "derived_prefixes")]
        self._derived_prefixes = tuple(p for h in self._derived for p in h.derived_prefixes)
        self._by_topic: dict[str, Handler] = {t: h for h in handlers for t in h.topics}
        self._priority = {t: i for i, h in enumerate(handlers) for t in h.topics}
        self._registry = registry
        self._changelog = changelog_topic
        self._batch_size = batch_size
        self._tick_interval = tick_interval
        self._last_tick = 0.0
        self._on_assignment = on_assignment
        self.output_prefix = output_prefix
        self._codecs: dict[type, AvroCodec] = {}
        self._put_routes: dict[type, tuple[Callable[[Any], bytes], bytes, str, str]] = {}
        self._dead_codec = AvroCodec(DEAD_LETTERS.record, registry, DEAD_LETTERS.subject)
        self._assigned: dict[int, _Assigned] = {}
        self._stopping = threading.Event()
        self._errors: list[str] = []
        self.ready = threading.Event()
        self.running = False
        self._producer: Producer | None = None
        self._checkpointer: Producer | None = None
        self._checkpoint_offsets: dict[int, int] = {}
        self._consumer: Consumer | None = None
        self._transactional_id = transactional_id
        self.failure: BaseException | None = None  # why run() ended, if it failed
        self._standby_interval = standby_interval
        self._standby_due = 0.0
        self._standby_turn = 0
        self._in_transaction = False
        self._forward_encoders: dict[str, Callable[[Any], bytes]] = {}
        self._local_forwards: dict[str, Callable[[PartitionContext, str, Any], None]] = {}
        self._stage_topics: dict[str, str] = {}
        self._batch_encoders: dict[str, Callable[[list[tuple[str, Any]]], bytes]] = {}
        self._forward_batches: dict[tuple[str, int], list[tuple[str, Any]]] = defaultdict(list)

    # -- configuration ----------------------------------------------------------------------
    def route_stage(
        self,
        stage: str,
        topic: str,
        encode: Callable[[Any], bytes],
        encode_batch: Callable[[list[tuple[str, Any]]], bytes] | None = None,
    ) -> None:
        """Forwards to `stage` are produced to `topic` with `encode`d values.

        With `encode_batch`, the stage is batched: the forwards of a batch to one partition of
        the stage travel as one record, `encode_batch` of their `(key, message)` pairs in order
        (at most FORWARD_BATCH_BYTES unless one message is larger), produced when the batch
        commits: a stage that takes one message per view or per follower then costs one
        record per partition and batch, not one per message, and the messages are encoded
        together. Only for stages this engine consumes (`internal_messages` unpacks them).
        """
        self._stage_topics[stage] = topic
        self._forward_encoders[stage] = encode
        if encode_batch is not None:
            self._batch_encoders[stage] = encode_batch

    def route_local(self, stage: str, apply: Callable[[PartitionContext, str, Any], None]) -> None:
        """Forwards to a stage keyed like the current record are applied in place (same
        partition)."""
        self._local_forwards[stage] = apply

    # -- outputs ----------------------------------------------------------------------------
    def _produce(self, topic: str, key: bytes, value: bytes | None, partition: int = -1) -> None:
        """Queue a record; partition -1 lets the producer's murmur2 partitioner choose."""
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(topic, value, key, partition)  # on_delivery: its default
                return
            except BufferError:
                self._producer.poll(0.05)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    def _checkpointed(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"checkpoint {msg.partition()}: {err.str()}")
        else:
            self._checkpoint_offsets[msg.partition()] = msg.offset()

    def _codec(self, record: type) -> AvroCodec:
        codec = self._codecs.get(record)
        if codec is None:
            spec = topic_of_record(record)
            codec = self._codecs[record] = AvroCodec(spec.record, self._registry, spec.subject)
        return codec

    def emit(self, ctx: PartitionContext, outputs: Iterable[Output]) -> None:
        """Produce (or apply in place) a handler's outputs; counted once per call and topic."""
        assert self._producer is not None
        ctx.touched = True
        counts: dict[str, int] = defaultdict(int)
        routes, produce, output_partition = self._put_routes, self._produce, self._output_partition
        partitions = self.partitions
        for output in outputs:
            if isinstance(output, Put):
                route = routes.get(type(output.value))
                if route is None:
                    route = self._put_route(type(output.value))
                encode, _, topic, name = route
                key = output.key
                produce(topic, key.encode(), encode(output.value), output_partition(key))
                counts[name] += 1
            elif isinstance(output, Forward):
                local = self._local_forwards.get(output.stage)
                if local is not None:
                    local(ctx, output.key, output.message)
                    continue
                if output.stage in self._batch_encoders:
                    key = output.key
                    destination = (output.stage, partition_for(key, partitions))
                    self._forward_batches[destination].append((key, output.message))
                    continue
                # The producer's murmur2 partitioner: the same partition as partition_for.
                encode = self._forward_encoders[output.stage]
                produce(
                    self._stage_topics[output.stage], output.key.encode(), encode(output.message)
                )
            elif isinstance(output, Tombstone):
                spec = topic_of_record(output.record)
                topic = self.output_prefix + spec.name
                produce(topic, output.key.encode(), None, output_partition(output.key))
                counts[spec.name] += 1
            elif isinstance(output, PutMany):
                route = routes.get(output.record) or self._put_route(output.record)
                encode, header, topic, name = route
                partition = partition_for(output.partition_key, partitions)
                raw = self._producer.produce  # (topic, value, key, partition): no wrapper call
                for key, fields in output.items:
                    value = header + fields if type(fields) is bytes else encode(fields)
                    try:
                        raw(topic, value, key.encode(), partition)
                    except BufferError:
                        produce(topic, key.encode(), value, partition)
                counts[name] += len(output.items)
            elif isinstance(output, ForwardMany):
                self._forward_many(ctx, output)
            else:
                raise TypeError(f"not an output: {output!r}")
        for name, count in counts.items():
            self.metrics.outputs.inc(name, count)

    def _forward_many(self, ctx: PartitionContext, output: ForwardMany) -> None:
        stage = output.stage
        local = self._local_forwards.get(stage)
        if local is not None:
            for key, fields in output.items:
                local(ctx, key, output.message.model_validate(fields))
            return
        if stage in self._batch_encoders:
            batches, partitions = self._forward_batches, self.partitions
            for item in output.items:
                batches[stage, partition_for(item[0], partitions)].append(item)
            return
        encode, topic = self._forward_encoders[stage], self._stage_topics[stage]
        for key, fields in output.items:
            self._produce(topic, key.encode(), encode(fields))

    def _put_route(self, record: type) -> tuple[Callable[[Any], bytes], bytes, str, str]:
        """How a record type is published: its encoder, its wire header (for values given as
        Avro bodies), topic (prefixed) and topic name."""
        spec = topic_of_record(record)
        codec = self._codec(record)
        route = codec.encoder(), codec.header, self.output_prefix + spec.name, spec.name
        self._put_routes[record] = route
        return route

    def _output_partition(self, key: str) -> int:
        # Keys like "{story_id}/{viewer_id}" live with their story: one partition per story.
        return partition_for(key.split("/", 1)[0], self.partitions)

    def dead_letter(self, record: InRecord, reason: str, now: datetime) -> None:
        letter = DeadLetter(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=reason,
            original_key=record.key,
            original_value=record.value,
            at=now,
        )
        key = record.key or b""
        self._produce(
            self.output_prefix + DEAD_LETTERS.name,
            key,
            self._dead_codec.encode(letter),
            record.partition % self.partitions,
        )
        self.metrics.dead_letters.inc(record.topic)
        log.warning(
            "dead letter %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason
        )

    @property
    def handlers(self) -> list[Handler]:
        return list(self._handlers)

    def attach_producer(self, producer: Producer) -> None:
        """Produce through `producer` without running the consumer loop (replay)."""
        self._producer = producer

    # -- lifecycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    @property
    def assigned_partitions(self) -> set[int]:
        return set(self._assigned)

    def store(self, partition: int) -> PartitionStore | None:
        assigned = self._assigned.get(partition)
        return assigned.store if assigned else None

    def run(self) -> None:
        """Consume, process and commit until stopped; flushes and commits what it holds first."""
        if self._transactional_id is None:
            # Failed deliveries are reported to _delivered, the producer's default callback:
            # produce() then takes positional arguments only (a third cheaper a call).
            self._producer = Producer(
                producer_config(self._bootstrap, **{"linger.ms": 5, "on_delivery": self._delivered})
            )
            # Checkpoints go through their own producer: each is a one-record batch, and its
            # delivery report tells the changelog offset a local restart can resume from.
            self._checkpointer = Producer(
                producer_config(
                    self._bootstrap, **{"linger.ms": 0, "delivery.report.only.error": False}
                )
            )
        else:  # one producer, so checkpoints and outputs commit or abort together
            self._producer = self._checkpointer = Producer(
                producer_config(
                    self._bootstrap,
                    **{
                        "linger.ms": 5,
                        "transactional.id": self._transactional_id,
                        # librdkafka requires delivery.timeout.ms <= transaction.timeout.ms;
                        # brokers cap the latter at transaction.max.timeout.ms (15 min default).
                        "transaction.timeout.ms": 300_000,
                        "delivery.report.only.error": False,
                        "on_delivery": self._delivered,  # checkpoints name their own
                    },
                )
            )
            try:
                self._producer.init_transactions(60)
            except KafkaException as exc:
                raise RuntimeError(
                    "processing_guarantee=exactly_once needs a broker with Kafka transactions: "
                    f"{exc.args[0].str()}"
                ) from exc
            log.info("batches are Kafka transactions (transactional.id %s)", self._transactional_id)
        self._consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": self._group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "max.poll.interval.ms": 300_000,
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.subscribe(
            sorted(self._by_topic),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        last_housekeeping = 0.0
        previous_gc = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        self.running = True
        try:
            while not self._stopping.is_set():
                messages = self._fetch()
                self._begin_transaction()
                records = _records_of(messages)
                started = time.monotonic()
                contexts = self._process(records)
                self._tick_if_due(contexts)
                if started - last_housekeeping >= self._tick_interval:
                    last_housekeeping = started
                    self._measure_lag()
                    self._catch_up_standby()
                if records or any(c.touched for c in contexts.values()):
                    self._commit(contexts, records)
                if records:
                    self.metrics.batch_seconds.set(time.monotonic() - started)
        finally:
            self.running = False
            gc.set_threshold(*previous_gc)
            if self._in_transaction:  # left by a failure: its records must not be seen
                self._producer.abort_transaction(30)
                self._in_transaction = False
            try:
                self._consumer.close()
            finally:
                self._producer.flush(30)
                self._checkpointer.flush(30)
                for assigned in self._assigned.values():
                    assigned.store.close()
                self._assigned.clear()

    def _fetch(self) -> list[Message]:
        """Up to batch_size records: what one poll returns, topped up from what the client has
        already fetched (no waiting), so a busy worker takes big batches and coalesces more
        updates per key, while an idle one answers within the poll timeout."""
        assert self._consumer is not None
        messages: list[Message] = self._consumer.consume(self._batch_size, timeout=0.1)
        while messages and len(messages) < self._batch_size:
            more = self._consumer.consume(self._batch_size - len(messages), timeout=0)
            if not more:
                break
            messages += more
        return messages

    def _context(
        self, contexts: dict[int, PartitionContext], partition: int, now: datetime
    ) -> PartitionContext:
        ctx = contexts.get(partition)
        if ctx is None:
            ctx = contexts[partition] = PartitionContext(
                self, partition, self._assigned[partition].store, now
            )
        return ctx

    def _process(self, records: list[InRecord]) -> dict[int, PartitionContext]:
        now = self.clock()
        contexts: dict[int, PartitionContext] = {}
        by_partition: dict[int, list[InRecord]] = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record)
        for partition, items in by_partition.items():
            assigned = self._assigned.get(partition)
            if assigned is None:
                continue
            applied = assigned.applied
            # Consumed in offset order per topic: the last record of a topic has its highest
            # offset and the first its lowest.
            last = {r.topic: r.offset for r in items}
            first = {r.topic: r.offset for r in reversed(items)}
            if any(offset <= applied.get(topic, -1) for topic, offset in first.items()):
                items = [r for r in items if r.offset > applied.get(r.topic, -1)]
                if not items:
                    continue  # all already reflected in the restored state
            ctx = self._context(contexts, partition, now)
            ctx.touched = True
            # Time order; at equal times, story stages before the stages that depend on them.
            if len(last) == 1:  # one topic (the usual case): one run, sorted with a C key
                items.sort(key=_timestamp)
                self._handle(ctx, items)
                self.metrics.processed.inc(items[0].topic, len(items))
                self._tick_if_due(contexts)
            else:
                items.sort(key=lambda r: (r.timestamp, self._priority[r.topic]))
                start = 0
                for end in range(1, len(items) + 1):
                    if end == len(items) or items[end].topic != items[start].topic:
                        self._handle(ctx, items[start:end])
                        self.metrics.processed.inc(items[start].topic, end - start)
                        start = end
                        self._tick_if_due(contexts)  # a long batch does not hold timers back
            for topic, offset in last.items():
                applied[topic] = max(applied.get(topic, -1), offset)
        return contexts

    def _measure_lag(self) -> None:
        """Records between the consumer's positions and the partitions' ends (from the last
        fetch responses, no extra request; only as right as the broker's high watermarks)."""
        assert self._consumer is not None
        try:
            assignment = self._consumer.assignment()
            positions = self._consumer.position(assignment)
        except Exception:  # KafkaException while rebalancing: keep the last figure
            return
        lag = 0
        for tp in positions:
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                lag += max(high - tp.offset, 0)
        self.metrics.lag.set(lag)

    def _handle(self, ctx: PartitionContext, records: list[InRecord]) -> None:
        """Run a handler; a failure becomes dead letters instead of stopping the worker.

        Handlers write state only after a processor returns, one story (or key) at a time, so
        what a failing call leaves behind is whole; its records are reported with the reason.
        """
        try:
            self._by_topic[records[0].topic].handle(ctx, records)
        except Exception as exc:
            log.exception("processing %s records of %s failed", len(records), records[0].topic)
            for record in records:
                ctx.dead_letter(record, f"processing failed: {exc!r}")

    def _tick_if_due(self, contexts: dict[int, PartitionContext]) -> None:
        """Run the timers (expiry, purge) at most every tick interval, within a batch too."""
        if time.monotonic() - self._last_tick >= self._tick_interval:
            self._last_tick = time.monotonic()
            self._tick(contexts)

    def _tick(self, contexts: dict[int, PartitionContext]) -> None:
        now = self.clock()
        for partition in list(self._assigned):
            ctx = self._context(contexts, partition, now)
            ctx.now = now  # a context made earlier in the batch holds an older time
            for handler in self._handlers:
                handler.tick(ctx)

    def _produce_changelog(self, partition: int, dirty: dict[bytes, bytes | None]) -> None:
        """Every changed key of the partition that is not derived (the batch's hot loop: one
        produce call per key, nothing else)."""
        assert self._producer is not None
        derived = self._derived_prefixes  # one startswith call for all of them
        produce, topic = self._producer.produce, self._changelog
        for key, value in dirty.items():
            if key.startswith(derived):
                continue
            try:
                produce(topic, value, key, partition)
            except BufferError:
                self._produce(topic, key, value, partition)

    def _begin_transaction(self) -> None:
        if self._transactional_id is not None and not self._in_transaction:
            assert self._producer is not None
            self._producer.begin_transaction()
            self._in_transaction = True

    def _commit(self, contexts: dict[int, PartitionContext], records: list[InRecord]) -> None:
        assert self._producer is not None and self._consumer is not None
        touched = [p for p, c in contexts.items() if c.touched]
        batches, self._forward_batches = self._forward_batches, defaultdict(list)
        for (stage, partition), items in batches.items():
            topic, encode_batch = self._stage_topics[stage], self._batch_encoders[stage]
            for value in encoded_batches(items, encode_batch):
                self._produce(topic, b"", value, partition)
        for partition in touched:
            self._produce_changelog(partition, self._assigned[partition].store.dirty)
        self._flush_producer()  # in a transaction too: each checkpoint then travels alone
        if self._transactional_id is not None:
            self._commit_transaction(touched, records)
            return
        assert self._checkpointer is not None
        for partition in touched:
            applied = self._assigned[partition].applied
            checkpoint = json.dumps({"applied": applied}).encode()
            # Alone in its produce batch, so even a broker that misreports the high watermark
            # after multi-record batches reports it right after a checkpoint.
            self._checkpointer.produce(
                self._changelog,
                checkpoint,
                CHECKPOINT_KEY,
                partition=partition,
                on_delivery=self._checkpointed,
            )
            self._flush_checkpoint()
            offset = self._checkpoint_offsets.get(partition, -1)
            self._assigned[partition].store.flush(_local_checkpoint(applied, offset))
        if records:
            offsets = _last_offsets(records)
            try:
                self._consumer.commit(
                    offsets=[TopicPartition(t, p, o + 1) for (t, p), o in offsets.items()],
                    asynchronous=False,
                )
            except KafkaException as exc:
                # Harmless: a (re)assignment resumes each input from the offsets recorded in
                # the partition's checkpoint, not from the group's committed offsets.
                log.warning("offset commit failed (the checkpoint holds them): %s", exc)

    def _commit_transaction(self, touched: list[int], records: list[InRecord]) -> None:
        """Checkpoints and input offsets join the batch's transaction; once it commits, the
        local stores are written (a crash before that restores from the changelog, which holds
        the committed transaction, or replays the inputs of an aborted one)."""
        assert self._producer is not None and self._consumer is not None
        for partition in touched:
            checkpoint = json.dumps({"applied": self._assigned[partition].applied}).encode()
            self._producer.produce(
                self._changelog,
                checkpoint,
                CHECKPOINT_KEY,
                partition=partition,
                on_delivery=self._checkpointed,
            )
        if records:
            self._producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o + 1) for (t, p), o in _last_offsets(records).items()],
                self._consumer.consumer_group_metadata(),
                60,
            )
        self._producer.commit_transaction(60)  # raises on failure; the finally aborts
        self._in_transaction = False
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"transaction committed with failed deliveries: {errors[:3]}")
        for partition in touched:
            assigned = self._assigned[partition]
            offset = self._checkpoint_offsets.get(partition, -1)
            assigned.store.flush(_local_checkpoint(assigned.applied, offset))

    def _flush_checkpoint(self) -> None:
        """Wait for the checkpoint's acknowledgement for as long as the broker is away
        (librdkafka retries it for up to delivery.timeout.ms), unless stopping."""
        assert self._checkpointer is not None
        while self._checkpointer.flush(5.0) > 0:
            log.warning("waiting for the broker to acknowledge a checkpoint")
            if self._stopping.is_set() and self._checkpointer.flush(25.0) > 0:
                raise RuntimeError("broker unavailable while stopping; state will be recovered")
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"checkpoint not acknowledged: {errors[:3]}")

    def _flush_producer(self) -> None:
        assert self._producer is not None
        while self._producer.flush(5.0) > 0:
            log.warning("waiting for the broker to acknowledge produced records")
            if self._stopping.is_set() and self._producer.flush(25.0) > 0:
                raise RuntimeError("broker unavailable while stopping; state will be recovered")
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"produce failed: {errors[:3]}")

    # -- rebalance --------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        started = time.monotonic()
        for number in sorted(numbers - set(self._assigned)):
            self._assigned[number] = self._restore(number)
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
        self.metrics.assigned.set(len(self._assigned))
        if self._on_assignment:
            self._on_assignment(set(self._assigned))
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        for number in numbers & set(self._assigned):
            self._assigned.pop(number).store.close()
        log.info("revoked partitions %s", sorted(numbers))
        self.metrics.assigned.set(len(self._assigned))
        if self._on_assignment:
            self._on_assignment(set(self._assigned))

    def _catch_up_standby(self) -> None:
        """Bring the next standby partition (one this worker does not own) up to date.

        The same restore as on assignment, into the same local RocksDB, which is closed again
        at once: when the partition is assigned later, only the changelog records written
        since are replayed. One partition per turn, and a turn stops at the first checkpoint
        after STANDBY_TURN_SECONDS, so a batch never waits long: a cold replica (the whole
        changelog to replay) is caught up over as many turns as it takes, and the next
        partition's turn comes after that.
        """
        if self._standby_interval is None or time.monotonic() < self._standby_due:
            return
        others = [p for p in range(self.partitions) if p not in self._assigned]
        if not others:
            return
        partition = others[self._standby_turn % len(others)]
        self._standby_due = time.monotonic() + self._standby_interval / len(others)
        standby = self._restore(partition, standby_turn=STANDBY_TURN_SECONDS)
        standby.store.close()
        if standby.caught_up:
            self._standby_turn += 1
            self.metrics.standby_caught_up.inc(str(partition))

    def _restore(self, partition: int, standby_turn: float | None = None) -> _Assigned:
        """Local RocksDB caught up from the changelog up to its last checkpoint; for a
        standby (`standby_turn` seconds), to the first checkpoint after that long."""
        standby = standby_turn is not None
        path = self._state_dir / f"p{partition}"
        store = PartitionStore(path)
        restorer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": f"{self._group_id}-restore",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            low, high = _watermarks(restorer, TopicPartition(self._changelog, partition))
            local = store.checkpoint
            start = OFFSET_BEGINNING
            applied: dict[str, int] = {}
            if local is not None:
                state = json.loads(local)
                position = state.get("changelog_offset", -1)
                if low <= position < high and not _outlived_tombstones(state):
                    start = position + 1
                    applied = state["applied"]
                else:  # another broker's lifetime, compacted away, or too old: rebuild
                    store.close()
                    PartitionStore.destroy(path)
                    store = PartitionStore(path)
            deadline = None if standby_turn is None else time.monotonic() + standby_turn
            restored, caught_up = self._replay(restorer, store, partition, start, high, deadline)
            if restored is not None:
                applied = restored[0]
                store.flush(_local_checkpoint(applied, restored[1]))
            if not standby:
                self.metrics.restored.inc(str(partition))
            return _Assigned(store, {k: int(v) for k, v in applied.items()}, caught_up)
        finally:
            restorer.close()

    def _replay(
        self,
        restorer: Consumer,
        store: PartitionStore,
        partition: int,
        start: int,
        high: int,
        deadline: float | None = None,
    ) -> tuple[tuple[dict[str, int], int] | None, bool]:
        """Apply changelog records up to the last checkpoint before `high`; records after it
        belong to a batch that never completed and are redone from the inputs instead.

        With a `deadline` (a standby's turn), stop at the first checkpoint after it. Returns
        the last checkpoint applied (applied offsets, its changelog offset), if any, and
        whether the replay went to the end."""
        standby = deadline is not None
        if high <= 0 or (start != OFFSET_BEGINNING and start >= high):
            return None, True
        restorer.assign([TopicPartition(self._changelog, partition, start)])
        pending: list[tuple[bytes, bytes | None]] = []
        last: tuple[dict[str, int], int] | None = None
        count = 0
        stopped = False
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 10.0:
            messages = restorer.consume(10_000, timeout=1.0)
            if messages:
                idle_since = time.monotonic()
            done = False
            for msg in messages:
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        done = True
                    continue
                if msg.key() == CHECKPOINT_KEY:
                    for key, value in pending:
                        for handler in self._derived:
                            handler.rebuild(store, key, store.get_committed(key), value)  # type: ignore[attr-defined]
                        store.apply_restored(key, value)
                    count += len(pending)
                    if not standby:
                        self.metrics.restored_records.inc(str(partition), len(pending))
                    pending = []
                    last = (json.loads(msg.value())["applied"], msg.offset())
                    if deadline is not None and time.monotonic() >= deadline:
                        stopped = msg.offset() < high - 1
                        done = True
                        break
                else:
                    pending.append((msg.key(), msg.value()))
                if msg.offset() >= high - 1:
                    done = True
            if done or not messages and last is not None and last[1] >= high - 1:
                break
        log.log(
            logging.DEBUG if standby else logging.INFO,
            "partition %s: restored %s changelog records%s",
            partition,
            count,
            " (standby)" if standby else "",
        )
        return last, not stopped


# Local state may replay the changelog's tail only while the tombstones written since its
# checkpoint are certainly still there: compaction may drop a tombstone once it is
# delete.retention.ms old. An hour's margin for the clocks of workers and brokers.
LOCAL_STATE_MAX_AGE_MS = CHANGELOG_DELETE_RETENTION_MS - 3_600_000


def _watermarks(consumer: Consumer, tp: TopicPartition, seconds: float = 60.0) -> tuple[int, int]:
    """A partition's (low, high) offsets, asked again while the broker cannot tell yet: a
    topic created a moment ago is unknown to a broker's metadata, or has no leader, until
    the controller's change reaches it (Apache Kafka; the embedded broker answers at once)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            transient = error.retriable() or error.code() in _NOT_READY
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_NOT_READY = {
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
}


def _local_checkpoint(applied: dict[str, int], changelog_offset: int) -> bytes:
    """What local RocksDB records with its state: the input offsets it reflects, the
    changelog offset it matches, and when (wall clock, ms)."""
    written_at = int(time.time() * 1000)
    state = {"applied": applied, "changelog_offset": changelog_offset, "written_at": written_at}
    return json.dumps(state).encode()


def _outlived_tombstones(local: dict[str, Any]) -> bool:
    """Whether local state is too old to replay the changelog's tail onto: a key deleted
    since may have lost its tombstone to compaction, and would live on locally. (A
    checkpoint written before the time was recorded counts as recent, as it did.)"""
    written_at = local.get("written_at")
    return written_at is not None and time.time() * 1000 - written_at > LOCAL_STATE_MAX_AGE_MS


FORWARD_BATCH_BYTES = 256 * 1024  # well below Kafka's default 1 MB record limit
STANDBY_TURN_SECONDS = 0.2  # a standby catch-up's share of the engine thread per turn


def encoded_batches(
    items: list[tuple[str, Any]],
    encode_batch: Callable[[list[tuple[str, Any]]], bytes],
    limit: int = FORWARD_BATCH_BYTES,
) -> Iterator[bytes]:
    """`items` in order, encoded by `encode_batch` in runs of at most `limit` bytes (a message
    larger than that travels alone).

    Each run's length is sized to fill about three quarters of the limit at the bytes per
    message seen last (first from the first SIZE_SAMPLE messages); a run that comes out too
    large is sized again and encoded again. A batch of forwards is megabytes, so each message
    is encoded about once, not once per halving."""
    if not items:
        return
    sample = items[:SIZE_SAMPLE]
    per_item = len(encode_batch(sample)) / len(sample)
    start = 0
    while start < len(items):
        run = items[start : start + max(1, int(limit * 0.75 / per_item))]
        data = encode_batch(run)
        per_item = len(data) / len(run)
        if len(data) > limit and len(run) > 1:
            continue  # sized again from this run
        yield data
        start += len(run)


SIZE_SAMPLE = 64


def _records_of(messages: list[Message]) -> list[InRecord]:
    """The consumed records of a poll; errors other than end-of-partition are logged."""
    records: list[InRecord] = []
    append = records.append
    for m in messages:
        error = m.error()
        if error is None:
            append(_in_record(m))
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer: %s", error.str())
    return records


def _last_offsets(records: list[InRecord]) -> dict[tuple[str, int], int]:
    """The last offset of each (topic, partition) among `records` (consumed in offset order
    within a partition, so the last one seen is the highest)."""
    return {(r.topic, r.partition): r.offset for r in records}
