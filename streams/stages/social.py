"""The author stage (follow graph, fan-out; keyed author_id) and the tray stage (keyed user_id)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from processors import authors, trays
from processors.messages import StorySeen
from streams.codecs.registry import SchemaRegistry
from streams.runtime.context import StageContext
from streams.runtime.records import InRecord
from streams.stages import follow_graph, tray_store
from streams.stages.common import Decoder, by_key, ctx_of, internal_messages
from streams.topics import USER_FOLLOWS


def apply_authors(pctx: StageContext, decoded: Iterable[tuple[InRecord, Any]]) -> None:
    """Each author's inputs, in order, on one read and one write of its small value. Each input
    gets the author's sets as plain data: the named user's place in them (one lookup), or
    the whole sets (a scan) when it may fan out. An author's outputs are emitted together,
    after its last input."""
    store, policy = pctx.store, pctx.policy
    for author_id, items in by_key(decoded).items():
        core = follow_graph.load_core(store, author_id)
        outputs: list[Any] = []
        for record, item in items:
            user = authors.named_user(item)
            state = follow_graph.partial_author(store, author_id, core, user)
            if authors.needs_members(state, item, policy):
                state = follow_graph.whole_author(store, author_id, core)
            changed, emitted = authors.handle(state, item, ctx_of(pctx, record))
            core = follow_graph.save_changes(store, state, changed, user)
            outputs.extend(emitted)
        follow_graph.save_core(store, author_id, core)
        pctx.emit(outputs, items[-1][0].timestamp)  # as of the author's last input


class AuthorHandler:
    """`user-follows` and the story stage's StoryOpened/StoryClosed, keyed by the author."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._decoder = Decoder(USER_FOLLOWS, registry)

    def handle(self, pctx: StageContext, records: Sequence[InRecord]) -> None:
        if records[0].topic == USER_FOLLOWS.name:
            decoded = self._decoder.models(pctx, records)
        else:
            decoded = internal_messages(pctx, records)
        apply_authors(pctx, decoded)

    def tick(self, pctx: StageContext) -> None:
        pass


def apply_trays(pctx: StageContext, decoded: Iterable[tuple[InRecord, Any]]) -> None:
    """Each user's messages, in order, on one read of the tray and of the marks they need
    (`tray_store.marks_to_read`); written together with the outputs, after the last.

    A user's views of stories outside the tray (`tray_store.marks_only`) only mark those
    stories: the tray is not decoded (`trays.seen_outside_tray`)."""
    store = pctx.store
    ctx = ctx_of(pctx)  # the tray processors read only the clock and policy: one for all
    for user_id, items in by_key(decoded).items():
        messages = [message for _, message in items]
        named = [m.story_id for m in messages if hasattr(m, "story_id")]
        views_only = all(type(m) is StorySeen for m in messages)
        value = tray_store.tray_value(store, user_id)
        if views_only and tray_store.marks_only(value, named, pctx.now):
            marks = tray_store.read_marks(store.get_many, user_id, named)
            after = trays.seen_outside_tray(marks, messages, ctx)
            tray_store.save_marks(store, user_id, marks, after)
            continue
        marked = tray_store.marks_to_read(value, named, views_only, pctx.now)
        loaded = tray_store.load_tray(store, user_id, marked, value)
        state, outputs = trays.handle_many(loaded.state, [(message, ctx) for message in messages])
        tray_store.save_tray(store, user_id, loaded, state)
        pctx.emit(outputs, items[-1][0].timestamp)  # the tray as of its last message


class TrayHandler:
    """Tray messages from the author and views stages, keyed by the tray's owner."""

    def handle(self, pctx: StageContext, records: Sequence[InRecord]) -> None:
        apply_trays(pctx, internal_messages(pctx, records))

    def tick(self, pctx: StageContext) -> None:
        tray_store.sweep(pctx.store, pctx.now)
