"""Internal messages between keyed stages (repartitions): plain, JSON-serializable data.

msgspec Structs, not pydantic models: a StorySeen travels for nearly every view, and msgspec
decodes and validates a batch of them several times faster. `kind` is each type's tag in
JSON (the discriminator), not an attribute.

Stages and their keys (the wiring in `streams/` maps each stage to an internal topic):
  "story"     keyed story_id   story state (story-posted, story-highlights, story-deleted)
  "media"     keyed media_id   joins a story waiting for media with its media_transcoded
  "lifecycle" keyed story_id   tells the views/reactions stage what the story stage decided
  "author"    keyed author_id  follow graph and active stories of an author; fans out
  "tray"      keyed user_id    one user's tray
  "objects"   keyed media_id   object-store side effects (purge, move to highlights)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

import msgspec

from schemas.events import Audience, MediaType, Rendition


class Message(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"
):
    """A message of one of the types below, tagged with its `kind` in JSON."""


M = TypeVar("M", bound=Message)


def message_from_fields(kind: type[M], fields: Mapping[str, Any]) -> M:
    """A message of type `kind` from its fields (with its `kind` tag or without), validated:
    ValueError (msgspec's ValidationError) for a field of the wrong type or missing."""
    return msgspec.convert(fields, kind)


class AwaitMedia(Message, tag="await_media", frozen=True):
    """story -> media: this story becomes visible when `media_id` is transcoded."""

    story_id: str
    media_id: str


class MediaReady(Message, tag="media_ready", frozen=True):
    """media -> story: the story's media was transcoded (or failed: `error` set)."""

    story_id: str
    media_id: str
    renditions: tuple[Rendition, ...] = ()
    media_type: MediaType | None = None
    duration_ms: int | None = None
    error: str | None = None
    blurhash: str | None = None


class StoryOpened(Message, tag="story_opened", frozen=True):
    """story -> author: the story is active; fan it out to whoever may see it."""

    story_id: str
    author_id: str
    created_at: datetime
    expires_at: datetime
    audience: Audience


class StoryClosed(Message, tag="story_closed", frozen=True):
    """story -> author: the story left trays (expired, deleted or failed)."""

    story_id: str
    author_id: str


class StoryLifecycle(Message, tag="story_lifecycle", frozen=True):
    """story -> lifecycle: the phase views and reactions must respect.

    live: accept events; highlighted: expired but kept, accept events; ended: publish
    tombstones and accept nothing more; purged: drop all internal state.
    """

    story_id: str
    author_id: str
    expires_at: datetime
    phase: Literal["live", "highlighted", "ended", "purged"]


class StorySeen(Message, tag="story_seen", frozen=True):
    """lifecycle (views) -> tray: the tray's owner viewed this story."""

    user_id: str
    story_id: str
    at: datetime


class TrayStoryAdded(Message, tag="tray_story_added", frozen=True):
    """author -> tray: a story the tray's owner may see."""

    user_id: str
    author_id: str
    story_id: str
    created_at: datetime
    expires_at: datetime


class TrayStoryRemoved(Message, tag="tray_story_removed", frozen=True):
    """author -> tray: the story left the tray (expiry, delete, unfollow, audience)."""

    user_id: str
    author_id: str
    story_id: str


class CelebrityFollowChanged(Message, tag="celebrity_follow_changed", frozen=True):
    """author -> tray: the owner follows (or no longer follows) a celebrity merged on read."""

    user_id: str
    author_id: str
    following: bool


class MediaObjectsChanged(Message, tag="media_objects_changed", frozen=True):
    """story -> objects: purge a story's media, or move it under the long-term prefix."""

    media_id: str
    story_id: str
    action: Literal["purge", "move_to_highlights"]
