"""Output routing: a stage's outputs become records for the producer, forwards to other stages
(one record per stage partition and batch), or state changes applied in place.

Records are held until the driver keeps the handler run that made them (`keep`) or drops
them with its state (`drop`), so a failed run leaves no output behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from processors.context import Forward, ForwardMany, Output, Put, PutMany, Tombstone
from processors.messages import message_from_fields
from schemas.records import DeadLetter, Record
from schemas.types import from_millis
from streams.codecs.avro import AvroCodec
from streams.codecs.registry import SchemaRegistry
from streams.kafka.partitioning import partition_for
from streams.runtime.limits import RecordTooLarge, payload_limit
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord
from streams.runtime.topology import Topology

if TYPE_CHECKING:
    from streams.runtime.context import StageContext

FORWARD_BATCH_BYTES = 256 * 1024  # a batch of forwards, well below a record's limit
DEFAULT_LIMIT = payload_limit(1_048_588)


class OutRecord(NamedTuple):
    """A record for the producer: topic, key, value (None: a tombstone), partition, and the
    event time it reflects when its handler gave one (epoch ms; None: the time it is sent, or
    in replay the time the driver has reached)."""

    topic: str
    key: bytes
    value: bytes | None
    partition: int
    timestamp: int | None = None


class _PutRoute(NamedTuple):
    encode: Callable[[Any], bytes]
    topic: str
    name: str  # the topic's catalog name (metrics)
    limit: int


class Router:
    """Turns outputs into records; holds a run's records until the driver keeps them."""

    def __init__(
        self,
        topology: Topology,
        registry: SchemaRegistry,
        metrics: Metrics,
        limits: dict[str, int] | None = None,
    ) -> None:
        self.topology = topology
        self.metrics = metrics
        self._registry = registry
        self._limits = limits or {}
        self._partitions = topology.partitions
        self._routes: dict[type, _PutRoute] = {}
        self._dead_codec = AvroCodec("DeadLetter", registry, topology.dead_letters.subject)
        self._records: list[OutRecord] = []  # kept
        self._forwards: list[tuple[str, int, str, Any]] = []  # kept: stage, partition, key, msg
        self._run_records: list[OutRecord] = []
        self._run_forwards: list[tuple[str, int, str, Any]] = []
        self._run_counts: dict[str, int] = defaultdict(int)

    def limit(self, topic: str) -> int:
        return self._limits.get(topic, DEFAULT_LIMIT)

    # -- a run's outputs --------------------------------------------------------------------
    def emit(self, ctx: StageContext, outputs: Iterable[Output], at_ms: int | None = None) -> None:
        """Route a handler's outputs (held with the run under way); `at_ms`: the event time
        the records reflect (OutRecord.timestamp)."""
        records, counts = self._run_records, self._run_counts
        append, output_partition = records.append, self._output_partition
        for output in outputs:
            if isinstance(output, Put):
                route = self._routes.get(type(output.value)) or self._route(type(output.value))
                key = output.key.encode()
                value = route.encode(output.value)
                if len(key) + len(value) > route.limit:
                    raise RecordTooLarge(f"{route.name} record", len(key) + len(value), route.limit)
                append(OutRecord(route.topic, key, value, output_partition(output.key), at_ms))
                counts[route.name] += 1
            elif isinstance(output, PutMany):
                self._put_many(output, at_ms)
            elif isinstance(output, Forward):
                self._forward(ctx, output.stage, output.key, output.message)
            elif isinstance(output, ForwardMany):
                self._forward_many(ctx, output)
            elif isinstance(output, Tombstone):
                spec = self.topology.output_spec(output.record)
                topic = self.topology.output_topic(output.record)
                partition = output_partition(output.key)
                append(OutRecord(topic, output.key.encode(), None, partition, at_ms))
                counts[spec.name] += 1
            else:
                raise TypeError(f"not an output: {output!r}")

    def _put_many(self, output: PutMany, at_ms: int | None, _new: Any = tuple.__new__) -> None:
        route = self._routes.get(output.record) or self._route(output.record)
        encode, topic, name, limit = route
        partition = partition_for(output.partition_key, self._partitions)
        append = self._run_records.append
        for key, fields in output.items:
            value = encode(fields)
            raw_key = key.encode()
            if len(raw_key) + len(value) > limit:
                raise RecordTooLarge(f"{name} record", len(raw_key) + len(value), limit)
            append(_new(OutRecord, (topic, raw_key, value, partition, at_ms)))  # (no __new__ frame)
        self._run_counts[name] += len(output.items)

    def _forward(self, ctx: StageContext, stage: str, key: str, message: Any) -> None:
        route = self.topology.route(stage)
        if route.apply is not None:  # same key, same partition: applied in place
            route.apply(ctx, key, message)
            return
        assert route.topic is not None
        encoded = encode_message(message)
        limit = self.limit(route.topic)
        if len(key) + len(encoded) > limit:
            raise RecordTooLarge(f"message to stage {stage}", len(key) + len(encoded), limit)
        partition = partition_for(key, self._partitions)
        if route.batched:
            self._run_forwards.append((stage, partition, key, encoded))
        else:
            self._run_records.append(OutRecord(route.topic, key.encode(), encoded, partition))

    def _forward_many(self, ctx: StageContext, output: ForwardMany) -> None:
        """Messages built as fields by a hot path (bounded: identifiers and times)."""
        route = self.topology.route(output.stage)
        if route.apply is not None or not route.batched:
            for key, fields in output.items:
                self._forward(ctx, output.stage, key, message_from_fields(output.message, fields))
            return
        stage, partitions = output.stage, self._partitions
        self._run_forwards += [
            (stage, partition_for(key, partitions), key, fields) for key, fields in output.items
        ]

    def dead_letter(self, record: InRecord, reason: str, now_ms: int) -> None:
        """A dead letter for `record` (held with the run under way); without the original
        value (its size and first bytes named in the reason) when it would not fit."""
        topic = self.topology.output_topic(DeadLetter)
        limit = self.limit(topic)
        letter = DeadLetter(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=reason[:4096],
            original_key=record.key,
            original_value=record.value,
            at=from_millis(now_ms),
        )
        key = record.key or b""
        value = self._dead_codec.encode(letter)
        if len(key) + len(value) > limit:
            size = len(record.value or b"") + len(record.key or b"")
            head = (record.value or b"")[:64].hex(" ")
            omitted = (
                f"{letter.error} [original key and value ({size:,} bytes) not copied: over "
                f"{topic}'s record limit; they stay at {record.topic}[{record.partition}]"
                f"@{record.offset}; value's first 64 bytes: {head}]"
            )
            key = key[:256]
            letter = letter.model_copy(
                update={"error": omitted, "original_key": key, "original_value": None}
            )
            value = self._dead_codec.encode(letter)
        self._run_records.append(OutRecord(topic, key, value, record.partition % self._partitions))
        self._run_counts[self.topology.dead_letters.name] += 1
        self.metrics.dead_letters.inc(record.topic)

    # -- runs -------------------------------------------------------------------------------
    def keep(self) -> None:
        """The run under way succeeded: its records are kept for the producer."""
        if self._run_records:
            self._records += self._run_records
            self._run_records = []
        if self._run_forwards:
            self._forwards += self._run_forwards
            self._run_forwards = []
        if self._run_counts:
            for name, count in self._run_counts.items():
                self.metrics.outputs.inc(name, count)
            self._run_counts.clear()

    def drop(self) -> None:
        """The run under way failed: forget its records."""
        self._run_records = []
        self._run_forwards = []
        self._run_counts.clear()

    def take_records(self) -> list[OutRecord]:
        """The kept records, handed over once (in the order they were made)."""
        records, self._records = self._records, []
        return records

    def take_forwards(self) -> Iterator[OutRecord]:
        """The kept forwards to batched stages, as records of batches: one or more per stage
        partition, each message once, in order."""
        forwards, self._forwards = self._forwards, []
        grouped: dict[tuple[str, int], list[tuple[str, Any]]] = defaultdict(list)
        for stage, partition, key, message in forwards:
            grouped[stage, partition].append((key, message))
        for (stage, partition), items in grouped.items():
            topic = self.topology.route(stage).topic
            assert topic is not None
            for value in forward_records(items):
                yield OutRecord(topic, b"", value, partition)

    # -- routes -----------------------------------------------------------------------------
    def _route(self, record: type[Record]) -> _PutRoute:
        spec = self.topology.output_spec(record)
        codec = AvroCodec(spec.record, self._registry, spec.subject)
        topic = self.topology.output_topic(record)
        route = _PutRoute(codec.encoder(), topic, spec.name, self.limit(topic))
        self._routes[record] = route
        return route

    def _output_partition(self, key: str) -> int:
        # Keys like "{story_id}/{viewer_id}" live with their story: one partition per story.
        return partition_for(key.split("/", 1)[0], self._partitions)


def _plain(value: Any) -> Any:
    if hasattr(value, "__pydantic_fields_set__"):
        return value.__dict__
    raise TypeError(f"cannot send {type(value).__name__} in an internal message")


# msgspec, not orjson: orjson's result keeps its 4 KiB buffer, and a batch's forwards are
# held until the batch ends (a fan-out's are a hundred thousand).
_JSON = msgspec.json.Encoder(enc_hook=_plain)


def encode_message(message: Any) -> bytes:
    """An internal message (or its fields, its `kind` first) as JSON; not part of the
    contract."""
    return _JSON.encode(message)


def encode_message_batch(items: list[tuple[str, Any]]) -> bytes:
    """Messages to one stage partition as one record: a JSON array of [key, message] pairs (a
    single message is a JSON object, so the two never mix up)."""
    return _JSON.encode(items)


def forward_records(
    items: list[tuple[str, Any]], limit: int = FORWARD_BATCH_BYTES
) -> Iterator[bytes]:
    """`items` (key, message: its fields, or its JSON already encoded) in order, as
    `encode_message_batch` records of at most `limit` bytes (a message larger than that
    travels alone). Messages given as fields are encoded DICT_RUN at a time, in one call."""
    record: list[bytes] = []
    size = 2
    for piece in _pair_texts(items, limit):
        if record and size + len(piece) + 1 > limit:
            yield b"[" + b",".join(record) + b"]"
            record, size = [], 2
        record.append(piece)
        size += len(piece) + 1
    if record:
        yield b"[" + b",".join(record) + b"]"


DICT_RUN = 500  # messages given as fields, encoded together (about 100 bytes each)


def _pair_texts(items: list[tuple[str, Any]], limit: int) -> Iterator[bytes]:
    """Comma-separated `[key, message]` texts: one per encoded message, one per run of
    messages given as fields (each within `limit`, unless one message alone is over it)."""
    run: list[tuple[str, Any]] = []
    for key, message in items:
        if type(message) is bytes:
            if run:
                yield from _run_texts(run, limit)
                run = []
            yield b"[" + _JSON.encode(key) + b"," + message + b"]"
        else:
            run.append((key, message))
            if len(run) == DICT_RUN:
                yield from _run_texts(run, limit)
                run = []
    if run:
        yield from _run_texts(run, limit)


def _run_texts(run: list[tuple[str, Any]], limit: int) -> Iterator[bytes]:
    text = encode_message_batch(run)[1:-1]
    if len(text) + 2 <= limit or len(run) == 1:
        yield text
    else:  # halves, each encoded again: only for limits near a run's size
        middle = len(run) // 2
        yield from _run_texts(run[:middle], limit)
        yield from _run_texts(run[middle:], limit)
