"""Input events of the contract (section 3): pydantic models mirroring the Avro schemas."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, model_validator

from schemas.types import (
    DEFAULT_STORY_TTL,
    MAX_MILLIS,
    MAX_REPLY_CHARS,
    Identifier,
    Reaction,
    UtcDatetime,
    avro_integer,
    from_millis,
)

# A blurhash of the most components (9x9): 4 characters of header and 2 for each component.
MAX_BLURHASH_CHARS = 4 + 2 * 81

# Copying a ready hasher costs less than making one from its parameters (~0.2 us a line).
_EVENT_ID_HASH = hashlib.blake2b(digest_size=16)


def derive_event_id(content: bytes) -> str:
    """A deterministic event id from the event's content: re-publishing it is a duplicate."""
    digest = _EVENT_ID_HASH.copy()
    digest.update(content)
    return digest.hexdigest()


Audience = Literal["followers", "close_friends", "public"]
MediaType = Literal["image", "video"]


class Rendition(BaseModel):
    """A ready-to-download rendition of a story's media."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    url: str = Field(pattern=r"^https?://")
    width: Annotated[int, avro_integer("int", ge=1)]
    height: Annotated[int, avro_integer("int", ge=1)]
    content_type: str = Field(min_length=3, max_length=128)


class Event(BaseModel):
    """Base of every input event: an `event_id`, derived from the content when absent."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    avro_record: ClassVar[str]
    time_field: ClassVar[str]

    event_id: Identifier

    @model_validator(mode="before")
    @classmethod
    def _derive_event_id(cls, data: Any, info: ValidationInfo) -> Any:
        # A content-derived id makes re-publishing the same line a duplicate, not a new event.
        # The caller may pass one derived from the raw line (cheaper) in the context.
        if isinstance(data, dict) and data.get("event_id") is None:
            event_id = (info.context or {}).get("event_id")
            if event_id is None:
                canonical = json.dumps(
                    {k: v for k, v in data.items() if k != "event_id"}, sort_keys=True, default=str
                )
                event_id = derive_event_id(canonical.encode())
            data = {**data, "event_id": event_id}
        return data

    @property
    def occurred_at(self) -> datetime:
        """The event's own time (event time)."""
        value: datetime = getattr(self, self.time_field)
        return value


_NO_EXPIRY = datetime(9999, 12, 31, tzinfo=UTC)
_LAST_TIME = from_millis(MAX_MILLIS)


class StoryPosted(Event):
    avro_record: ClassVar[str] = "StoryPosted"
    time_field: ClassVar[str] = "created_at"

    type: Literal["story_posted"] = "story_posted"
    story_id: Identifier
    author_id: Identifier
    created_at: UtcDatetime
    expires_at: UtcDatetime
    media_id: Identifier | None = None
    media: list[Rendition] | None = None
    media_type: MediaType | None = None
    audience: Audience = "followers"
    mentions: list[Identifier] = []
    hashtags: list[Annotated[str, Field(min_length=1, max_length=100)]] = []
    location: Annotated[str, Field(max_length=200)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_expiry(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and data.get("expires_at") is None and "created_at" in data:
            ttl = (info.context or {}).get("story_ttl", DEFAULT_STORY_TTL)
            try:
                created = _UTC.validate_python(data["created_at"])
            except ValueError:  # created_at's error suffices: a placeholder that passes
                return {**data, "expires_at": _NO_EXPIRY}
            if created > _LAST_TIME - ttl:
                raise ValueError(
                    f"expires_at: created_at + the story TTL ({ttl}) is after {_LAST_TIME:%Y-%m-%d}"
                    ": give expires_at"
                )
            data = {**data, "expires_at": created + ttl}
        return data

    @model_validator(mode="after")
    def _expires_after_creation(self) -> StoryPosted:
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        return self


class StoryViewed(Event):
    avro_record: ClassVar[str] = "StoryViewed"
    time_field: ClassVar[str] = "viewed_at"

    type: Literal["story_viewed"] = "story_viewed"
    story_id: Identifier
    viewer_id: Identifier
    viewed_at: UtcDatetime


class StoryReacted(Event):
    avro_record: ClassVar[str] = "StoryReacted"
    time_field: ClassVar[str] = "reacted_at"

    type: Literal["story_reacted"] = "story_reacted"
    story_id: Identifier
    user_id: Identifier
    reaction: Reaction
    reacted_at: UtcDatetime
    text: Annotated[str, Field(max_length=MAX_REPLY_CHARS)] | None = None


class HighlightChanged(Event):
    avro_record: ClassVar[str] = "HighlightChanged"
    time_field: ClassVar[str] = "at"

    type: Literal["highlight_added", "highlight_removed"]
    story_id: Identifier
    author_id: Identifier
    highlight_id: Identifier
    at: UtcDatetime
    title: Annotated[str, Field(max_length=200)] | None = None


class StoryDeleted(Event):
    avro_record: ClassVar[str] = "StoryDeleted"
    time_field: ClassVar[str] = "deleted_at"

    type: Literal["story_deleted"] = "story_deleted"
    story_id: Identifier
    author_id: Identifier
    deleted_at: UtcDatetime


class FollowChanged(Event):
    """`user_followed` / `user_unfollowed`."""

    avro_record: ClassVar[str] = "FollowChanged"
    time_field: ClassVar[str] = "at"

    type: Literal["user_followed", "user_unfollowed"]
    follower_id: Identifier
    followee_id: Identifier
    at: UtcDatetime


class CloseFriendChanged(Event):
    """`close_friend_added` / `close_friend_removed` (on the `user_id`'s list)."""

    avro_record: ClassVar[str] = "FollowChanged"
    time_field: ClassVar[str] = "at"

    type: Literal["close_friend_added", "close_friend_removed"]
    user_id: Identifier
    friend_id: Identifier
    at: UtcDatetime


class MediaUploaded(Event):
    avro_record: ClassVar[str] = "MediaUploaded"
    time_field: ClassVar[str] = "at"

    type: Literal["media_uploaded"] = "media_uploaded"
    media_id: Identifier
    author_id: Identifier
    object_key: Annotated[str, Field(min_length=1, max_length=1024)]
    content_type: Annotated[str, Field(min_length=3, max_length=128)]
    at: UtcDatetime
    size_bytes: Annotated[int, avro_integer("long", ge=0)] | None = None
    story_id: Identifier | None = None


class MediaTranscoded(Event):
    avro_record: ClassVar[str] = "MediaTranscoded"
    time_field: ClassVar[str] = "at"

    type: Literal["media_transcoded"] = "media_transcoded"
    media_id: Identifier
    renditions: list[Rendition]
    at: UtcDatetime
    duration_ms: Annotated[int, avro_integer("long", ge=0)] | None = None
    error: str | None = None
    blurhash: Annotated[str, Field(min_length=6, max_length=MAX_BLURHASH_CHARS)] | None = None


InputEvent = Annotated[
    StoryPosted
    | StoryViewed
    | StoryReacted
    | HighlightChanged
    | StoryDeleted
    | FollowChanged
    | CloseFriendChanged
    | MediaUploaded
    | MediaTranscoded,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[InputEvent] = TypeAdapter(InputEvent)
EVENT_TYPES: tuple[type[Event], ...] = (
    StoryPosted,
    StoryViewed,
    StoryReacted,
    HighlightChanged,
    StoryDeleted,
    FollowChanged,
    CloseFriendChanged,
    MediaUploaded,
    MediaTranscoded,
)
_UTC: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


def parse_event(data: dict[str, Any], story_ttl: timedelta = DEFAULT_STORY_TTL) -> Event:
    """Validate one JSON object into its event model (raises pydantic.ValidationError)."""
    event: Event = EVENT_ADAPTER.validate_python(data, context={"story_ttl": story_ttl})
    return event
