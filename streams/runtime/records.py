"""A consumed record as the runtime passes it around: a NamedTuple, built once per record."""

from __future__ import annotations

from operator import itemgetter
from typing import Any, NamedTuple

from confluent_kafka import Message


class InRecord(NamedTuple):
    """A consumed record, undecoded."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


def in_record(m: Message, _new: Any = tuple.__new__) -> InRecord:
    """A consumed message as an InRecord (built without the NamedTuple's __new__: cheaper)."""
    record: InRecord = _new(
        InRecord, (m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1])
    )
    return record


timestamp_of = itemgetter(5)  # InRecord.timestamp, as a C-level sort key
