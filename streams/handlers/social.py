"""The author stage (follow graph, fan-out; keyed author_id) and the tray stage (keyed user_id)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from processors import authors, trays
from processors.trays import TrayState
from streams.engine import InRecord, PartitionContext
from streams.handlers.common import (
    Decoder,
    Table,
    apply_by_key,
    by_key,
    ctx_of,
    internal_messages,
)
from streams.handlers.follow_graph import absorb, empty_author, load_author, save_author
from streams.registry import SchemaRegistry
from streams.topics import USER_FOLLOWS

TRAYS: Table[TrayState] = Table("tray", TrayState)


def apply_authors(pctx: PartitionContext, decoded: Iterable[tuple[InRecord, Any]]) -> None:
    """Each author's inputs, in order, on one read and one write of its state (as
    `apply_by_key` does for a table), its sets read and written key by key (`follow_graph`).
    An author is written and its outputs emitted together, after its last input."""
    store = pctx.store
    for author_id, items in by_key(decoded).items():
        state = load_author(store, author_id) or empty_author(store, author_id)
        outputs: list[Any] = []
        for record, item in items:
            changed, emitted = authors.handle(state, item, ctx_of(pctx, record))
            state = absorb(state, changed)
            outputs.extend(emitted)
        save_author(store, state)
        pctx.emit(outputs)


class AuthorHandler:
    """`user-follows` and the story stage's StoryOpened/StoryClosed, keyed by the author."""

    def __init__(self, registry: SchemaRegistry, internal_topic: str) -> None:
        self.topics = (USER_FOLLOWS.name, internal_topic)
        self._decoder = Decoder(USER_FOLLOWS, registry)

    def handle(self, pctx: PartitionContext, records: Sequence[InRecord]) -> None:
        if records[0].topic == USER_FOLLOWS.name:
            decoded = self._decoder.models(pctx, records)
        else:
            decoded = internal_messages(pctx, records)
        apply_authors(pctx, decoded)

    def tick(self, pctx: PartitionContext) -> None:
        pass


class TrayHandler:
    """Tray messages from the author and views stages, keyed by the tray's owner."""

    def __init__(self, internal_topic: str) -> None:
        self.topics = (internal_topic,)

    def handle(self, pctx: PartitionContext, records: Sequence[InRecord]) -> None:
        apply_by_key(pctx, TRAYS, internal_messages(pctx, records), trays.handle)

    def tick(self, pctx: PartitionContext) -> None:
        pass
