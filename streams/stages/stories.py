"""The story stage (keyed story_id): posts, media readiness, highlights, deletes and the
expiry scan; and the media stage (keyed media_id) that joins stories with their transcodes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from processors import media_join, stories
from processors.expiry import next_due
from processors.media_join import PendingMedia
from processors.stories import Story, story_state_record
from schemas.events import HighlightChanged, StoryDeleted
from schemas.records import StoryState
from streams.codecs.registry import SchemaRegistry
from streams.runtime.context import StageContext
from streams.runtime.records import InRecord
from streams.runtime.store import PartitionStore
from streams.stages.common import Decoder, ctx_of, internal_messages
from streams.stages.due import DueIndex
from streams.stages.parking import ParkingLot
from streams.stages.state import Table
from streams.topics import MEDIA_TRANSCODED, STORY_DELETED, STORY_HIGHLIGHTS, STORY_POSTED

STORIES: Table[Story] = Table("story", Story)
MEDIA: Table[PendingMedia] = Table("media", PendingMedia)
STORY_DUE = DueIndex("storydue")


class ParkedChange(NamedTuple):
    """A delete or a highlight change held for a story not known yet."""

    deleted: StoryDeleted | None = None
    highlight: HighlightChanged | None = None


# A delete or highlight can arrive before its post (another topic, fetched independently):
# dropped, it would leave the story live once the post came.
STORY_PARKING: ParkingLot[ParkedChange] = ParkingLot(
    "storyparked", ParkedChange, "storyparkdue", timedelta(seconds=30), 1_000, "unknown-story"
)
MEDIA_DUE = DueIndex("mediadue", width=timedelta(minutes=1))


def load_story(store: PartitionStore, story_id: str, committed: bool = False) -> Story | None:
    return STORIES.read(store.get_committed if committed else store.get, story_id)


def story_view(store: PartitionStore, story_id: str, now: datetime) -> StoryState | None:
    """The story as readers may see it now: published and (unless highlighted) not expired."""
    story = load_story(store, story_id, committed=True)
    if story is None or not story.published:
        return None
    if story.live and story.expires_at <= now and not story.highlighted:
        return None  # due: the expiry scan is about to tombstone it
    return story_state_record(story)


def failed_story(store: PartitionStore, story_id: str, now: datetime) -> dict[str, Any] | None:
    """A story whose media failed, as its author sees it until it would have expired: the
    StoryState fields as JSON with `status: failed` and the reason in `error`; else None.

    Not a StoryState record: `failed` is kept off `story-state` (its schema has no such status).
    """
    story = load_story(store, story_id, committed=True)
    if story is None or story.phase != "failed" or story.expires_at <= now:
        return None
    shown = story_state_record(story).model_dump(mode="json")
    return {**shown, "status": "failed", "error": story.error or "media failed"}


def _save_story(pctx: StageContext, story_id: str, old: Story | None, new: Story | None) -> None:
    store = pctx.store
    if new is None:
        STORIES.delete(store, story_id)
    elif new != old:
        STORIES.put(store, story_id, new)
    STORY_DUE.move(store, story_id, next_due(old, pctx.policy), next_due(new, pctx.policy))


class StoryHandler:
    """story-posted, story-highlights, story-deleted and MediaReady from the media stage."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._decoders = {
            spec.name: Decoder(spec, registry)
            for spec in (STORY_POSTED, STORY_HIGHLIGHTS, STORY_DELETED)
        }

    def handle(self, pctx: StageContext, records: Sequence[InRecord]) -> None:
        decoder = self._decoders.get(records[0].topic)
        decoded = decoder.models(pctx, records) if decoder else internal_messages(pctx, records)
        for record, item in decoded:
            story_id = item.story_id
            old = load_story(pctx.store, story_id)
            if old is None and isinstance(item, StoryDeleted | HighlightChanged):
                held = (
                    ParkedChange(deleted=item)
                    if isinstance(item, StoryDeleted)
                    else ParkedChange(highlight=item)
                )
                STORY_PARKING.park(pctx, story_id, [held])
                continue
            new, outputs = stories.handle(old, item, ctx_of(pctx, record))
            if new is old and not outputs and old is not None and not old.live:
                pctx.metrics.rejected.inc(f"{record.topic}-story-ended")
            _save_story(pctx, story_id, old, new)
            pctx.emit(outputs, record.timestamp)
            if old is None and new is not None:  # its post: what waited for it applies now
                for waited in STORY_PARKING.unpark(pctx, story_id):
                    change = waited.deleted or waited.highlight
                    assert change is not None
                    before = load_story(pctx.store, story_id)
                    after, emitted = stories.handle(before, change, ctx_of(pctx, record))
                    _save_story(pctx, story_id, before, after)
                    pctx.emit(emitted, record.timestamp)

    def tick(self, pctx: StageContext) -> None:
        """Expire and purge what is due: a scan of the due buckets only."""
        STORY_PARKING.drop_expired(pctx)
        ctx = ctx_of(pctx)
        for story_id in STORY_DUE.due(pctx.store, pctx.now):
            old = load_story(pctx.store, story_id)
            new, outputs = stories.advance(old, ctx)
            if old is not None and old.live and (new is None or not new.live):
                pctx.metrics.expiries.inc("highlighted" if new and new.highlighted else "expired")
                pctx.metrics.expiry_delay.set((pctx.now - old.expires_at).total_seconds())
            elif old is not None and new is None:
                pctx.metrics.expiries.inc("purged")
            _save_story(pctx, story_id, old, new)
            pctx.emit(outputs)


class MediaJoinHandler:
    """media-transcoded and AwaitMedia from the story stage, keyed by media_id."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._decoder = Decoder(MEDIA_TRANSCODED, registry)

    def _load(self, store: PartitionStore, media_id: str) -> PendingMedia | None:
        return MEDIA.get(store, media_id)

    def _save(
        self,
        pctx: StageContext,
        media_id: str,
        old: PendingMedia | None,
        new: PendingMedia | None,
    ) -> None:
        if new is None:
            MEDIA.delete(pctx.store, media_id)
        elif new != old:
            MEDIA.put(pctx.store, media_id, new)
        MEDIA_DUE.move(pctx.store, media_id, media_join.media_due(old), media_join.media_due(new))

    def handle(self, pctx: StageContext, records: Sequence[InRecord]) -> None:
        if records[0].topic == MEDIA_TRANSCODED.name:
            decoded = self._decoder.models(pctx, records)
        else:
            decoded = internal_messages(pctx, records)
        for record, item in decoded:
            old = self._load(pctx.store, item.media_id)
            new, outputs = media_join.handle(old, item, ctx_of(pctx, record))
            self._save(pctx, item.media_id, old, new)
            pctx.emit(outputs, record.timestamp)

    def tick(self, pctx: StageContext) -> None:
        ctx = ctx_of(pctx)
        for media_id in MEDIA_DUE.due(pctx.store, pctx.now):
            old = self._load(pctx.store, media_id)
            new, outputs = media_join.expire_media(old, ctx)
            self._save(pctx, media_id, old, new)
            pctx.emit(outputs)
