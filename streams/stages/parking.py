"""Events held for a story not known yet, in bounded chunks of the partition store.

One value holding every held event of a story grew with them (10,000 views pickle to ~0.9 MB,
reactions with replies to several MB: more than a changelog record takes by default), and
each batch rewrote it whole. Here a story's events go to chunks of at most CHUNK_EVENTS, a
batch writes only the last chunk and the new ones, and a small value counts them:

    parked<0x01>{story_id}                 -> pickled (deadline, events held, chunks)
    parked<0x01>{story_id}<NUL>{n:06d}     -> pickled list of events (chunk n)

A story's value of the older layout, (deadline, events) in the one key, still loads.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from streams.runtime.store import PartitionStore

PARKED = b"parked\x01"
CHUNK_EVENTS = 500  # a chunk stays far below a record's 1 MB: an event pickles to ~100 B-3 KB


def _key(story_id: str) -> bytes:
    return PARKED + story_id.encode()


def _chunk_key(story_id: str, n: int) -> bytes:
    return PARKED + story_id.encode() + b"\x00" + b"%06d" % n


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _chunk(store: PartitionStore, story_id: str, n: int) -> list[Any]:
    raw = store.get(_chunk_key(story_id, n))
    return [] if raw is None else pickle.loads(raw)  # noqa: S301 - our own state


def held(store: PartitionStore, story_id: str) -> tuple[datetime, int, int] | None:
    """(deadline, events held, chunks) of a story's held events, or None."""
    raw = store.get(_key(story_id))
    if raw is None:
        return None
    value = pickle.loads(raw)  # noqa: S301 - our own state
    if len(value) == 2:  # the older layout: the events in this one value; chunked now
        deadline, events = value
        chunks = _append(store, story_id, 0, events)
        store.put(_key(story_id), _dumps((deadline, len(events), chunks)))
        return deadline, len(events), chunks
    deadline, count, chunks = value
    return deadline, count, chunks


def _append(store: PartitionStore, story_id: str, chunks: int, events: Sequence[Any]) -> int:
    """Add `events` after the story's `chunks` chunks (the last one filled first); returns
    the number of chunks."""
    rest = list(events)
    if chunks and rest:
        last = _chunk(store, story_id, chunks - 1)
        room = CHUNK_EVENTS - len(last)
        if room > 0:
            store.put(_chunk_key(story_id, chunks - 1), _dumps(last + rest[:room]))
            rest = rest[room:]
    while rest:
        store.put(_chunk_key(story_id, chunks), _dumps(rest[:CHUNK_EVENTS]))
        rest = rest[CHUNK_EVENTS:]
        chunks += 1
    return chunks


def hold(
    store: PartitionStore, story_id: str, events: Sequence[Any], deadline: datetime, limit: int
) -> tuple[datetime | None, int]:
    """Hold `events` for the story, at most `limit` in all, until `deadline` if it is not held
    yet. Returns that deadline if the story was not held yet (None otherwise), and how many
    events did not fit."""
    current = held(store, story_id)
    kept_until, count, chunks = current if current is not None else (deadline, 0, 0)
    taken = list(events[: max(limit - count, 0)])
    if taken or current is None:
        chunks = _append(store, story_id, chunks, taken)
        store.put(_key(story_id), _dumps((kept_until, count + len(taken), chunks)))
    return (deadline if current is None else None), len(events) - len(taken)


def release(store: PartitionStore, story_id: str) -> tuple[datetime, list[Any]] | None:
    """The story's held events, in the order they were held, and its deadline; they are no
    longer held."""
    current = held(store, story_id)
    if current is None:
        return None
    deadline, _, chunks = current
    events: list[Any] = []
    for n in range(chunks):
        events += _chunk(store, story_id, n)
    drop(store, story_id, chunks)
    return deadline, events


def drop(store: PartitionStore, story_id: str, chunks: int) -> None:
    """Forget the story's held events (`chunks` as `held` gave it) without reading them."""
    for n in range(chunks):
        store.delete(_chunk_key(story_id, n))
    store.delete(_key(story_id))
