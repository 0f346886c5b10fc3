"""Events held for a story not known yet, in bounded chunks of the partition store.

One value holding them all would grow past a changelog record's limit and be rewritten by
every batch: a batch writes only the last chunk and the new ones, and a small value counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar

from streams.runtime.context import StageContext
from streams.runtime.store import PartitionStore
from streams.stages.due import DueIndex
from streams.stages.state import Codec, Store, Table

T = TypeVar("T")
CHUNK_EVENTS = 500  # a chunk stays far below a changelog record's limit


class Held(NamedTuple):
    """A story's held events: until when, how many, in how many chunks."""

    deadline: datetime
    events: int
    chunks: int


class Parking(Generic[T]):
    """Held events of type `kind` by story, under the key prefix `name`:

    {name}<0x01>{story_id}                 -> Held
    {name}<0x01>{story_id}<NUL>{n:06d}     -> chunk n: a list of at most CHUNK_EVENTS
    """

    def __init__(self, name: str, kind: Any) -> None:
        self._held: Table[Held] = Table(name, Held)
        self._chunk: Codec[list[T]] = Codec(list[kind], f"chunks of {name}")
        self.prefix = self._held.prefix

    def _chunk_key(self, story_id: str, n: int) -> bytes:
        return self._held.key(story_id) + b"\x00" + b"%06d" % n

    def _read_chunk(self, store: Store, story_id: str, n: int) -> list[T]:
        raw = store.get(self._chunk_key(story_id, n))
        return [] if raw is None else self._chunk.decode(raw)

    def held(self, store: Store, story_id: str) -> Held | None:
        """What is held for the story, or None."""
        return self._held.get(store, story_id)

    def _append(self, store: Store, story_id: str, chunks: int, events: Sequence[T]) -> int:
        """Add `events` after the story's `chunks` chunks (the last one filled first); returns
        the number of chunks."""
        rest = list(events)
        if chunks and rest:
            last = self._read_chunk(store, story_id, chunks - 1)
            room = CHUNK_EVENTS - len(last)
            if room > 0:
                store.put(
                    self._chunk_key(story_id, chunks - 1), self._chunk.encode(last + rest[:room])
                )
                rest = rest[room:]
        while rest:
            store.put(self._chunk_key(story_id, chunks), self._chunk.encode(rest[:CHUNK_EVENTS]))
            rest = rest[CHUNK_EVENTS:]
            chunks += 1
        return chunks

    def hold(
        self, store: Store, story_id: str, events: Sequence[T], deadline: datetime, limit: int
    ) -> tuple[datetime | None, int]:
        """Hold `events` for the story, at most `limit` in all, until `deadline` if it is not
        held yet. Returns that deadline if the story was not held yet (None otherwise), and how
        many events did not fit."""
        current = self.held(store, story_id)
        kept_until, count, chunks = current if current is not None else (deadline, 0, 0)
        taken = list(events[: max(limit - count, 0)])
        if taken or current is None:
            chunks = self._append(store, story_id, chunks, taken)
            self._held.put(store, story_id, Held(kept_until, count + len(taken), chunks))
        return (deadline if current is None else None), len(events) - len(taken)

    def release(self, store: Store, story_id: str) -> tuple[datetime, list[T]] | None:
        """The story's held events, in the order they were held, and its deadline; they are no
        longer held."""
        current = self.held(store, story_id)
        if current is None:
            return None
        events: list[T] = []
        for n in range(current.chunks):
            events += self._read_chunk(store, story_id, n)
        self.drop(store, story_id, current.chunks)
        return current.deadline, events

    def drop(self, store: Store, story_id: str, chunks: int) -> None:
        """Forget the story's held events (`chunks` as `held` gave it) without reading them."""
        for n in range(chunks):
            store.delete(self._chunk_key(story_id, n))
        self._held.delete(store, story_id)


class ParkingLot(Generic[T]):
    """A stage's events held for stories not known yet: `Parking` with a deadline per story
    (a due index), released when the story arrives, dropped and counted once it passes."""

    def __init__(
        self, name: str, kind: Any, due: str, window: timedelta, limit: int, rejected: str
    ) -> None:
        self.parking: Parking[T] = Parking(name, kind)
        self._due = DueIndex(due)
        self._window = window
        self._limit = limit
        self._rejected = rejected  # the metric's label for events dropped

    def park(self, pctx: StageContext, story_id: str, events: Sequence[T]) -> None:
        """Hold `events` until the story arrives, or for the lot's window at most."""
        store = pctx.store
        new_deadline, overflow = self.parking.hold(
            store, story_id, events, pctx.now + self._window, self._limit
        )
        if overflow:
            pctx.metrics.rejected.inc(f"{self._rejected}-overflow", overflow)
        if new_deadline is not None:
            self._due.move(store, story_id, None, new_deadline)

    def first_due(self, store: PartitionStore) -> int | None:
        """When the earliest held story's deadline may be (see `DueIndex.first_due`)."""
        return self._due.first_due(store)

    def unpark(self, pctx: StageContext, story_id: str) -> list[T]:
        """The story's held events, in the order held (none held: empty); no longer held."""
        released = self.parking.release(pctx.store, story_id)
        if released is None:
            return []
        deadline, events = released
        self._due.move(pctx.store, story_id, deadline, None)
        return events

    def drop_expired(self, pctx: StageContext) -> None:
        """Drop what was held past its deadline (then it was for an unknown story)."""
        store = pctx.store
        for story_id in self._due.due(store, pctx.now):
            current = self.parking.held(store, story_id)
            if current is None:
                continue
            deadline, count, chunks = current
            if deadline > pctx.now:
                continue
            self.parking.drop(store, story_id, chunks)
            self._due.move(store, story_id, deadline, None)
            pctx.metrics.rejected.inc(self._rejected, count)
