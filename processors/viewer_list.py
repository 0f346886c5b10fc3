"""The viewer list's store layout: sortable keys, opaque cursors and O(page) paging."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from schemas.types import from_millis, millis

# One key space, a tag byte per family. Identifiers are [A-Za-z0-9_-]{1,64}, so a NUL after the
# story id ends it: no story's prefix is a prefix of another's.
ORDER_TAG = b"O"  # O story NUL time viewer -> b""         (the list, in first-view order)
INDEX_TAG = b"I"  # I story NUL viewer      -> time, events (first view; the viewer's applied views)
EVENT_TAG = b"E"  # E story NUL event_id    -> b""         (applied views past the index entry's)
_SEP = b"\x00"
# Millis offset by 2**63 and packed big-endian unsigned: byte order is time order, negatives
# (before 1970) included.
_TIME = struct.Struct(">Q")
_BIAS = 1 << 63
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")
_IDENTIFIER = re.compile(rb"[A-Za-z0-9_-]{1,64}")


def encode_time(at: datetime) -> bytes:
    """8 bytes that sort like the time (millisecond precision)."""
    return _TIME.pack(millis(at) + _BIAS)


def encode_millis(ms: int) -> bytes:
    """`encode_time` of a time given in milliseconds since the epoch."""
    return _TIME.pack(ms + _BIAS)


def decode_time(data: bytes) -> datetime:
    """The time `encode_time` wrote."""
    return from_millis(_TIME.unpack(data)[0] - _BIAS)


_SMALL_LENGTHS = [bytes((n,)) for n in range(65)]  # an event id's length byte


def encode_index_value(first_viewed_at: datetime, event_ids: Iterable[str]) -> bytes:
    """A viewer-index value: the first view's time, then the ids of the viewer's applied views
    (each one length byte and the id; ids are 1-64 ASCII characters)."""
    return index_value_of(encode_time(first_viewed_at), event_ids)


def index_value_of(time: bytes, event_ids: Iterable[str]) -> bytes:
    """`encode_index_value` with the time already encoded (`encode_time`)."""
    if isinstance(event_ids, list) and len(event_ids) == 1:  # a new viewer's: one view
        only: str = event_ids[0]
        data = only.encode()
        return time + _SMALL_LENGTHS[len(data)] + data
    parts = [time]
    for event_id in event_ids:
        data = event_id.encode()
        parts.append(_SMALL_LENGTHS[len(data)])
        parts.append(data)
    return b"".join(parts)


def decode_index_value(data: bytes) -> tuple[datetime, tuple[str, ...]]:
    """(first_viewed_at, event ids) of a viewer-index value (an older value holds the time
    only: its views' ids are in EVENT_TAG keys, which are no longer read)."""
    ms, event_ids = read_index_value(data)
    return from_millis(ms), event_ids


def read_index_value(data: bytes) -> tuple[int, tuple[str, ...]]:
    """`decode_index_value` with the time in milliseconds since the epoch."""
    ms = _TIME.unpack_from(data)[0] - _BIAS
    if len(data) == _TIME.size:
        return ms, ()
    event_ids = []
    pos = _TIME.size
    while pos < len(data):
        end = pos + 1 + data[pos]
        event_ids.append(data[pos + 1 : end].decode())
        pos = end
    return ms, tuple(event_ids)


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


def view_event_prefix(story_id: str) -> bytes:
    """The prefix of every applied-view key of the story."""
    return _prefix(EVENT_TAG, story_id)


def story_view_prefixes(story_id: str) -> tuple[bytes, bytes, bytes]:
    """Every key prefix the views path writes for a story (delete them all on purge)."""
    return viewer_order_prefix(story_id), viewer_index_prefix(story_id), view_event_prefix(story_id)


def viewer_order_key(story_id: str, first_viewed_at: datetime, viewer_id: str) -> bytes:
    """The viewer-list key: sorts by (story, first view, viewer)."""
    return viewer_order_key_of(story_id, encode_time(first_viewed_at), viewer_id)


def viewer_order_key_of(story_id: str, time: bytes, viewer_id: str) -> bytes:
    """`viewer_order_key` with the time already encoded (`encode_time`)."""
    return f"O{story_id}\x00".encode() + time + viewer_id.encode()


# f-strings and one encode: these run several times per view, and are 3x faster than bytes
# concatenation. The tags are the ORDER_TAG / INDEX_TAG bytes.
def viewer_index_key(story_id: str, viewer_id: str) -> bytes:
    """The key holding a viewer's first view of the story (`encode_index_value`)."""
    return f"I{story_id}\x00{viewer_id}".encode()


def order_key_of_index_entry(index_key: bytes, value: bytes) -> bytes:
    """The viewer-list key an index entry implies (so the list can be rebuilt from the index)."""
    story, _, viewer = index_key[len(INDEX_TAG) :].partition(_SEP)
    return ORDER_TAG + story + _SEP + value[: _TIME.size] + viewer


def viewer_of_index_key(key: bytes) -> str:
    """The viewer id of a viewer-index key."""
    if not key.startswith(INDEX_TAG) or _SEP not in key:
        raise ValueError(f"not a viewer-index key: {key!r}")
    return key.rpartition(_SEP)[2].decode()


def parse_order_key(key: bytes) -> tuple[str, str, datetime]:
    """(story_id, viewer_id, first_viewed_at) of a viewer-list key; ValueError otherwise."""
    story, sep, rest = key[1:].partition(_SEP)
    viewer = rest[_TIME.size :]
    if (
        not key.startswith(ORDER_TAG)
        or not sep
        or _IDENTIFIER.fullmatch(story) is None
        or _IDENTIFIER.fullmatch(viewer) is None
    ):
        raise ValueError("not a viewer-list key")
    return story.decode(), viewer.decode(), decode_time(rest[: _TIME.size])


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
