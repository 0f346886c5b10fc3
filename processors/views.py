"""Views of a story, a batch at a time: exact viewer list, HyperLogLog unique count, total."""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple, TypeVar

import datasketches
from pydantic import BaseModel

from processors.context import Ctx, ForwardMany, Output, Put, PutMany, Tombstone
from processors.messages import StorySeen
from processors.story_info import StoryInfo
from processors.viewer_list import (
    encode_millis,
    index_value_of,
    read_index_value,
    view_event_key,
    viewer_index_prefix,
    viewer_order_prefix,
)
from schemas.events import StoryViewed
from schemas.records import StoryViewer, ViewCount
from schemas.types import from_millis, millis

# HLL_4 and HLL_8 hold the same registers and give identical estimates; HLL_4 packs them in
# nibbles, so the compact sketch is ~2 KiB instead of ~4 KiB at lgK 12 (it travels in every
# ViewCount and sits in every story's state), and update/serialize cost the same.
HLL_TYPE = datasketches.tgt_hll_type.HLL_4
_STATE_HEADER = struct.Struct(">QQQ")
# A viewer's index entry keeps the ids of their applied views up to this many (the smallest);
# the others are keys of their own (EVENT_TAG), so the entry stays small (~2 KiB) however many
# times one viewer views a story. The keys are looked up only for a viewer whose entry is full.
# (Lowering it leaves such keys unread for entries that were full: do not.)
INLINE_EVENT_IDS = 32
_LITTLE_ENDIAN = sys.byteorder == "little"
assert array("I").itemsize == 4, "HLL coupons are 4-byte ints"


# The value types below are NamedTuples rather than frozen dataclasses: as immutable, and about
# three times cheaper to build, which matters at one of each per story per batch.


class ViewState(NamedTuple):
    """A story's view counters: total views, compact HLL sketch, its estimate, exact viewers.

    `unique_viewers` caches the sketch's rounded estimate so a batch without new viewers need
    not deserialize the sketch; `viewers` is the exact length of the viewer list.
    """

    total_views: int
    sketch: bytes
    unique_viewers: int
    viewers: int

    def to_bytes(self) -> bytes:
        """A compact binary encoding for the state store."""
        return _STATE_HEADER.pack(self.total_views, self.unique_viewers, self.viewers) + self.sketch

    @classmethod
    def from_bytes(cls, data: bytes) -> ViewState:
        """Decode what `to_bytes` wrote (raises ValueError on anything shorter)."""
        if len(data) <= _STATE_HEADER.size:
            raise ValueError(f"not a stored ViewState ({len(data)} bytes)")
        total, unique, viewers = _STATE_HEADER.unpack_from(data)
        return cls(total, data[_STATE_HEADER.size :], unique, viewers)


class View(NamedTuple):
    """A view as the views path reads it: a `StoryViewed` decoded and checked by the wiring,
    without building the model (the firehose's per-event cost), its time in milliseconds.

    `record` is opaque here: the Avro body of the `StoryViewer` record this view makes if it is
    its viewer's first, when the wiring sliced it from the `StoryViewed` record (its last three
    fields are a StoryViewer's, in order); empty otherwise.
    """

    story_id: str
    viewer_id: str
    event_id: str
    viewed_at: int  # milliseconds since the epoch, UTC
    record: bytes = b""

    @classmethod
    def of(cls, value: Mapping[str, Any]) -> View:
        """From a decoded StoryViewed record (or a `StoryViewed`'s fields)."""
        at = value["viewed_at"]
        return cls(
            value["story_id"],
            value["viewer_id"],
            value["event_id"],
            at if type(at) is int else millis(at),
        )

    @classmethod
    def of_event(cls, event: StoryViewed | View) -> View:
        """A `StoryViewed` as a View. A View is taken as it is, unless an older version parked
        it with its time as a datetime: then the time is converted to milliseconds."""
        if not isinstance(event, View):
            return cls.of(event.__dict__)
        return event if type(event.viewed_at) is int else cls.of(event._asdict())


class ViewsResult(NamedTuple):
    """What applying a batch of one story's views decided.

    Store (in one write batch): `state` when `changed`, and the viewer-list and viewer-index
    keys of `writes()`. Produce `outputs`. `skipped` (author's own views, refused events) and
    `duplicates` are for metrics.
    """

    story_id: str
    state: ViewState | None
    changed: bool
    puts: list[tuple[bytes, bytes]]
    outputs: tuple[Output, ...]
    skipped: int = 0
    duplicates: int = 0
    deletes: Sequence[bytes] = ()

    def writes(self) -> tuple[list[tuple[bytes, bytes]], Sequence[bytes]]:
        """The viewer-list and viewer-index keys to put and delete (the state aside).

        An applied view's id is kept in its viewer's index entry: a redelivered view is found
        by the same lookup that finds the viewer, with no key (and changelog record) of its own
        (past INLINE_EVENT_IDS of one viewer, the other ids get keys: see `overflow_lookups`).
        """
        return self.puts, self.deletes


class ViewLookups(NamedTuple):
    """The store keys to fetch before `apply_views`, and how to read the answers."""

    viewer_keys: dict[bytes, str]

    def resolve(
        self, values: Sequence[bytes | None]
    ) -> tuple[dict[str, int], set[str], dict[str, tuple[str, ...]]]:
        """`known_viewers`, `seen_event_ids` and `stored_events` from the values of the keys
        (a multi-get, in the order of `viewer_keys`)."""
        known: dict[str, int] = {}
        stored: dict[str, tuple[str, ...]] = {}
        seen: set[str] = set()
        for viewer_id, value in zip(self.viewer_keys.values(), values, strict=True):
            if value is not None:
                known[viewer_id], ids = read_index_value(value)
                stored[viewer_id] = ids
                seen.update(ids)
        return known, seen, stored


def overflow_lookups(
    story_id: str,
    views: Sequence[View],
    stored_events: Mapping[str, tuple[str, ...]],
    seen_event_ids: AbstractSet[str],
    inline: int = INLINE_EVENT_IDS,
) -> dict[bytes, str]:
    """The applied-view keys to fetch after `ViewLookups.resolve`: for each view not found
    applied yet whose viewer's index entry is full (its other ids are keys of their own).
    The ids of the keys found are applied views: add them to `seen_event_ids`."""
    keys: dict[bytes, str] = {}
    if all(len(ids) < inline for ids in stored_events.values()):
        return keys  # the usual case: no entry is full
    for view in views:
        ids = stored_events.get(view.viewer_id)
        if ids is not None and len(ids) >= inline and view.event_id not in seen_event_ids:
            keys[view_event_key(story_id, view.event_id)] = view.event_id
    return keys


def plan_lookups(info: StoryInfo, views: Sequence[View]) -> ViewLookups:
    """The viewer-index keys a batch of `views` needs fetched (author excluded)."""
    story_id, author_id = info.story_id, info.author_id
    prefix = viewer_index_prefix(story_id)  # a viewer's key is the prefix and their id
    viewer_keys: dict[bytes, str] = {}
    for view in views:
        viewer_id = view.viewer_id
        if viewer_id != author_id:
            viewer_keys[prefix + viewer_id.encode()] = viewer_id
    return ViewLookups(viewer_keys)


def apply_views(
    state: ViewState | None,
    info: StoryInfo | None,
    views: Sequence[View],
    known_viewers: Mapping[str, int],
    seen_event_ids: AbstractSet[str],
    stored_events: Mapping[str, tuple[str, ...]],
    ctx: Ctx,
    inline: int = INLINE_EVENT_IDS,
) -> ViewsResult:
    """Apply a batch of views of `info`'s story (pre-fetched lookups in, writes and outputs out).

    `known_viewers` maps each of the batch's viewers already in the list to their stored
    first view (milliseconds); `seen_event_ids` holds the batch's event ids already applied and
    `stored_events` the ids in each known viewer's index entry (see `ViewLookups.resolve`
    and `overflow_lookups`); an entry keeps the `inline` smallest of a viewer's ids. The
    author's own views and refused events are skipped; an event id is counted once; the
    earliest view of a viewer wins (an earlier one arriving late moves the viewer up the
    list). The HLL is deserialized, updated with the new viewers and serialized once.
    Outputs, coalesced per key: a `StoryViewer` and a `StorySeen` to the viewer's tray per new
    viewer, a `StoryViewer` per moved viewer (together as one `PutMany` and one `ForwardMany`),
    one `ViewCount`. A first view's StoryViewer is its `record` when the view has one (the
    wiring sliced it from the view's own record), else its fields. A duplicate re-publishes
    the current values for its viewer and the count (idempotent on compacted topics), so a
    crash between storing and producing loses nothing.
    """
    if info is None or info.phase == "ended":
        return ViewsResult(_story_of(info, views), state, False, [], (), len(views))
    story_id, author_id = info.story_id, info.author_id
    deadline = millis(info.expires_at) if info.phase == "live" else None
    skipped = 0
    applied: dict[str, str] = {}  # event id -> viewer, in order
    firsts: dict[str, View] = {}  # viewer -> their first view, if it is in this batch
    repeated: list[str] = []
    for view in views:
        viewer_id = view.viewer_id
        at = view.viewed_at
        if viewer_id == author_id or (deadline is not None and at > deadline):
            skipped += 1
            continue
        event_id = view.event_id
        if event_id in applied or event_id in seen_event_ids:
            repeated.append(viewer_id)
            continue
        applied[event_id] = viewer_id
        current = firsts.get(viewer_id)
        if current is None:
            known = known_viewers.get(viewer_id)
            if known is None or at < known:
                firsts[viewer_id] = view
        elif at < current.viewed_at:
            firsts[viewer_id] = view
    if not applied and not repeated:
        return ViewsResult(story_id, state, False, [], (), skipped)

    # A viewer's keys are these prefixes and their id (list keys: and the sortable time).
    order_prefix, index_prefix = viewer_order_prefix(story_id), viewer_index_prefix(story_id)
    key_prefix = f"{story_id}/"  # story-viewers keys
    puts: list[tuple[bytes, bytes]] = []  # viewer-list keys, then index (and applied-view) keys
    deletes: list[bytes] = []  # list keys of viewers moved up
    times: dict[str, bytes] = {}  # each new first view's sortable time, encoded once
    new_viewers: list[str] = []
    listed: list[tuple[str, dict[str, Any] | bytes]] = []  # StoryViewer records
    seen: list[tuple[str, dict[str, Any]]] = []  # StorySeen messages to the trays
    for viewer_id, view in firsts.items():
        at = view.viewed_at
        times[viewer_id] = time = encode_millis(at)
        puts.append((order_prefix + time + viewer_id.encode(), b""))
        listed.append((key_prefix + viewer_id, view.record or _viewer(story_id, viewer_id, at)))
        replaces = known_viewers.get(viewer_id)
        if replaces is None:
            new_viewers.append(viewer_id)
            seen.append((viewer_id, _seen(viewer_id, story_id, at)))
        else:
            deletes.append(order_prefix + encode_millis(replaces) + viewer_id.encode())
    for viewer_id in dict.fromkeys(repeated):
        known = known_viewers.get(viewer_id)
        if viewer_id in firsts or known is None:
            continue  # already published above, or its first view is still in this batch
        listed.append((key_prefix + viewer_id, _viewer(story_id, viewer_id, known)))
        seen.append((viewer_id, _seen(viewer_id, story_id, known)))
    outputs: list[Output] = []
    if listed:
        outputs.append(PutMany(StoryViewer, story_id, listed))
    if seen:
        outputs.append(ForwardMany("tray", StorySeen, seen))
    by_viewer: dict[str, list[str]] = {}
    for event_id, viewer_id in applied.items():
        ids = by_viewer.get(viewer_id)
        if ids is None:
            by_viewer[viewer_id] = [event_id]
        else:
            ids.append(event_id)
    # The ids sorted: the same views give the same bytes in any delivery order (as a replay).
    for viewer_id, event_ids in by_viewer.items():
        stored = stored_events.get(viewer_id)
        if stored:
            event_ids = [*stored, *event_ids]
        if len(event_ids) > 1:
            event_ids.sort()
        if len(event_ids) > inline:  # the entry keeps the smallest; the others get keys
            puts += [(view_event_key(story_id, event_id), b"") for event_id in event_ids[inline:]]
            event_ids = event_ids[:inline]
        time = times.get(viewer_id) or encode_millis(known_viewers[viewer_id])
        puts.append((index_prefix + viewer_id.encode(), index_value_of(time, event_ids)))
    new_state = _counted(state, new_viewers, len(applied), ctx) if applied else state
    if new_state is not None:
        outputs.append(Put(story_id, _count(story_id, new_state)))
    return ViewsResult(
        story_id,
        new_state,
        new_state is not state,
        puts,
        tuple(outputs),
        skipped,
        len(views) - skipped - len(applied),
        deletes,
    )


def _counted(state: ViewState | None, new_viewers: list[str], applied: int, ctx: Ctx) -> ViewState:
    """The state after `applied` more views, `new_viewers` of them by new viewers."""
    if state is None:
        sketch = datasketches.hll_sketch(ctx.policy.hll_lg_k, HLL_TYPE)
        total, viewers = 0, 0
    elif new_viewers:
        sketch = datasketches.hll_sketch.deserialize(state.sketch)
        total, viewers = state.total_views, state.viewers
    else:  # only known viewers: the sketch and its estimate cannot change
        return ViewState(
            state.total_views + applied, state.sketch, state.unique_viewers, state.viewers
        )
    update = sketch.update
    for viewer_id in new_viewers:
        update(viewer_id)  # a str is hashed as its UTF-8 bytes, like Java's update(String)
    return ViewState(
        total + applied,
        canonical_sketch(sketch.serialize_compact()),
        round(sketch.get_estimate()),
        viewers + len(new_viewers),
    )


def canonical_sketch(compact: bytes) -> bytes:
    """The compact sketch with its coupons in one order, so the same viewers give the same bytes.

    While small, a DataSketches HLL holds 4-byte coupons (a list, then a hash set) in the order
    they arrived; a replay that batches the views differently would publish other bytes for the
    same state. Sorting them is a valid encoding: a compact list or set is read coupon by coupon.
    In HLL mode (lowest two bits of byte 7 equal to 2) the registers are already canonical.
    """
    if compact[7] & 3 == 2:
        return compact
    header = compact[0] * 4  # preamble length in 4-byte ints
    # Sorted as big-endian ints, which orders them as their bytes: one C sort, no slices.
    coupons = array("I", compact[header:])
    if _LITTLE_ENDIAN:
        coupons.byteswap()
    coupons = array("I", sorted(coupons))
    if _LITTLE_ENDIAN:
        coupons.byteswap()
    return compact[:header] + coupons.tobytes()


def viewer_tombstones(story_id: str, viewer_ids: Iterable[str]) -> list[Tombstone]:
    """Tombstones for the `story-viewers` keys of these viewers of the story."""
    return [Tombstone(StoryViewer, f"{story_id}/{viewer_id}") for viewer_id in viewer_ids]


def view_count(story_id: str, state: ViewState) -> ViewCount:
    """The published `ViewCount` of a state."""
    return _count(story_id, state)


def _story_of(info: StoryInfo | None, views: Sequence[View]) -> str:
    if info is not None:
        return info.story_id
    return views[0].story_id if views else ""


# The records below are built from validated events (UTC, millisecond precision) as their
# fields, without a model (see `PutMany`): a test validates each, strictly.
def _viewer(story_id: str, viewer_id: str, at: int) -> dict[str, Any]:
    return {"story_id": story_id, "viewer_id": viewer_id, "first_viewed_at": from_millis(at)}


def _seen(viewer_id: str, story_id: str, at: int) -> dict[str, Any]:
    return {"kind": "story_seen", "user_id": viewer_id, "story_id": story_id, "at": from_millis(at)}


# A story's count is one record a batch: built as a model, without validating its fields again
# (pydantic's `model_construct` costs as much as validating; filling the four attributes every
# pydantic v2 model has costs a fraction).
_Model = TypeVar("_Model", bound=BaseModel)
_new = object.__new__
_set = object.__setattr__


def _built(cls: type[_Model], fields: dict[str, Any]) -> _Model:
    model = _new(cls)
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", set(fields))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _count(story_id: str, state: ViewState) -> ViewCount:
    return _built(
        ViewCount,
        {
            "story_id": story_id,
            "unique_viewers": state.unique_viewers,
            "total_views": state.total_views,
            "sketch": state.sketch,
        },
    )
