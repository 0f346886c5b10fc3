"""Factories for the story, media-join and expiry tests: events, messages, contexts, views."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from processors.context import Ctx, Forward, Output, Policy, Put, Tombstone
from processors.messages import MediaReady
from schemas.events import (
    HighlightChanged,
    MediaTranscoded,
    Rendition,
    StoryDeleted,
    StoryPosted,
)
from schemas.records import Record

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TTL_MIN = 24 * 60
GRACE_MIN = 120
STORY = "s1"
AUTHOR = "author"
MEDIA = "m1"


def at(minutes: float = 0) -> datetime:
    """`minutes` after T0, at millisecond precision (as events carry it)."""
    moment = T0 + timedelta(minutes=minutes)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def ctx(minutes: float = 0, *, grace: float = GRACE_MIN) -> Ctx:
    """A context whose clock reads `minutes` after T0."""
    return Ctx(now=at(minutes), policy=Policy(expiry_grace=timedelta(minutes=grace)))


def rendition(name: str = "720", content_type: str = "image/jpeg") -> Rendition:
    """A ready rendition."""
    return Rendition(
        name=name,
        url=f"https://cdn.example.com/media/{name}.jpg",
        width=720,
        height=1280,
        content_type=content_type,
    )


def posted(
    story_id: str = STORY,
    *,
    author_id: str = AUTHOR,
    minutes: float = 0,
    ttl: float = TTL_MIN,
    media_id: str | None = None,
    ready: bool = False,
    audience: str = "followers",
) -> StoryPosted:
    """A post at `minutes`, expiring `ttl` minutes later; `ready` gives ready renditions."""
    return StoryPosted.model_validate(
        {
            "story_id": story_id,
            "author_id": author_id,
            "created_at": at(minutes),
            "expires_at": at(minutes + ttl),
            "media_id": media_id,
            "media": [rendition()] if ready else None,
            "audience": audience,
        }
    )


def highlight(
    added: bool = True,
    highlight_id: str = "h1",
    *,
    story_id: str = STORY,
    author_id: str = AUTHOR,
    minutes: float = 0,
) -> HighlightChanged:
    """A highlight added to (or removed from) a story at `minutes`."""
    return HighlightChanged.model_validate(
        {
            "type": "highlight_added" if added else "highlight_removed",
            "story_id": story_id,
            "author_id": author_id,
            "highlight_id": highlight_id,
            "at": at(minutes),
        }
    )


def deleted(story_id: str = STORY, *, author_id: str = AUTHOR, minutes: float = 0) -> StoryDeleted:
    """The author deleting the story at `minutes`."""
    return StoryDeleted.model_validate(
        {"story_id": story_id, "author_id": author_id, "deleted_at": at(minutes)}
    )


def transcoded(
    media_id: str = MEDIA,
    *,
    minutes: float = 0,
    error: str | None = None,
    blurhash: str | None = None,
) -> MediaTranscoded:
    """The transcode result of a media (failed when `error` is given)."""
    return MediaTranscoded.model_validate(
        {
            "media_id": media_id,
            "renditions": [] if error else [rendition()],
            "at": at(minutes),
            "error": error,
            "blurhash": blurhash,
        }
    )


def ready(
    story_id: str = STORY,
    media_id: str = MEDIA,
    *,
    error: str | None = None,
    blurhash: str | None = None,
) -> MediaReady:
    """The media stage telling a story its media is ready (or failed)."""
    renditions = () if error else (rendition(),)
    media_type = None if error else "image"
    return MediaReady(
        story_id=story_id,
        media_id=media_id,
        renditions=renditions,
        media_type=media_type,
        error=error,
        blurhash=blurhash,
    )


def latest_per_key(outputs: Iterable[Output]) -> dict[tuple[str, str], Record]:
    """The compacted view of the outputs: (record type, key) -> last value, tombstones dropped."""
    view: dict[tuple[str, str], Record] = {}
    for output in outputs:
        if isinstance(output, Put):
            view[(output.value.avro_record, output.key)] = output.value
        elif isinstance(output, Tombstone):
            view.pop((output.record.avro_record, output.key), None)
    return view


def forwards(outputs: Iterable[Output], stage: str) -> list[object]:
    """The messages forwarded to `stage`, in order."""
    return [o.message for o in outputs if isinstance(o, Forward) and o.stage == stage]
