"""The tray stage's state in the partition store: one small value per user, one key per story
the user has seen.

A user's marks (the stories they viewed, kept a day and more) grow with how much they view:
kept inside the tray's value, a user who viewed a thousand stories made every further view
decode and rewrite ~70 KB of JSON (~7 ms a view). Here a view of a story outside the tray
writes one small key, and the value is rewritten only when the tray itself changes.

    tray<0x01>{user_id}               -> a header, then the JSON TrayState without marks
                                         (each tray story carries its own seen flag; the
                                         published tray as a digest)
    S{user_id}<NUL>{story_id}         -> keep_until, epoch millis (8 bytes, big-endian)
    seendue<0x01>{bucket}<NUL>{user_id}<NUL>{story_id} -> b""
                                         the marks by the time they may go (derived from
                                         the marks: not changelogged, rebuilt on restore)

A batch loads the marks of the stories its messages name and writes back those that changed;
`sweep` deletes marks whose time has passed.

A tray value's header is 0x02, the earliest `expires_at` of its stories (epoch millis; empty
without stories), "/", " {story_id}" for each of its stories, " " and NUL. From it alone a
user's views of stories outside their tray are told apart (`marks_only`), and need not decode
the tray (~60 us for twenty stories): those, the most common views, only mark their stories.

Values written before this layout still load: those with marks inside the value (the published
tray whole) and those without a header. Either is rewritten at the user's next message.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from pydantic import ValidationError

from processors.trays import SeenStory, TrayState, TrayStory, tray_digest
from schemas.records import Tray
from schemas.types import from_millis, millis
from streams.runtime.store import PartitionStore
from streams.stages.common import Table
from streams.stages.due import DueIndex

TRAYS: Table[TrayState] = Table("tray", TrayState)
MARK_TAG = b"S"
SEEN_DUE = DueIndex("seendue", width=timedelta(minutes=1))
SWEEP_LIMIT = 10_000  # marks deleted per tick at most: a burst of expiries is spread out
_SEP = b"\x00"
_MILLIS = struct.Struct(">q")
_HEADED = b"\x02"  # neither JSON nor a compressed value starts with it
_GET = Callable[[bytes], bytes | None]


def mark_key(user_id: str, story_id: str) -> bytes:
    return MARK_TAG + user_id.encode() + _SEP + story_id.encode()


def _until(value: bytes) -> datetime:
    return from_millis(_MILLIS.unpack(value)[0])


def _due_name(user_id: str, story_id: str) -> str:
    return f"{user_id}\0{story_id}"


class LoadedTray(NamedTuple):
    """A user's tray as a batch found it: the stored value (marks aside; None for no value),
    the marks read, the state to apply messages to, and whether the value is in the current
    layout (if not, it is rewritten)."""

    core: TrayState | None
    marks: tuple[SeenStory, ...]
    state: TrayState | None
    current: bool = True


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


def _encode(core: TrayState) -> bytes:
    earliest = min((s.expires_at for s in core.stories), default=None)
    ids = "".join(f" {s.story_id}" for s in core.stories)
    header = f"{'' if earliest is None else millis(earliest)}/{ids} "
    return _HEADED + header.encode() + _SEP + TRAYS.encode(core)


def _header_end(data: bytes) -> int:
    """Where the header of a value in the current layout ends (its NUL)."""
    return data.index(_SEP)


def marks_only(data: bytes | None, story_ids: Iterable[str], now: datetime) -> bool:
    """Whether views of `story_ids` by the owner of the tray value `data` (None: no tray)
    change nothing but the stories' marks: none of them is in the tray, and no story in it
    has expired by `now` (else the tray changes too). False when the value cannot tell
    (written before its header)."""
    if data is None:
        return True
    if data[:1] != _HEADED:
        return False
    header = data[1 : _header_end(data)]
    earliest, _, ids = header.partition(b"/")
    if earliest and int(earliest) <= millis(now):
        return False
    return not any(b" " + story_id.encode() + b" " in ids for story_id in story_ids)


def _decode(data: bytes) -> tuple[TrayState, bool]:
    """A stored value, and whether it is of the older layout (then it carries all its marks,
    and its stories get their flags from them)."""
    if data[:1] == _HEADED:
        return TRAYS.decode(data[_header_end(data) + 1 :]), False
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
    store: PartitionStore, user_id: str, story_ids: Iterable[str], data: bytes | None
) -> LoadedTray:
    """The tray of `user_id`, its stored value `data`, with the marks of `story_ids` (the
    stories a batch names)."""
    stored, older = _decode(data) if data is not None else (None, False)
    if older:  # rewritten, its marks as keys, at the end of the batch
        return LoadedTray(None, (), stored, current=False)
    marks = _read_marks(store.get_many, user_id, story_ids)
    current = data is None or data[:1] == _HEADED
    return LoadedTray(stored, marks, _with_marks(stored, user_id, marks), current)


def tray_value(store: PartitionStore, user_id: str) -> bytes | None:
    """The stored tray value of `user_id` (for `marks_only` and `load_tray`)."""
    return store.get(TRAYS.key(user_id))


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
    save_marks(store, user_id, before, after)
    core = None
    if state is not None and (state.stories or state.celebrities or state.published):
        core = replace(state, seen=()) if state.seen else state
    if core != loaded.core or not loaded.current:
        key = TRAYS.key(user_id)
        if core is None:
            store.delete(key)
        else:
            store.put(key, _encode(core))


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
            store.put(mark_key(user_id, story_id), _MILLIS.pack(until_ms))
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
