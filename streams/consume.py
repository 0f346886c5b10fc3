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

from streams.codecs import AvroCodec, CodecError
from streams.kafka import reader_config
from streams.registry import SchemaRegistry
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
    """Every record of `spec` in arrival order per partition, decoded to JSON-ready values.

    Idleness is judged by time with nothing new, not by end offsets, which some brokers
    report wrongly after batched produces. A record that cannot be decoded is yielded with
    `{"undecodable": reason}` as its value instead of stopping the read.
    """
    codec = AvroCodec(spec.record, registry, spec.subject)
    consumer = Consumer(reader_config(bootstrap))
    try:
        metadata = consumer.list_topics(spec.name, timeout=10).topics[spec.name]
        if metadata.error is not None:
            raise RuntimeError(f"topic {spec.name}: {metadata.error.str()}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(spec.name, p, start) for p in metadata.partitions])
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
