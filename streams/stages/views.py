"""The views and reactions stage (keyed story_id): batched per story, one state read and write
per story per batch, outputs coalesced per key."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NamedTuple

from processors import story_info, views
from processors.messages import StoryLifecycle
from processors.reactions import ReactionState, apply_reactions
from processors.story_info import StoryInfo
from schemas.events import StoryReacted
from schemas.types import IDENTIFIER, IDENTIFIER_PATTERN, IDENTIFIER_RULE, millis
from streams.codecs.registry import SchemaRegistry
from streams.codecs.view_slicer import view_reader
from streams.runtime.context import StageContext
from streams.runtime.records import InRecord
from streams.runtime.store import PartitionStore
from streams.stages.common import Decoder, ctx_of
from streams.stages.parking import ParkingLot
from streams.stages.state import Table
from streams.stages.viewer_list import (
    INDEX_TAG,
    ORDER_TAG,
    lookup_viewers,
    order_key_of_index_entry,
    story_view_prefixes,
    write_views,
)
from streams.topics import STORY_REACTED, STORY_VIEWED

INFO: Table[StoryInfo] = Table("info", StoryInfo)
VIEW_STATE: Table[views.ViewState] = Table("views", views.ViewState)
REACTION_STATE: Table[ReactionState] = Table("reactions", ReactionState)
REACTION_EVENT_TAG = b"R"  # R story NUL event_id -> b"": reactions already applied


def reaction_event_key(story_id: str, event_id: str) -> bytes:
    return f"R{story_id}\x00{event_id}".encode()  # REACTION_EVENT_TAG, story, NUL, event


def reaction_event_keys(story_id: str, events: Sequence[StoryReacted]) -> dict[bytes, str]:
    """The applied-reaction keys to look up for a batch, to their event ids."""
    return {reaction_event_key(story_id, event.event_id): event.event_id for event in events}


def reaction_event_prefix(story_id: str) -> bytes:
    """The prefix of every applied-reaction key of the story (deleted on purge)."""
    return REACTION_EVENT_TAG + story_id.encode() + b"\x00"


_DECODE_INFO = INFO.decode  # one function: the store's cache of decoded values is by decoder


def _info(store: PartitionStore, story_id: str) -> StoryInfo | None:
    return store.get_decoded(INFO.prefix + story_id.encode(), _DECODE_INFO)


def apply_lifecycle(pctx: StageContext, key: str, message: Any) -> None:
    """The story stage's word on a story, applied in place (same key, same partition)."""
    assert isinstance(message, StoryLifecycle)
    store = pctx.store
    info, outputs = story_info.apply_lifecycle(_info(store, key), message, ctx_of(pctx))
    pctx.emit(outputs)
    if info is None:  # purged: every key of the story goes
        for table in (INFO, VIEW_STATE, REACTION_STATE):
            table.delete(store, key)
        for prefix in (*story_view_prefixes(key), reaction_event_prefix(key)):
            for stored_key, _ in list(store.scan(prefix)):
                store.delete(stored_key)
        return
    INFO.put(store, key, info)
    if info.phase != "ended":
        _unpark(pctx, key)
    if info.phase == "ended":
        index_prefix = story_view_prefixes(key)[1]
        viewer_ids = [k[len(index_prefix) :].decode() for k, _ in store.scan(index_prefix)]
        pctx.emit(views.viewer_tombstones(key, viewer_ids))


_IDENTIFIER_BODY = IDENTIFIER_PATTERN.removeprefix("^").removesuffix("$")
_THREE_IDENTIFIERS = re.compile("/".join([_IDENTIFIER_BODY] * 3))  # "/" is not in one


def check_view(view: views.View) -> str | None:
    """The contract's rules for a decoded view (the schema fixed the types, its enum the type,
    and a `timestamp-millis` is read as a UTC time at millisecond precision)."""
    ids = f"{view.story_id}/{view.viewer_id}/{view.event_id}"
    if _THREE_IDENTIFIERS.fullmatch(ids):  # one match for the three; then which one
        return None
    for field in ("story_id", "viewer_id", "event_id"):
        if not IDENTIFIER.fullmatch(getattr(view, field)):
            return f"{field}: {IDENTIFIER_RULE}"
    return None


class ParkedEvent(NamedTuple):
    """A view or a reaction held for a story not known yet."""

    view: views.View | None = None
    reaction: StoryReacted | None = None


PARKING: ParkingLot[ParkedEvent] = ParkingLot(
    "parked", ParkedEvent, "parkdue", timedelta(seconds=30), 10_000, "unknown-story"
)
PARKED = PARKING.parking


def _park(pctx: StageContext, story_id: str, events: Sequence[Any]) -> None:
    """Hold events for a story not known yet: its post may be on its way on another topic
    (topics are fetched independently). They are applied when it arrives, or dropped after
    30 s (then they were for an unknown story)."""
    parked = [
        ParkedEvent(view=e) if isinstance(e, views.View) else ParkedEvent(reaction=e)
        for e in events
    ]
    PARKING.park(pctx, story_id, parked)


def _unpark(pctx: StageContext, story_id: str) -> None:
    parked = PARKING.unpark(pctx, story_id)
    seen = [e.view for e in parked if e.view is not None]
    reacted = [e.reaction for e in parked if e.reaction is not None]
    if seen:
        apply_view_batch(pctx, story_id, seen)
    if reacted:
        apply_reaction_batch(pctx, story_id, reacted)


def _accepting(
    pctx: StageContext, story_id: str, batch: Sequence[Any], kind: str
) -> StoryInfo | None:
    """The story's info when it takes events; otherwise the batch is parked (story not known
    yet) or refused (expired or deleted) and None is returned."""
    info = _info(pctx.store, story_id)
    if info is None:
        _park(pctx, story_id, batch)
        return None
    if info.phase == "ended":
        pctx.metrics.rejected.inc(f"{kind}-expired-or-deleted", len(batch))
        return None
    return info


def apply_view_batch(pctx: StageContext, story_id: str, batch: list[views.View]) -> None:
    """One story's views of this batch: one state read and write, outputs coalesced."""
    info = _accepting(pctx, story_id, batch, "view")
    if info is None:
        return
    store = pctx.store
    lookup = lookup_viewers(store, story_id, info.author_id, batch)
    state = VIEW_STATE.get(store, story_id)
    result = views.apply_views(state, info, batch, lookup.known, lookup.seen, ctx_of(pctx))
    if result.skipped:
        pctx.metrics.rejected.inc("view-own-or-outside-lifetime", result.skipped)
    if result.changed and result.state is not None:
        VIEW_STATE.put(store, story_id, result.state)
    write_views(store, story_id, result, lookup)
    # as of the story's latest view of the batch (replay stamps its outputs with event time)
    pctx.emit(result.outputs, max(view.viewed_at for view in batch))


def apply_reaction_batch(pctx: StageContext, story_id: str, batch: list[StoryReacted]) -> None:
    """One story's reactions of this batch."""
    info = _accepting(pctx, story_id, batch, "reaction")
    if info is None:
        return
    store = pctx.store
    keys = reaction_event_keys(story_id, batch)
    seen = {event_id for key, event_id in keys.items() if store.get(key) is not None}
    state = REACTION_STATE.get(store, story_id)
    result = apply_reactions(state, info, batch, seen, ctx_of(pctx))
    if result.changed and result.state is not None:
        REACTION_STATE.put(store, story_id, result.state)
    for event_id in result.event_ids:
        store.put(reaction_event_key(story_id, event_id), b"")
    pctx.emit(result.outputs, millis(max(event.reacted_at for event in batch)))


class ViewsHandler:
    """`story-viewed` -> HLL counts, exact viewer lists, StorySeen to trays."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._decoder = Decoder(STORY_VIEWED, registry, fast=(view_reader, check_view))

    def handle(self, pctx: StageContext, records: Sequence[InRecord]) -> None:
        by_story: dict[str, list[views.View]] = defaultdict(list)
        for view in self._decoder.values(pctx, records):
            by_story[view.story_id].append(view)
        for story_id, batch in by_story.items():
            apply_view_batch(pctx, story_id, batch)

    def tick(self, pctx: StageContext) -> None:
        PARKING.drop_expired(pctx)


class ReactionsHandler:
    """`story-reacted` -> reaction counts (replies kept with the story)."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._decoder = Decoder(STORY_REACTED, registry)

    def handle(self, pctx: StageContext, records: Sequence[InRecord]) -> None:
        by_story: dict[str, list[StoryReacted]] = defaultdict(list)
        for _, event in self._decoder.models(pctx, records):
            by_story[event.story_id].append(event)
        for story_id, batch in by_story.items():
            apply_reaction_batch(pctx, story_id, batch)

    def tick(self, pctx: StageContext) -> None:
        pass


class ViewerOrderKeys:
    """The viewer list's order keys are implied by the index keys (viewer -> first view), so
    only the index is changelogged and a restore rebuilds the list from it."""

    prefixes: tuple[bytes, ...] = (ORDER_TAG,)

    @staticmethod
    def rebuild(store: PartitionStore, key: bytes, old: bytes | None, new: bytes | None) -> None:
        if key[:1] != INDEX_TAG:
            return
        if old is not None:
            store.apply_restored(order_key_of_index_entry(key, old), None)
        if new is not None:
            store.apply_restored(order_key_of_index_entry(key, new), b"")


def view_state(store: PartitionStore, story_id: str) -> views.ViewState | None:
    """A story's counts as committed (what readers may see: a batch under way may abort)."""
    return VIEW_STATE.read(store.get_committed, story_id)


def reaction_state(store: PartitionStore, story_id: str) -> ReactionState | None:
    """A story's reaction counts as committed."""
    return REACTION_STATE.read(store.get_committed, story_id)
