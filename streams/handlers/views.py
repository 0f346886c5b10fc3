"""The views and reactions stage (keyed story_id): batched per story, one state read and write
per story per batch, outputs coalesced per key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from processors import story_info, views
from processors.messages import StoryLifecycle
from processors.reactions import (
    ReactionState,
    apply_reactions,
    reaction_event_key,
    reaction_event_keys,
    reaction_event_prefix,
)
from processors.story_info import StoryInfo
from processors.viewer_list import story_view_prefixes
from schemas.events import StoryReacted, StoryViewed
from streams.engine import InRecord, PartitionContext
from streams.handlers.common import Decoder, ctx_of
from streams.registry import SchemaRegistry
from streams.store import PartitionStore
from streams.topics import STORY_REACTED, STORY_VIEWED

INFO = b"info\x01"
VIEW_STATE = b"views\x01"
REACTION_STATE = b"reactions\x01"


def _info(store: PartitionStore, story_id: str) -> StoryInfo | None:
    data = store.get(INFO + story_id.encode())
    return None if data is None else StoryInfo.from_bytes(data)


def apply_lifecycle(pctx: PartitionContext, key: str, message: Any) -> None:
    """The story stage's word on a story, applied in place (same key, same partition)."""
    assert isinstance(message, StoryLifecycle)
    store = pctx.store
    info, outputs = story_info.apply_lifecycle(_info(store, key), message, ctx_of(pctx))
    pctx.emit(outputs)
    if info is None:  # purged: every key of the story goes
        store.delete(INFO + key.encode())
        store.delete(VIEW_STATE + key.encode())
        store.delete(REACTION_STATE + key.encode())
        for prefix in (*story_view_prefixes(key), reaction_event_prefix(key)):
            for stored_key, _ in list(store.scan(prefix)):
                store.delete(stored_key)
        return
    store.put(INFO + key.encode(), info.to_bytes())
    if info.phase == "ended":
        index_prefix = story_view_prefixes(key)[1]
        viewer_ids = [k[len(index_prefix) :].decode() for k, _ in store.scan(index_prefix)]
        pctx.emit(views.viewer_tombstones(key, viewer_ids))


class ViewsHandler:
    """`story-viewed` -> HLL counts, exact viewer lists, StorySeen to trays."""

    topics = (STORY_VIEWED.name,)

    def __init__(self, registry: SchemaRegistry) -> None:
        self._decoder = Decoder(STORY_VIEWED, registry)

    def handle(self, pctx: PartitionContext, records: Sequence[InRecord]) -> None:
        by_story: dict[str, list[StoryViewed]] = defaultdict(list)
        for _, event in self._decoder.models(pctx, records):
            by_story[event.story_id].append(event)
        store = pctx.store
        ctx = ctx_of(pctx)
        for story_id, batch in by_story.items():
            info = _info(store, story_id)
            if info is None or info.phase == "ended":
                pctx.engine.metrics.rejected.inc("view-unknown-or-expired", len(batch))
                continue
            lookups = views.plan_lookups(info, batch)
            found = {key: store.get(key) for key in (*lookups.viewer_keys, *lookups.event_keys)}
            known, seen = lookups.resolve(found)
            state_key = VIEW_STATE + story_id.encode()
            raw = store.get(state_key)
            state = views.ViewState.from_bytes(raw) if raw is not None else None
            result = views.apply_views(state, info, batch, known, seen, ctx)
            if result.skipped:
                pctx.engine.metrics.rejected.inc("view-own-or-outside-lifetime", result.skipped)
            if result.changed and result.state is not None:
                store.put(state_key, result.state.to_bytes())
            puts, deletes = result.writes()
            for key in deletes:
                store.delete(key)
            for key, value in puts:
                store.put(key, value)
            pctx.emit(result.outputs)

    def tick(self, pctx: PartitionContext) -> None:
        pass


class ReactionsHandler:
    """`story-reacted` -> reaction counts (replies kept with the story)."""

    topics = (STORY_REACTED.name,)

    def __init__(self, registry: SchemaRegistry) -> None:
        self._decoder = Decoder(STORY_REACTED, registry)

    def handle(self, pctx: PartitionContext, records: Sequence[InRecord]) -> None:
        by_story: dict[str, list[StoryReacted]] = defaultdict(list)
        for _, event in self._decoder.models(pctx, records):
            by_story[event.story_id].append(event)
        store = pctx.store
        ctx = ctx_of(pctx)
        for story_id, batch in by_story.items():
            info = _info(store, story_id)
            if info is None or info.phase == "ended":
                pctx.engine.metrics.rejected.inc("reaction-unknown-or-expired", len(batch))
                continue
            keys = reaction_event_keys(story_id, batch)
            seen = {event_id for key, event_id in keys.items() if store.get(key) is not None}
            state_key = REACTION_STATE + story_id.encode()
            raw = store.get(state_key)
            state = ReactionState.from_bytes(raw) if raw is not None else None
            result = apply_reactions(state, info, batch, seen, ctx)
            if result.changed and result.state is not None:
                store.put(state_key, result.state.to_bytes())
            for event_id in result.event_ids:
                store.put(reaction_event_key(story_id, event_id), b"")
            pctx.emit(result.outputs)

    def tick(self, pctx: PartitionContext) -> None:
        pass


def view_state(store: PartitionStore, story_id: str) -> views.ViewState | None:
    raw = store.get(VIEW_STATE + story_id.encode())
    return views.ViewState.from_bytes(raw) if raw is not None else None


def reaction_state(store: PartitionStore, story_id: str) -> ReactionState | None:
    raw = store.get(REACTION_STATE + story_id.encode())
    return ReactionState.from_bytes(raw) if raw is not None else None
