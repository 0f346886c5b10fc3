"""`storystream post`: the producer path for real media (upload the original, then the events)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connectors.object_store import ObjectStore, ObjectStoreError
from connectors.upload import UploadError, inspect_file, upload_original
from processors.media import media_kind
from schemas.events import Audience, parse_event
from schemas.types import Identifier
from streams.media_service import media_limits, object_store
from streams.publish import Encoder, Publisher
from streams.settings import Settings

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


class PostError(RuntimeError):
    """The story could not be posted; the message says why, for the command line."""


@dataclass(frozen=True)
class Posted:
    """What `post` created: the ids a client follows the story by."""

    story_id: str
    media_id: str
    media_type: str
    content_type: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "story_id": self.story_id,
            "media_id": self.media_id,
            "media_type": self.media_type,
            "content_type": self.content_type,
        }


def _identifier(name: str, value: str) -> str:
    try:
        return _IDENTIFIER.validate_python(value)
    except ValidationError:
        raise PostError(
            f"invalid {name} {value!r}: use 1 to 64 characters from A-Z, a-z, 0-9, _ and -"
        ) from None


def new_id() -> str:
    """A fresh identifier (this is the edge of the system: random ids are fine here)."""
    return uuid.uuid4().hex


def post_story(
    settings: Settings,
    media_path: Path,
    author_id: str,
    *,
    audience: Audience = "followers",
    story_id: str | None = None,
    media_id: str | None = None,
    now: datetime | None = None,
    store: ObjectStore | None = None,
) -> Posted:
    """Upload the media's original, then publish `media_uploaded` and `story_posted`.

    Everything is checked (ids, the file by its content) before anything is uploaded or
    published. `media_uploaded` is acknowledged before `story_posted` is sent, so a story never
    refers to an upload the log does not hold.
    """
    bootstrap = settings.bootstrap()
    author_id = _identifier("author id", author_id)
    story_id = _identifier("story id", story_id or new_id())
    media_id = _identifier("media id", media_id or new_id())
    limits = media_limits(settings)
    try:
        content_type, kind, _ = inspect_file(media_path, limits)
    except UploadError as exc:
        raise PostError(str(exc)) from None
    now = now or datetime.now(UTC)
    try:
        uploaded = upload_original(
            store or object_store(settings),
            media_path,
            author_id,
            media_id,
            at=now,
            story_id=story_id,
            limits=limits,
        )
    except UploadError as exc:  # the file changed since it was inspected
        raise PostError(str(exc)) from None
    except ObjectStoreError as exc:
        raise PostError(f"upload of {media_path} failed: {exc}") from None
    media_type = media_kind(uploaded["content_type"]) or kind
    posted = {
        "type": "story_posted",
        "story_id": story_id,
        "author_id": author_id,
        "created_at": now,
        "media_id": media_id,
        "media_type": media_type,
        "audience": audience,
    }
    events = [parse_event(uploaded, settings.story_ttl), parse_event(posted, settings.story_ttl)]
    encoder = Encoder(settings.schema_registry_url)
    publisher = Publisher(bootstrap, **{"linger.ms": 0})
    for event in events:  # one at a time: the upload is on the log before the story
        publisher.produce(*encoder.encode(event))
        if publisher.flush(60) or publisher.failed:
            failure = "; ".join(publisher.failed) or "not acknowledged within 60 s"
            raise PostError(f"publishing {event.avro_record} failed: {failure}")
    return Posted(story_id, media_id, media_type, uploaded["content_type"])
