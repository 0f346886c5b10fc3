"""The tray stage's state in the partition store: one small value per user, one key per story
the user has seen.

A user's marks grow with how much they view: kept in the tray's value, every view would
rewrite them all. As keys, a view of a story outside the tray writes one small key, told apart
from the value's expiry and ids alone (`marks_only`) without decoding the tray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple

from processors.trays import SeenStory, TrayState
from schemas.types import from_millis, millis
from streams.runtime.store import PartitionStore
from streams.stages.due import DueIndex
from streams.stages.state import Codec, Table


class TrayValue(NamedTuple):
    """A stored tray: its stories' earliest expiry (epoch millis; None without stories) and
    their ids, then the TrayState (marks aside), encoded apart so it is decoded only when
    needed."""

    earliest: int | None
    story_ids: tuple[str, ...]
    state: bytes


# tray<0x01>{user_id}              -> TrayValue (the TrayState without marks: each tray story
#                                     carries its own seen flag; the published tray a digest)
# S{user_id}<NUL>{story_id}        -> a mark: keep_until, epoch millis
# seendue<0x01>{bucket}<NUL>{user_id}<NUL>{story_id} -> b"": the marks by when they may go
#                                     (derived from the marks: not changelogged, rebuilt on restore)
TRAYS: Table[TrayValue] = Table("tray", TrayValue)
TRAY_STATE: Codec[TrayState] = Codec(TrayState)
MARKS: Codec[int] = Codec(int, "tray marks")
MARK_TAG = b"S"
SEEN_DUE = DueIndex("seendue", width=timedelta(minutes=1))
SWEEP_LIMIT = 10_000  # marks deleted per tick at most: a burst of expiries is spread out
_SEP = b"\x00"
_GET = Callable[[bytes], bytes | None]


def mark_key(user_id: str, story_id: str) -> bytes:
    return MARK_TAG + user_id.encode() + _SEP + story_id.encode()


def _until(value: bytes) -> datetime:
    return from_millis(MARKS.decode(value))


def _due_name(user_id: str, story_id: str) -> str:
    return f"{user_id}\0{story_id}"


class LoadedTray(NamedTuple):
    """A user's tray as a batch found it: the stored state (marks aside; None for no value),
    the marks read, and the state to apply messages to."""

    core: TrayState | None
    marks: tuple[SeenStory, ...]
    state: TrayState | None


def _encode(core: TrayState) -> TrayValue:
    soonest = min((s.expires_at for s in core.stories), default=None)
    earliest = None if soonest is None else millis(soonest)
    ids = tuple(s.story_id for s in core.stories)
    return TrayValue(earliest, ids, TRAY_STATE.encode(core))


def marks_only(value: TrayValue | None, story_ids: Iterable[str], now: datetime) -> bool:
    """Whether views of `story_ids` by the owner of the tray `value` (None: no tray) change
    nothing but the stories' marks: none of them is in the tray, and no story in it has
    expired by `now` (else the tray changes too)."""
    if value is None:
        return True
    if _has_expired(value, now):
        return False
    ids = value.story_ids
    return not any(story_id in ids for story_id in story_ids)


def marks_to_read(
    value: TrayValue | None, named: list[str], views_only: bool, now: datetime
) -> list[str]:
    """The stories whose marks a user's messages need read, of those they name: all, but
    those in the tray (`value`) when the messages are views only (`views_only`) and no story
    in the tray has expired by `now` (such a story's flag is all a view changes)."""
    if not views_only or value is None or not value.story_ids or _has_expired(value, now):
        return named
    ids = value.story_ids
    return [story_id for story_id in named if story_id not in ids]


def _has_expired(value: TrayValue, now: datetime) -> bool:
    """Whether a story of the tray `value` has expired by `now`."""
    return value.earliest is not None and value.earliest <= millis(now)


def _with_marks(
    core: TrayState | None, user_id: str, marks: tuple[SeenStory, ...]
) -> TrayState | None:
    if not marks:
        return core
    return replace(core or TrayState(user_id), seen=marks)


def _read_marks(
    get_many: Callable[[list[bytes]], list[bytes | None]], user_id: str, story_ids: Iterable[str]
) -> tuple[SeenStory, ...]:
    """The marks of `user_id` for `story_ids`, in story_id order."""
    return tuple(
        SeenStory(s, t) for s, t in sorted(read_marks(get_many, user_id, story_ids).items())
    )


def read_marks(
    get_many: Callable[[list[bytes]], list[bytes | None]], user_id: str, story_ids: Iterable[str]
) -> dict[str, datetime]:
    """The stored marks of `user_id` for `story_ids`, by story_id (whether in force or not)."""
    ids = list(dict.fromkeys(story_ids))
    values = get_many([mark_key(user_id, s) for s in ids]) if ids else []
    return {s: _until(v) for s, v in zip(ids, values, strict=True) if v}


def load_tray(
    store: PartitionStore, user_id: str, story_ids: Iterable[str], value: TrayValue | None
) -> LoadedTray:
    """The tray of `user_id`, its stored `value`, with the marks of `story_ids` (the stories a
    batch names)."""
    stored = TRAY_STATE.decode(value.state) if value is not None else None
    marks = _read_marks(store.get_many, user_id, story_ids)
    return LoadedTray(stored, marks, _with_marks(stored, user_id, marks))


def tray_value(store: PartitionStore, user_id: str) -> TrayValue | None:
    """The stored tray of `user_id` (for `marks_only` and `load_tray`)."""
    return TRAYS.get(store, user_id)


def read_tray_state(get: _GET, user_id: str) -> TrayState | None:
    """The tray of `user_id` for a reader on another thread (`get`: committed reads), without
    marks."""
    value = TRAYS.read(get, user_id)
    return TRAY_STATE.decode(value.state) if value is not None else None


def with_read_marks(get: _GET, state: TrayState, story_ids: Iterable[str]) -> TrayState:
    """`state` (from `read_tray_state`) with the marks of `story_ids`."""
    marks = _read_marks(lambda keys: [get(key) for key in keys], state.user_id, story_ids)
    return replace(state, seen=marks)


def save_tray(
    store: PartitionStore, user_id: str, loaded: LoadedTray, state: TrayState | None
) -> None:
    """Write what changed since `loaded`: the marks, then the value (marks aside). Marks the
    processors let go (their time passed) are left to `sweep`."""
    before = {m.story_id: m.keep_until for m in loaded.marks}
    after = {m.story_id: m.keep_until for m in state.seen} if state is not None else {}
    save_marks(store, user_id, before, after)
    core = None
    if state is not None and (state.stories or state.celebrities or state.published):
        core = replace(state, seen=()) if state.seen else state
    if core != loaded.core:
        if core is None:
            TRAYS.delete(store, user_id)
        else:
            TRAYS.put(store, user_id, _encode(core))


def save_marks(
    store: PartitionStore,
    user_id: str,
    before: Mapping[str, datetime],
    after: Mapping[str, datetime],
) -> None:
    """Write the marks of `after` that differ from `before` (by story_id), and their index
    entries. Marks of `before` missing from `after` (their time passed) are left to `sweep`."""
    for story_id, until in after.items():
        old = before.get(story_id)
        if old != until:
            until_ms = millis(until)
            store.put(mark_key(user_id, story_id), MARKS.encode_small(until_ms))
            old_ms = None if old is None else millis(old)
            SEEN_DUE.move_at(store, _due_name(user_id, story_id), old_ms, until_ms)


def sweep(store: PartitionStore, now: datetime) -> int:
    """Delete the marks whose time has passed (at most SWEEP_LIMIT); how many went.

    Reads only committed index entries: the batch's own are never due yet (the processors
    drop a mark whose time has passed before it is written), and sorting them at every tick
    would cost more than the sweep."""
    gone = 0
    for entry, name in SEEN_DUE.due_entries(store, now, limit=SWEEP_LIMIT, committed=True):
        user_id, _, story_id = name.partition("\0")
        key = mark_key(user_id, story_id)
        value = store.get(key)
        until = _until(value) if value is not None else None
        if until is not None and until <= now:
            store.delete(key)
            gone += 1
        elif until is not None and SEEN_DUE.key(until, name) == entry:
            continue  # due later in this bucket
        store.delete(entry)  # the mark's entry, or one left behind
    return gone


class MarkIndexKeys:
    """The marks' due index is derived from the marks: not changelogged, rebuilt on restore."""

    prefixes: tuple[bytes, ...] = (SEEN_DUE.prefix,)

    @staticmethod
    def rebuild(store: PartitionStore, key: bytes, old: bytes | None, new: bytes | None) -> None:
        """A mark being restored from `old` to `new`: its index entry follows."""
        if key[:1] != MARK_TAG:
            return
        user, _, story = key[1:].partition(_SEP)
        name = _due_name(user.decode(), story.decode())
        if old is not None:
            store.apply_restored(SEEN_DUE.key(_until(old), name), None)
        if new is not None:
            store.apply_restored(SEEN_DUE.key(_until(new), name), b"")
