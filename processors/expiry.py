"""Expiry by time: a time-bucketed index of due keys, each story's next due time, and clocks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from processors.context import Policy
from schemas.types import EPOCH, millis

if TYPE_CHECKING:
    from processors.stories import Story

_MILLI = timedelta(milliseconds=1)


def bucket_of(when: datetime, width: timedelta) -> int:
    """The start (epoch milliseconds) of the bucket of `width` that holds `when`."""
    step = width_ms(width)
    return millis(when) // step * step


def due_buckets(index_buckets: Iterable[int], now: datetime, width: timedelta) -> list[int]:
    """The buckets that may hold keys due at `now`, oldest first.

    A bucket is due as soon as it starts: the current bucket also holds keys due a little
    later, which the caller's processor leaves unchanged and puts back (see `ExpiryIndex`).
    """
    width_ms(width)
    now_ms = millis(now)
    return sorted(bucket for bucket in set(index_buckets) if bucket <= now_ms)


def next_due(story: Story | None, policy: Policy) -> datetime | None:
    """When the clock next changes `story`: its expiry, its purge, or never (highlighted).

    Live (processing/active): `expires_at`. Ended (expired, deleted, failed) and not
    highlighted: `max(expires_at, ended_at) + expiry_grace`. Expired but highlighted: `None`,
    the story is kept until a highlight change or a delete.

    A story that ended early (deleted, failed) is still kept until `expires_at + grace`: its
    state is what refuses a redelivered `story_posted`, which would otherwise open it again.
    """
    if story is None:
        return None
    if story.phase in ("processing", "active"):
        return story.expires_at
    if story.phase == "expired" and story.highlighted:
        return None
    ended_at = story.ended_at if story.ended_at is not None else story.expires_at
    return max(ended_at, story.expires_at) + policy.expiry_grace


@dataclass(frozen=True)
class ExpiryIndex:
    """Keys (story or media ids) by the time bucket of their due time; values never mutate.

    The scan is `pop_due(now)`: it removes every key of the due buckets and returns them; the
    caller runs each key's processor at `now` and adds the key back under its new due time
    (a key of the current bucket not yet due comes back unchanged). Events move a key with
    `move(key, old_due, new_due)`. Only due buckets are read, never all keys.
    """

    width: timedelta = timedelta(minutes=1)
    buckets: Mapping[int, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        width_ms(self.width)
        if not isinstance(self.buckets, MappingProxyType):
            object.__setattr__(self, "buckets", MappingProxyType(dict(self.buckets)))

    def __len__(self) -> int:
        return sum(len(keys) for keys in self.buckets.values())

    def __contains__(self, key: object) -> bool:
        return any(key in keys for keys in self.buckets.values())

    def add(self, key: str, due: datetime | None) -> ExpiryIndex:
        """The index with `key` due at `due` (unchanged when `due` is None)."""
        if due is None:
            return self
        bucket = bucket_of(due, self.width)
        keys = self.buckets.get(bucket, frozenset())
        if key in keys:
            return self
        return self._with(bucket, keys | {key})

    def remove(self, key: str, due: datetime | None) -> ExpiryIndex:
        """The index without `key` under `due`'s bucket (unchanged when it is not there)."""
        if due is None:
            return self
        bucket = bucket_of(due, self.width)
        keys = self.buckets.get(bucket, frozenset())
        if key not in keys:
            return self
        return self._with(bucket, keys - {key})

    def move(self, key: str, old_due: datetime | None, new_due: datetime | None) -> ExpiryIndex:
        """Re-index `key` after its processor changed its due time from `old_due` to `new_due`."""
        if old_due is not None and new_due is not None:
            if bucket_of(old_due, self.width) == bucket_of(new_due, self.width):
                return self.add(key, new_due)
        return self.remove(key, old_due).add(key, new_due)

    def due(self, now: datetime) -> list[str]:
        """The keys of the due buckets, bucket by bucket, sorted within a bucket."""
        return [
            key
            for bucket in due_buckets(self.buckets, now, self.width)
            for key in sorted(self.buckets[bucket])
        ]

    def pop_due(self, now: datetime) -> tuple[ExpiryIndex, list[str]]:
        """The index without the due buckets, and their keys (see `due`)."""
        buckets = due_buckets(self.buckets, now, self.width)
        if not buckets:
            return self, []
        keys = [key for bucket in buckets for key in sorted(self.buckets[bucket])]
        taken = set(buckets)
        rest = {b: ks for b, ks in self.buckets.items() if b not in taken}
        return ExpiryIndex(self.width, MappingProxyType(rest)), keys

    def _with(self, bucket: int, keys: frozenset[str]) -> ExpiryIndex:
        changed = dict(self.buckets)
        if keys:
            changed[bucket] = keys
        else:
            changed.pop(bucket, None)
        return ExpiryIndex(self.width, MappingProxyType(changed))


class Clock(Protocol):
    """Where `Ctx.now` comes from: the wall clock live, the input watermark in replay."""

    def now(self) -> datetime: ...


def advance_watermark(
    current: datetime | None, event_time: datetime, allowed_lateness: timedelta
) -> datetime:
    """The watermark after seeing `event_time`: max event time seen minus the allowed lateness.

    Monotonic: an older event never moves it back. The lateness is the slack given to events
    that arrive out of order: a story expires in replay once an event later than
    `expires_at + allowed_lateness` was seen, so a view timed before `expires_at` that arrives
    up to `allowed_lateness` behind the newest event is still applied. The watermark depends
    only on the input's order, so a replay of the same input expires stories at the same points.
    """
    candidate = event_time - allowed_lateness
    if current is None or candidate > current:
        return candidate
    return current


@dataclass(frozen=True)
class EventTimeClock:
    """The replay clock as a value: `observe` each input event, read `now()` (the watermark).

    Before any event it reads the epoch, so nothing is due.
    """

    allowed_lateness: timedelta = timedelta(0)
    watermark: datetime | None = None

    def observe(self, event_time: datetime) -> EventTimeClock:
        """The clock after an input event at `event_time`."""
        moved = advance_watermark(self.watermark, event_time, self.allowed_lateness)
        if moved == self.watermark:
            return self
        return EventTimeClock(self.allowed_lateness, moved)

    def now(self) -> datetime:
        """The watermark (the epoch before any event)."""
        return self.watermark if self.watermark is not None else EPOCH


@dataclass(frozen=True)
class FixedClock:
    """A clock that reads one instant (tests, and a replay step driven from outside)."""

    at: datetime

    def now(self) -> datetime:
        """The fixed instant."""
        return self.at


def width_ms(width: timedelta) -> int:
    """`width` in milliseconds, at least one."""
    ms = width // _MILLI
    if ms <= 0:
        raise ValueError("bucket width must be at least one millisecond")
    return ms
