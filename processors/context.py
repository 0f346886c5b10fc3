"""What a processor is given (the context) and what it returns (outputs), as plain data.

Outputs are NamedTuples: immutable like frozen dataclasses, and cheaper to build (several are
made per view on the views path). Compare them by type too where it matters: as tuples, two
outputs of different kinds with equal fields are equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from processors.messages import Message, message_from_fields
from schemas.records import Record
from schemas.types import DEFAULT_STORY_TTL


@dataclass(frozen=True)
class Policy:
    """Tunables from the settings that change domain decisions."""

    story_ttl: timedelta = DEFAULT_STORY_TTL
    expiry_grace: timedelta = timedelta(hours=2)
    celebrity_followers: int = 100_000
    hll_lg_k: int = 12


class Ctx(NamedTuple):
    """Time and identity handed to a processor: it never reads a clock or makes an id itself.

    `now` is the clock (wall clock live, the input watermark in replay); `topic`, `partition`
    and `offset` locate the record being processed (for dead letters and de-duplication).
    A NamedTuple, as the outputs are: one is made per message.
    """

    now: datetime
    policy: Policy = Policy()
    topic: str = ""
    partition: int = -1
    offset: int = -1


class Put(NamedTuple):
    """Publish `value` under `key`; the record's type decides the output topic."""

    key: str
    value: Record


class Tombstone(NamedTuple):
    """Publish a tombstone for `key` on the output topic of `record`."""

    record: type[Record]
    key: str


class Forward(NamedTuple):
    """Send an internal message to another keyed stage (a repartition), e.g. to an author."""

    stage: str
    key: str
    message: Any


class PutMany(NamedTuple):
    """Publish many records of one type, each `(key, fields)`, all keyed within the partition of
    `partition_key` (a story's keys). The fields are the record's, valid as they are: a hot
    path builds them without a model. `expand` gives the equivalent `Put`s."""

    record: type[Record]
    partition_key: str
    items: list[tuple[str, dict[str, Any]]]


class ForwardMany(NamedTuple):
    """Send many internal messages of one type to a stage, each `(key, fields)` (fields as in
    `PutMany`). `expand` gives the equivalent `Forward`s."""

    stage: str
    message: type[Message]
    items: list[tuple[str, dict[str, Any]]]


Output = Put | Tombstone | Forward | PutMany | ForwardMany


def expand(outputs: Iterable[Output]) -> list[Put | Tombstone | Forward]:
    """The outputs with each `PutMany` and `ForwardMany` as single outputs, their fields
    validated into models (strictly: a field that would need converting is an error)."""
    out: list[Put | Tombstone | Forward] = []
    for output in outputs:
        if isinstance(output, PutMany):
            record = output.record
            out += [Put(k, record.model_validate(f, strict=True)) for k, f in output.items]
        elif isinstance(output, ForwardMany):
            message = output.message
            out += [
                Forward(output.stage, k, message_from_fields(message, f)) for k, f in output.items
            ]
        else:
            out.append(output)
    return out
