"""The author stage (follow graph, fan-out; keyed author_id) and the tray stage (keyed user_id)."""

from __future__ import annotations

from collections.abc import Sequence

from processors import authors, trays
from processors.authors import Author
from processors.trays import TrayState
from streams.engine import InRecord, PartitionContext
from streams.handlers.common import Decoder, Table, apply_by_key, internal_messages
from streams.registry import SchemaRegistry
from streams.topics import USER_FOLLOWS

AUTHORS: Table[Author] = Table("author")
TRAYS: Table[TrayState] = Table("tray", TrayState)


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
        apply_by_key(pctx, AUTHORS, decoded, authors.handle)

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
