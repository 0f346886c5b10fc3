"""Internal messages between keyed stages (repartitions): plain, JSON-serializable data.

Stages and their keys (the wiring in `streams/` maps each stage to an internal topic):
  "story"     keyed story_id   story state (story-posted, story-highlights, story-deleted)
  "media"     keyed media_id   joins a story waiting for media with its media_transcoded
  "lifecycle" keyed story_id   tells the views/reactions stage what the story stage decided
  "author"    keyed author_id  follow graph and active stories of an author; fans out
  "tray"      keyed user_id    one user's tray
  "objects"   keyed media_id   object-store side effects (purge, move to highlights)
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.events import Audience, MediaType, Rendition


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AwaitMedia(Message):
    """story -> media: this story becomes visible when `media_id` is transcoded."""

    kind: Literal["await_media"] = "await_media"
    story_id: str
    media_id: str


class MediaReady(Message):
    """media -> story: the story's media was transcoded (or failed: `error` set)."""

    kind: Literal["media_ready"] = "media_ready"
    story_id: str
    media_id: str
    renditions: tuple[Rendition, ...] = ()
    media_type: MediaType | None = None
    duration_ms: int | None = None
    error: str | None = None
    blurhash: str | None = None


class StoryOpened(Message):
    """story -> author: the story is active; fan it out to whoever may see it."""

    kind: Literal["story_opened"] = "story_opened"
    story_id: str
    author_id: str
    created_at: datetime
    expires_at: datetime
    audience: Audience


class StoryClosed(Message):
    """story -> author: the story left trays (expired, deleted or failed)."""

    kind: Literal["story_closed"] = "story_closed"
    story_id: str
    author_id: str


class StoryLifecycle(Message):
    """story -> lifecycle: the phase views and reactions must respect.

    live: accept events; highlighted: expired but kept, accept events; ended: publish
    tombstones and accept nothing more; purged: drop all internal state.
    """

    kind: Literal["story_lifecycle"] = "story_lifecycle"
    story_id: str
    author_id: str
    expires_at: datetime
    phase: Literal["live", "highlighted", "ended", "purged"]


class StorySeen(Message):
    """lifecycle (views) -> tray: the tray's owner viewed this story."""

    kind: Literal["story_seen"] = "story_seen"
    user_id: str
    story_id: str
    at: datetime


class TrayStoryAdded(Message):
    """author -> tray: a story the tray's owner may see."""

    kind: Literal["tray_story_added"] = "tray_story_added"
    user_id: str
    author_id: str
    story_id: str
    created_at: datetime
    expires_at: datetime


class TrayStoryRemoved(Message):
    """author -> tray: the story left the tray (expiry, delete, unfollow, audience)."""

    kind: Literal["tray_story_removed"] = "tray_story_removed"
    user_id: str
    author_id: str
    story_id: str


class CelebrityFollowChanged(Message):
    """author -> tray: the owner follows (or no longer follows) a celebrity merged on read."""

    kind: Literal["celebrity_follow_changed"] = "celebrity_follow_changed"
    user_id: str
    author_id: str
    following: bool


class MediaObjectsChanged(Message):
    """story -> objects: purge a story's media, or move it under the long-term prefix."""

    kind: Literal["media_objects_changed"] = "media_objects_changed"
    media_id: str
    story_id: str
    action: Literal["purge", "move_to_highlights"]
