"""Output records of the contract (section 4): pydantic models mirroring the Avro schemas."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import Audience, MediaType, Rendition
from schemas.types import AvroInt, AvroLong, Base64Bytes, UtcDatetime

StoryStatus = Literal["processing", "active", "highlighted"]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    avro_record: ClassVar[str]


class StoryState(Record):
    avro_record: ClassVar[str] = "StoryState"

    story_id: str
    author_id: str
    created_at: UtcDatetime
    expires_at: UtcDatetime
    audience: Audience
    status: StoryStatus
    renditions: tuple[Rendition, ...] = ()
    highlight_ids: tuple[str, ...] = ()
    media_id: str | None = None
    media_type: MediaType | None = None
    blurhash: str | None = Field(
        default=None,
        description="BlurHash (4x3 components) of the image or video poster: a placeholder "
        "to paint until the media loads; null while processing.",
    )


class TrayEntry(Record):
    avro_record: ClassVar[str] = "TrayEntry"

    author_id: str
    story_ids: tuple[str, ...]
    latest_story_at: UtcDatetime
    has_unseen: bool


class Tray(Record):
    avro_record: ClassVar[str] = "Tray"

    user_id: str
    entries: tuple[TrayEntry, ...]


class ViewCount(Record):
    avro_record: ClassVar[str] = "ViewCount"

    story_id: str
    unique_viewers: AvroLong
    total_views: AvroLong
    sketch: Base64Bytes


class StoryViewer(Record):
    avro_record: ClassVar[str] = "StoryViewer"

    story_id: str
    viewer_id: str
    first_viewed_at: UtcDatetime


class ReactionCounts(Record):
    avro_record: ClassVar[str] = "ReactionCounts"

    story_id: str
    counts: dict[str, AvroLong]
    total: AvroLong


class DeadLetter(Record):
    avro_record: ClassVar[str] = "DeadLetter"

    source_topic: str
    partition: AvroInt
    offset: AvroLong
    error: str
    original_key: Base64Bytes | None = None
    original_value: Base64Bytes | None = None
    at: UtcDatetime


RECORD_TYPES: tuple[type[Record], ...] = (
    StoryState,
    TrayEntry,
    Tray,
    ViewCount,
    StoryViewer,
    ReactionCounts,
    DeadLetter,
)
