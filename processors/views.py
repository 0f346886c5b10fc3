"""Views of a story, a batch at a time: exact viewer list, HyperLogLog unique count, total."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import datasketches
from pydantic import BaseModel

from processors.context import Ctx, ForwardMany, Output, Put, PutMany, Tombstone
from processors.messages import StorySeen
from processors.story_info import StoryInfo
from schemas.records import StoryViewer, ViewCount
from schemas.types import from_millis, millis

# HLL_4 and HLL_8 hold the same registers and give identical estimates; HLL_4 packs them in
# nibbles, so the compact sketch is half the size (it travels in every ViewCount and sits in
# every story's state), and update/serialize cost the same.
HLL_TYPE = datasketches.tgt_hll_type.HLL_4
_LITTLE_ENDIAN = sys.byteorder == "little"
assert array("I").itemsize == 4, "HLL coupons are 4-byte ints"


# The value types below are NamedTuples rather than frozen dataclasses: as immutable, and
# cheaper to build, which matters at one of each per story per batch.


class ViewState(NamedTuple):
    """A story's view counters: total views, compact HLL sketch, its estimate, exact viewers.

    `unique_viewers` caches the sketch's rounded estimate so a batch without new viewers need
    not deserialize the sketch; `viewers` is the exact length of the viewer list.
    """

    total_views: int
    sketch: bytes
    unique_viewers: int
    viewers: int


class View(NamedTuple):
    """A view as the views path reads it: a `StoryViewed` decoded and checked by the wiring,
    without building the model (the firehose's per-event cost), its time in milliseconds."""

    story_id: str
    viewer_id: str
    event_id: str
    viewed_at: int  # milliseconds since the epoch, UTC

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


class ViewsResult(NamedTuple):
    """What applying a batch of one story's views decided.

    `first_views`: each viewer whose first view the batch set or moved earlier, to that view's
    time (milliseconds); `moved_from`: for those already listed, their previous first view.
    `applied`: each viewer's newly applied event ids, in order. Store `state` when `changed`;
    produce `outputs`. `skipped` (author's own views, refused events) and `duplicates` are for
    metrics.
    """

    story_id: str
    state: ViewState | None
    changed: bool
    outputs: tuple[Output, ...]
    first_views: dict[str, int]
    moved_from: dict[str, int]
    applied: dict[str, list[str]]
    skipped: int = 0
    duplicates: int = 0


def apply_views(
    state: ViewState | None,
    info: StoryInfo | None,
    views: Sequence[View],
    known_viewers: Mapping[str, int],
    seen_event_ids: AbstractSet[str],
    ctx: Ctx,
) -> ViewsResult:
    """Apply a batch of views of `info`'s story.

    `known_viewers` maps each of the batch's viewers already in the list to their first view
    (milliseconds); `seen_event_ids` holds the batch's event ids already applied. The
    author's own views and refused events are skipped; an event id is counted once; the
    earliest view of a viewer wins (an earlier one arriving late moves the viewer up the
    list). The HLL is deserialized, updated with the new viewers and serialized once.
    Outputs, coalesced per key: a `StoryViewer` and a `StorySeen` to the viewer's tray per new
    viewer, a `StoryViewer` per moved viewer (together as one `PutMany` and one `ForwardMany`),
    one `ViewCount`. A duplicate re-publishes the current values for its viewer and the count
    (idempotent on compacted topics), so a crash between storing and producing loses nothing.
    """
    if info is None or info.phase == "ended":
        return ViewsResult(_story_of(info, views), state, False, (), {}, {}, {}, len(views))
    story_id, author_id = info.story_id, info.author_id
    deadline = millis(info.expires_at) if info.phase == "live" else None
    skipped = 0
    applied: dict[str, str] = {}  # event id -> viewer, in order
    firsts: dict[str, int] = {}  # viewer -> their first view, if it is in this batch
    repeated: list[str] = []
    for _, viewer_id, event_id, at in views:
        if viewer_id == author_id or (deadline is not None and at > deadline):
            skipped += 1
            continue
        if event_id in applied or event_id in seen_event_ids:
            repeated.append(viewer_id)
            continue
        applied[event_id] = viewer_id
        current = firsts.get(viewer_id)
        if current is None:
            known = known_viewers.get(viewer_id)
            if known is None or at < known:
                firsts[viewer_id] = at
        elif at < current:
            firsts[viewer_id] = at
    if not applied and not repeated:
        return ViewsResult(story_id, state, False, (), {}, {}, {}, skipped)

    key_prefix = f"{story_id}/"  # story-viewers keys
    moved_from: dict[str, int] = {}
    new_viewers: list[str] = []
    listed: list[tuple[str, dict[str, Any]]] = []  # StoryViewer records
    seen: list[tuple[str, dict[str, Any]]] = []  # StorySeen messages to the trays
    for viewer_id, at in firsts.items():
        when = from_millis(at)
        listed.append((key_prefix + viewer_id, _viewer(story_id, viewer_id, when)))
        replaces = known_viewers.get(viewer_id)
        if replaces is None:
            new_viewers.append(viewer_id)
            seen.append((viewer_id, _seen(viewer_id, story_id, when)))
        else:
            moved_from[viewer_id] = replaces
    for viewer_id in dict.fromkeys(repeated):
        known = known_viewers.get(viewer_id)
        if viewer_id in firsts or known is None:
            continue  # already published above, or its first view is still in this batch
        when = from_millis(known)
        listed.append((key_prefix + viewer_id, _viewer(story_id, viewer_id, when)))
        seen.append((viewer_id, _seen(viewer_id, story_id, when)))
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
    new_state = _counted(state, new_viewers, len(applied), ctx) if applied else state
    if new_state is not None:
        outputs.append(Put(story_id, _count(story_id, new_state)))
    return ViewsResult(
        story_id,
        new_state,
        new_state is not state,
        tuple(outputs),
        firsts,
        moved_from,
        by_viewer,
        skipped,
        len(views) - skipped - len(applied),
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
def _viewer(story_id: str, viewer_id: str, at: datetime) -> dict[str, Any]:
    return {"story_id": story_id, "viewer_id": viewer_id, "first_viewed_at": at}


def _seen(viewer_id: str, story_id: str, at: datetime) -> dict[str, Any]:
    return {"kind": "story_seen", "user_id": viewer_id, "story_id": story_id, "at": at}


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
