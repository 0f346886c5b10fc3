"""The tray stage's state in the partition store: one small value per user, one key per story
the user has seen.

A user's marks (the stories they viewed, kept a day and more) grow with how much they view:
kept inside the tray's value, a user who viewed a thousand stories made every further view
decode and rewrite ~70 KB of JSON (~7 ms a view). Here a view of a story outside the tray
writes one small key, and the value is rewritten only when the tray itself changes.

    tray<0x01>{user_id}               -> JSON TrayState without marks (each tray story
                                         carries its own seen flag)
    S{user_id}<NUL>{story_id}         -> keep_until, epoch millis (8 bytes, big-endian)
    seendue<0x01>{bucket}<NUL>{user_id}<NUL>{story_id} -> b""
                                         the marks by the time they may go (derived from
                                         the marks: not changelogged, rebuilt on restore)

A batch loads the marks of the stories its messages name and writes back those that changed;
`sweep` deletes marks whose time has passed. Values written before this layout (marks inside
the tray's value) still load: their marks are written as keys at the user's next change.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from processors.trays import SeenStory, TrayState
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


class LoadedTray:
    """A user's tray as a batch found it: the stored value and the marks handed in."""

    def __init__(self, user_id: str, core: TrayState | None, marks: tuple[SeenStory, ...]):
        self.user_id = user_id
        self.core = core  # as stored, marks aside (None: no value)
        self.marks = marks  # as stored (empty for a value in the older layout: all rewritten)
        self.state = _with_marks(core, user_id, marks)

    def upgraded_from(self, stored: TrayState) -> LoadedTray:
        """A value in the older layout: its marks move out to keys, its stories get flags."""
        seen = stored.seen_ids
        stories = tuple(replace(s, seen=s.story_id in seen) for s in stored.stories)
        self.core = None  # the value is rewritten
        self.state = replace(stored, stories=stories)
        return self


def _with_marks(
    core: TrayState | None, user_id: str, marks: tuple[SeenStory, ...]
) -> TrayState | None:
    if not marks:
        return core
    return replace(core or TrayState(user_id), seen=marks)


def _decoded_marks(
    story_ids: Iterable[str], values: Iterable[bytes | None]
) -> tuple[SeenStory, ...]:
    found = [SeenStory(s, _until(v)) for s, v in zip(story_ids, values, strict=True) if v]
    return tuple(sorted(found, key=lambda m: m.story_id))


def load_tray(store: PartitionStore, user_id: str, story_ids: Iterable[str]) -> LoadedTray:
    """The tray of `user_id` with the marks of `story_ids` (the stories a batch names)."""
    stored = TRAYS.get(store, user_id)
    if stored is not None and stored.seen:
        return LoadedTray(user_id, stored, ()).upgraded_from(stored)
    ids = sorted(set(story_ids))
    values = store.get_many([mark_key(user_id, s) for s in ids]) if ids else []
    return LoadedTray(user_id, stored, _decoded_marks(ids, values))


def read_tray_state(get: _GET, user_id: str) -> TrayState | None:
    """The tray of `user_id` for a reader on another thread (`get`: committed reads), without
    marks (but those of a value in the older layout)."""
    data = get(TRAYS.key(user_id))
    stored = None if data is None else TRAYS.decode(data)
    if stored is not None and stored.seen:
        return LoadedTray(user_id, stored, ()).upgraded_from(stored).state
    return stored


def with_read_marks(get: _GET, state: TrayState, story_ids: Iterable[str]) -> TrayState:
    """`state` (from `read_tray_state`) with the marks of `story_ids`."""
    if state.seen:  # the older layout: all of them, already
        return state
    ids = sorted(set(story_ids))
    marks = _decoded_marks(ids, [get(mark_key(state.user_id, s)) for s in ids])
    return replace(state, seen=marks)


def save_tray(store: PartitionStore, loaded: LoadedTray, state: TrayState | None) -> None:
    """Write what changed since `loaded`: the marks, then the value (marks aside). Marks the
    processors let go (their time passed) are left to `sweep`."""
    user_id = loaded.user_id
    before = {m.story_id: m.keep_until for m in loaded.marks}
    after = {m.story_id: m.keep_until for m in state.seen} if state is not None else {}
    for story_id, until in after.items():
        old = before.get(story_id)
        if old != until:
            name, until_ms = _due_name(user_id, story_id), millis(until)
            store.put(mark_key(user_id, story_id), _MILLIS.pack(until_ms))
            if old is not None:
                store.delete(SEEN_DUE.key(old, name))
            store.put(SEEN_DUE.key_at(until_ms, name), b"")
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
        if value is not None and _until(value) <= now:
            store.delete(key)
            gone += 1
        elif value is not None and SEEN_DUE.key(_until(value), name) == entry:
            continue  # due later in this bucket
        store.delete(entry)  # the mark's entry, or one left behind
    return gone


def is_derived(key: bytes) -> bool:
    return key.startswith(SEEN_DUE.prefix)


def rebuild(store: PartitionStore, key: bytes, old: bytes | None, new: bytes | None) -> None:
    """A mark being restored from `old` to `new`: its index entry follows."""
    if key[:1] != MARK_TAG:
        return
    user, _, story = key[1:].partition(_SEP)
    name = _due_name(user.decode(), story.decode())
    for value, put in ((old, False), (new, True)):
        if value is not None:
            due_key = SEEN_DUE.key(_until(value), name)
            if put:
                store.apply_restored(due_key, b"")
            else:
                store.apply_restored(due_key, None)
