"""The tray stage's state in the partition store: one small value per user, one key per story
the user has seen.

A user's marks (the stories they viewed, kept a day and more) grow with how much they view:
kept inside the tray's value, a user who viewed a thousand stories made every further view
decode and rewrite ~70 KB of JSON (~7 ms a view). Here a view of a story outside the tray
writes one small key, and the value is rewritten only when the tray itself changes.

    tray<0x01>{user_id}               -> JSON TrayState without marks (each tray story
                                         carries its own seen flag; the published tray
                                         as a digest)
    S{user_id}<NUL>{story_id}         -> keep_until, epoch millis (8 bytes, big-endian)
    seendue<0x01>{bucket}<NUL>{user_id}<NUL>{story_id} -> b""
                                         the marks by the time they may go (derived from
                                         the marks: not changelogged, rebuilt on restore)

A batch loads the marks of the stories its messages name and writes back those that changed;
`sweep` deletes marks whose time has passed. Values written before this layout (marks inside
the tray's value, the published tray whole) still load: they are rewritten, their marks as
keys, at the user's next change.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from pydantic import ValidationError

from processors.trays import SeenStory, TrayState, TrayStory, tray_digest
from schemas.records import Tray
from schemas.types import from_millis, millis
from streams.handlers.common import Table
from streams.handlers.due import DueIndex
from streams.store import PartitionStore

TRAYS: Table[TrayState] = Table("tray", TrayState)
MARK_TAG = b"S"
SEEN_DUE = DueIndex("seendue", width=timedelta(minutes=1))
SWEEP_LIMIT = 10_000  # marks deleted per tick at most: a burst of expiries is spread out
_SEP = b"\x00"
_MILLIS = struct.Struct(">q")
_GET = Callable[[bytes], bytes | None]


def mark_key(user_id: str, story_id: str) -> bytes:
    return MARK_TAG + user_id.encode() + _SEP + story_id.encode()


def _until(value: bytes) -> datetime:
    return from_millis(_MILLIS.unpack(value)[0])


def _due_name(user_id: str, story_id: str) -> str:
    return f"{user_id}\0{story_id}"


class LoadedTray(NamedTuple):
    """A user's tray as a batch found it: the stored value (marks aside: None for no value,
    or one to rewrite), the marks read, and the state to apply messages to."""

    core: TrayState | None
    marks: tuple[SeenStory, ...]
    state: TrayState | None


@dataclass(frozen=True, slots=True)
class _OlderTrayState:
    """A value written before the layout of this module: marks inside, the published tray
    whole (TrayState keeps its digest)."""

    user_id: str
    stories: tuple[TrayStory, ...] = ()
    seen: tuple[SeenStory, ...] = ()
    celebrities: frozenset[str] = frozenset()
    published: Tray | None = None


_OLDER: Table[_OlderTrayState] = Table("tray", _OlderTrayState)


def _decode(data: bytes) -> tuple[TrayState, bool]:
    """A stored value, and whether it is of the older layout (then it carries all its marks,
    and its stories get their flags from them)."""
    try:
        state = TRAYS.decode(data)
    except ValidationError:
        older = _OLDER.decode(data)
        published = tray_digest(older.published) if older.published is not None else None
        state = TrayState(older.user_id, older.stories, older.seen, older.celebrities, published)
        return _flagged(state), True
    if state.seen:
        return _flagged(state), True
    return state, False


def _flagged(state: TrayState) -> TrayState:
    seen = state.seen_ids
    return replace(state, stories=tuple(replace(s, seen=s.story_id in seen) for s in state.stories))


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
    ids = sorted(set(story_ids))
    values = get_many([mark_key(user_id, s) for s in ids]) if ids else []
    return tuple(SeenStory(s, _until(v)) for s, v in zip(ids, values, strict=True) if v)


def load_tray(store: PartitionStore, user_id: str, story_ids: Iterable[str]) -> LoadedTray:
    """The tray of `user_id` with the marks of `story_ids` (the stories a batch names)."""
    data = store.get(TRAYS.key(user_id))
    stored, older = _decode(data) if data is not None else (None, False)
    if older:  # rewritten, its marks as keys, at the end of the batch
        return LoadedTray(None, (), stored)
    marks = _read_marks(store.get_many, user_id, story_ids)
    return LoadedTray(stored, marks, _with_marks(stored, user_id, marks))


def read_tray_state(get: _GET, user_id: str) -> TrayState | None:
    """The tray of `user_id` for a reader on another thread (`get`: committed reads), without
    marks (but those of a value in the older layout)."""
    data = get(TRAYS.key(user_id))
    return _decode(data)[0] if data is not None else None


def with_read_marks(get: _GET, state: TrayState, story_ids: Iterable[str]) -> TrayState:
    """`state` (from `read_tray_state`) with the marks of `story_ids`."""
    if state.seen:  # the older layout: all of them, already
        return state
    marks = _read_marks(lambda keys: [get(key) for key in keys], state.user_id, story_ids)
    return replace(state, seen=marks)


def save_tray(
    store: PartitionStore, user_id: str, loaded: LoadedTray, state: TrayState | None
) -> None:
    """Write what changed since `loaded`: the marks, then the value (marks aside). Marks the
    processors let go (their time passed) are left to `sweep`."""
    before = {m.story_id: m.keep_until for m in loaded.marks}
    after = {m.story_id: m.keep_until for m in state.seen} if state is not None else {}
    for story_id, until in after.items():
        old = before.get(story_id)
        if old != until:
            store.put(mark_key(user_id, story_id), _MILLIS.pack(millis(until)))
            SEEN_DUE.move(store, _due_name(user_id, story_id), old, until)
    core = None
    if state is not None and (state.stories or state.celebrities or state.published):
        core = replace(state, seen=()) if state.seen else state
    if core != loaded.core:
        TRAYS.set(store, user_id, core)


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


DERIVED_PREFIXES = (SEEN_DUE.prefix,)  # the marks' index: rebuilt from the marks on restore


def is_derived(key: bytes) -> bool:
    return key.startswith(DERIVED_PREFIXES)


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
