"""The viewer list's store layout: sortable keys, each viewer's index entry, cursors and paging."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from processors.views import View, ViewsResult
from schemas.types import IDENTIFIER, from_millis, millis
from streams.stages.state import Codec

# One key space, a tag byte per family. Identifiers are [A-Za-z0-9_-]{1,64}, so a NUL after
# the story id ends it: no story's prefix is a prefix of another's.
ORDER_TAG = b"O"  # O story NUL time viewer -> b"": the list, in first-view order
INDEX_TAG = b"I"  # I story NUL viewer -> ViewerEntry: first view, applied views' ids
EVENT_TAG = b"E"  # E story NUL event_id -> b"": applied views past the entry's ids
_SEP = b"\x00"
# Millis offset by 2**63 and packed big-endian unsigned: byte order is time order, negatives
# (before 1970) included.
_TIME = struct.Struct(">Q")
_BIAS = 1 << 63
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")  # URL-safe base64 of a list key
# A viewer's entry keeps the ids of their applied views up to this many (the smallest); the
# others are keys of their own, so the entry stays small however many times one viewer views
# a story. The keys are looked up only for a viewer whose entry is full. (Lowering it leaves
# such keys unread for entries that were full: do not.)
INLINE_EVENT_IDS = 32


class ViewerEntry(NamedTuple):
    """A viewer's index entry: their first view (epoch millis) and applied views' ids, sorted."""

    first_viewed_at: int
    event_ids: tuple[str, ...]


INDEX: Codec[ViewerEntry] = Codec(ViewerEntry)


class ViewStore(Protocol):
    """What the views path needs of a partition store (PartitionStore is one)."""

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]: ...

    def put_many(self, items: list[tuple[bytes, bytes]]) -> None: ...

    def delete(self, key: bytes) -> None: ...


# -- keys -------------------------------------------------------------------------------------
def encode_time(at: datetime) -> bytes:
    """8 bytes that sort like the time (millisecond precision)."""
    return _TIME.pack(millis(at) + _BIAS)


def encode_millis(ms: int) -> bytes:
    """`encode_time` of a time given in milliseconds since the epoch."""
    return _TIME.pack(ms + _BIAS)


def decode_time(data: bytes) -> datetime:
    """The time `encode_time` wrote."""
    return from_millis(_TIME.unpack(data)[0] - _BIAS)


def _prefix(tag: bytes, story_id: str) -> bytes:
    return tag + story_id.encode() + _SEP


def viewer_order_prefix(story_id: str) -> bytes:
    """The prefix of every viewer-list key of the story."""
    return _prefix(ORDER_TAG, story_id)


def viewer_index_prefix(story_id: str) -> bytes:
    """The prefix of every viewer-index key of the story (scan it to list the viewer ids)."""
    return _prefix(INDEX_TAG, story_id)


def view_event_key(story_id: str, event_id: str) -> bytes:
    """The key marking an applied view whose id is not in its viewer's index entry."""
    return f"E{story_id}\x00{event_id}".encode()  # EVENT_TAG, story, NUL, event


def story_view_prefixes(story_id: str) -> tuple[bytes, bytes, bytes]:
    """Every key prefix the views path writes for a story (delete them all on purge)."""
    return (
        viewer_order_prefix(story_id),
        viewer_index_prefix(story_id),
        _prefix(EVENT_TAG, story_id),
    )


def viewer_order_key(story_id: str, first_viewed_at: datetime, viewer_id: str) -> bytes:
    """The viewer-list key: sorts by (story, first view, viewer)."""
    return viewer_order_prefix(story_id) + encode_time(first_viewed_at) + viewer_id.encode()


def viewer_index_key(story_id: str, viewer_id: str) -> bytes:
    """The key holding a viewer's index entry."""
    return f"I{story_id}\x00{viewer_id}".encode()  # INDEX_TAG, story, NUL, viewer


def order_key_of_index_entry(index_key: bytes, value: bytes) -> bytes:
    """The viewer-list key an index entry implies (so the list can be rebuilt from the index)."""
    story, _, viewer = index_key[len(INDEX_TAG) :].partition(_SEP)
    first = INDEX.decode(value).first_viewed_at
    return ORDER_TAG + story + _SEP + encode_millis(first) + viewer


def viewer_of_index_key(key: bytes) -> str:
    """The viewer id of a viewer-index key."""
    if not key.startswith(INDEX_TAG) or _SEP not in key:
        raise ValueError(f"not a viewer-index key: {key!r}")
    return key.rpartition(_SEP)[2].decode()


def parse_order_key(key: bytes) -> tuple[str, str, datetime]:
    """(story_id, viewer_id, first_viewed_at) of a viewer-list key; ValueError otherwise."""
    story, sep, rest = key[1:].partition(_SEP)
    try:
        story_id, viewer_id = story.decode(), rest[_TIME.size :].decode()
    except UnicodeDecodeError:
        raise ValueError("not a viewer-list key") from None
    if (
        not key.startswith(ORDER_TAG)
        or not sep
        or IDENTIFIER.fullmatch(story_id) is None
        or IDENTIFIER.fullmatch(viewer_id) is None
    ):
        raise ValueError("not a viewer-list key")
    return story_id, viewer_id, decode_time(rest[: _TIME.size])


# -- the views path's reads and writes ------------------------------------------------------
class ViewerLookup(NamedTuple):
    """What the store holds of a batch's viewers: `known` (viewer -> first view, millis),
    `seen` (the batch's event ids already applied) and `entries` (viewer -> their entry's ids)."""

    known: dict[str, int]
    seen: set[str]
    entries: dict[str, tuple[str, ...]]


def lookup_viewers(
    store: ViewStore,
    story_id: str,
    author_id: str,
    views: Sequence[View],
    inline: int = INLINE_EVENT_IDS,
) -> ViewerLookup:
    """Read the index entries of a batch's viewers (the author's own views aside), then, for
    views not found applied whose viewer's entry is full, their applied-view keys."""
    prefix = viewer_index_prefix(story_id)  # a viewer's key is the prefix and their id
    keys: dict[bytes, str] = {}
    for view in views:
        viewer_id = view.viewer_id
        if viewer_id != author_id:
            keys[prefix + viewer_id.encode()] = viewer_id
    known: dict[str, int] = {}
    entries: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()
    decode = INDEX.decode
    for viewer_id, value in zip(keys.values(), store.get_many(keys), strict=True):
        if value is not None:
            known[viewer_id], ids = decode(value)
            entries[viewer_id] = ids
            seen.update(ids)
    if any(len(ids) >= inline for ids in entries.values()):  # rare: a viewer's entry is full
        more: dict[bytes, str] = {}
        for view in views:
            entry = entries.get(view.viewer_id)
            if entry is not None and len(entry) >= inline and view.event_id not in seen:
                more[view_event_key(story_id, view.event_id)] = view.event_id
        found = zip(more.values(), store.get_many(more), strict=True)
        seen.update(event_id for event_id, value in found if value is not None)
    return ViewerLookup(known, seen, entries)


def write_views(
    store: ViewStore,
    story_id: str,
    result: ViewsResult,
    lookup: ViewerLookup,
    inline: int = INLINE_EVENT_IDS,
) -> None:
    """Write what a batch of views decided: list keys of new and moved viewers, and the index
    entry of each viewer with applied views (their ids sorted, so the same views give the same
    bytes in any delivery order; past `inline` of them, the others get keys of their own)."""
    order_prefix, index_prefix = viewer_order_prefix(story_id), viewer_index_prefix(story_id)
    first_views, pack = result.first_views, _TIME.pack
    puts = [
        (order_prefix + pack(at + _BIAS) + viewer_id.encode(), b"")
        for viewer_id, at in first_views.items()
    ]
    for viewer_id, at in result.moved_from.items():
        store.delete(order_prefix + encode_millis(at) + viewer_id.encode())
    # an entry is a ViewerEntry's fields; at most `inline` ids: small, never compressed
    entries, known, encode = lookup.entries, lookup.known, INDEX.encode_small
    for viewer_id, applied in result.applied.items():
        stored = entries.get(viewer_id)
        event_ids = [*stored, *applied] if stored else applied
        if len(event_ids) > 1:
            event_ids = sorted(event_ids)
        if len(event_ids) > inline:  # the entry keeps the smallest
            puts += [(view_event_key(story_id, event_id), b"") for event_id in event_ids[inline:]]
            event_ids = event_ids[:inline]
        first = first_views.get(viewer_id)
        value = encode((known[viewer_id] if first is None else first, event_ids))
        puts.append((index_prefix + viewer_id.encode(), value))
    store.put_many(puts)


# -- paging -----------------------------------------------------------------------------------
def encode_cursor(last_order_key: bytes) -> str:
    """An opaque, URL-safe cursor pointing after this viewer-list key."""
    return base64.urlsafe_b64encode(last_order_key).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> bytes:
    """The viewer-list key a cursor points after; ValueError("invalid cursor") on garbage."""
    if _CURSOR.fullmatch(cursor) is None:
        raise ValueError("invalid cursor")
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parse_order_key(key)
    except (binascii.Error, ValueError) as error:
        raise ValueError("invalid cursor") from error
    return key


def page_bounds(story_id: str, cursor: str | None) -> tuple[bytes, bytes]:
    """(start key, inclusive; prefix) of a viewer-list page: seek to start, stop off prefix.

    Raises ValueError for a garbage cursor or one from another story's list.
    """
    prefix = viewer_order_prefix(story_id)
    if cursor is None or cursor == "":
        return prefix, prefix
    last = decode_cursor(cursor)
    if not last.startswith(prefix):
        raise ValueError("invalid cursor: it belongs to another story")
    # No key byte is NUL after the prefix's own, so last + NUL is the least key after last.
    return last + _SEP, prefix


@dataclass(frozen=True, slots=True)
class ViewerPage:
    """One page of the viewer list, oldest first, and the cursor of the next (or None)."""

    viewers: tuple[tuple[str, datetime], ...]
    next_cursor: str | None


def read_page(keys: Iterable[bytes], prefix: bytes, limit: int) -> ViewerPage:
    """A page from keys iterated in order from the page's start (reads at most limit + 1)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    viewers: list[tuple[str, datetime]] = []
    last = b""
    for key in keys:
        if not key.startswith(prefix):
            break
        if len(viewers) == limit:
            return ViewerPage(tuple(viewers), encode_cursor(last))
        _, viewer_id, at = parse_order_key(key)
        viewers.append((viewer_id, at))
        last = key
    return ViewerPage(tuple(viewers), None)
