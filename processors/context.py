"""What a processor is given (the context) and what it returns (outputs), as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.records import Record
from schemas.types import DEFAULT_STORY_TTL


@dataclass(frozen=True)
class Policy:
    """Tunables from the settings that change domain decisions."""

    story_ttl: timedelta = DEFAULT_STORY_TTL
    expiry_grace: timedelta = timedelta(hours=2)
    celebrity_followers: int = 100_000
    hll_lg_k: int = 12


@dataclass(frozen=True)
class Ctx:
    """Time and identity handed to a processor: it never reads a clock or makes an id itself.

    `now` is the clock (wall clock live, the input watermark in replay); `topic`, `partition`
    and `offset` locate the record being processed (for dead letters and de-duplication).
    """

    now: datetime
    policy: Policy = field(default_factory=Policy)
    topic: str = ""
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True)
class Put:
    """Publish `value` under `key`; the record's type decides the output topic."""

    key: str
    value: Record


@dataclass(frozen=True)
class Tombstone:
    """Publish a tombstone for `key` on the output topic of `record`."""

    record: type[Record]
    key: str


@dataclass(frozen=True)
class Forward:
    """Send an internal message to another keyed stage (a repartition), e.g. to an author."""

    stage: str
    key: str
    message: Any


Output = Put | Tombstone | Forward
