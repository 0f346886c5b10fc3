"""`storystream consume`: decode a topic to JSON lines, or print its compacted view."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import SchemaRegistry
from streams.kafka.clients import reader_config
from streams.topics import TopicSpec


@dataclass(frozen=True)
class Decoded:
    key: str | None
    value: Any  # JSON-ready dict, None for a tombstone
    partition: int
    offset: int
    timestamp: int

    def as_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "value": self.value,
                "partition": self.partition,
                "offset": self.offset,
                "timestamp": self.timestamp,
            },
            ensure_ascii=False,
            default=_json_default,
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_topic(
    spec: TopicSpec,
    bootstrap: str,
    registry: SchemaRegistry,
    from_beginning: bool = False,
    until_idle: float | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Decoded]:
    """Every record of `spec` in arrival order per partition, decoded to JSON-ready values;
    without `from_beginning`, only records that arrive after the read starts.

    Idleness is judged by time with nothing new, not by end offsets, which some brokers
    report wrongly after batched produces. For the same reason a read of new records starts
    at the reported ends and first passes over what is already there (`_settled`). A record
    that cannot be decoded is yielded with `{"undecodable": reason}` as its value instead of
    stopping the read.
    """
    codec = AvroCodec(spec.record, registry, spec.subject)
    consumer = Consumer(reader_config(bootstrap))
    try:
        metadata = consumer.list_topics(spec.name, timeout=10).topics[spec.name]
        if metadata.error is not None:
            raise RuntimeError(f"topic {spec.name}: {metadata.error.str()}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        partitions = [TopicPartition(spec.name, p, start) for p in metadata.partitions]
        consumer.assign(partitions)
        if not from_beginning:
            _settled(consumer, partitions, stop)
        last_seen = time.monotonic()
        while not stop():
            batch = consumer.consume(1000, timeout=0.2)
            if not batch:
                if until_idle is not None and time.monotonic() - last_seen >= until_idle:
                    return
                continue
            last_seen = time.monotonic()
            for msg in batch:
                if msg.error() is not None:
                    continue  # partition EOF and transient fetch errors are not records
                yield _decode(codec, msg)
    finally:
        consumer.close()


SETTLE_SECONDS = 3.0


def _settled(
    consumer: Consumer, partitions: list[TopicPartition], stop: Callable[[], bool]
) -> None:
    """Pass over the records already at the end of the partitions.

    The embedded broker reports a partition's end as the start of its last produce batch plus
    one, so a read from the reported end would print the rest of that batch as new. Once the
    fetches of every partition have begun, what they return until one comes back empty was
    already there. On a broker that reports ends right that is nothing, unless a record
    arrives in that moment (under a second). Bounded by SETTLE_SECONDS, so a topic written to
    without a pause is still read.
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    while not stop() and time.monotonic() < deadline:
        # A partition's fetches have begun once a response gave it an end (cached).
        begun = all(consumer.get_watermark_offsets(tp, cached=True)[1] >= 0 for tp in partitions)
        batch = consumer.consume(1000, timeout=0.3)
        if begun and not batch:
            return


def _decode(codec: AvroCodec, msg: Any) -> Decoded:
    raw_key = msg.key()
    key = raw_key.decode("utf-8", errors="replace") if raw_key is not None else None
    value: Any = None
    if msg.value() is not None:
        try:
            value = codec.to_model(codec.decode_dict(msg.value())).model_dump(mode="json")
        except CodecError as exc:
            value = {"undecodable": str(exc)}
    return Decoded(key, value, msg.partition(), msg.offset(), msg.timestamp()[1])


def latest_per_key(records: Iterator[Decoded]) -> list[Decoded]:
    """The compacted view: the last record per key; keys whose last record is a tombstone are
    omitted."""
    last: dict[str | None, Decoded] = {}
    for record in records:
        last.pop(record.key, None)  # re-insert so the order is that of the last write
        last[record.key] = record
    return [record for record in last.values() if record.value is not None]
