"""`storystream post`: the producer path for real media (upload the original, then the events)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connectors.object_store import ObjectStore, ObjectStoreError
from connectors.upload import UploadError, default_credentials_found, inspect_file, upload_original
from processors.media import media_kind
from schemas.events import Audience, parse_event
from schemas.types import Identifier
from streams.client.producer import DeliveryError
from streams.client.sync import EventClient
from streams.settings import Settings
from streams.worker.media import media_limits, object_store

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


class PostError(RuntimeError):
    """The story could not be posted; the message says why, for the command line."""


class WaitTimeout(PostError):
    """The story was posted, but its transcode result did not come within the wait."""


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
    if store is None:
        missing = missing_object_store(settings)
        if missing:
            raise PostError(missing)
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
    client = EventClient(
        bootstrap, registry_url=settings.schema_registry_url, producer={"linger.ms": 0}
    )
    try:
        for event in events:  # one at a time: the upload is on the log before the story
            try:
                client.publish(event).result(timeout=60)
            except (DeliveryError, TimeoutError) as exc:
                failure = str(exc) or "not acknowledged within 60 s"
                raise PostError(f"publishing {event.avro_record} failed: {failure}") from None
    finally:
        client.close(5)
    return Posted(story_id, media_id, media_type, uploaded["content_type"])


def missing_object_store(settings: Settings) -> str | None:
    """What `post` lacks to reach an object store (said in settings' terms), or None."""
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        return None
    if default_credentials_found():  # AWS itself, keys from the environment or a role
        return None
    if settings.s3_endpoint_url:
        return (
            f"no credentials for the object store at {settings.s3_endpoint_url}: set "
            "STORYSTREAM_S3_ACCESS_KEY_ID and STORYSTREAM_S3_SECRET_ACCESS_KEY"
        )
    return (
        "no object store to upload to: no `storystream dev` is running with the data directory "
        f"{settings.data_dir.absolute()} (STORYSTREAM_DATA_DIR), and STORYSTREAM_S3_ENDPOINT_URL "
        "is not set. Set STORYSTREAM_DATA_DIR to the data directory of the running dev (where "
        "its dev.json is), or STORYSTREAM_S3_ENDPOINT_URL with STORYSTREAM_S3_ACCESS_KEY_ID and "
        "STORYSTREAM_S3_SECRET_ACCESS_KEY"
    )


def wait_for_story(
    api_url: str,
    token: str,
    story_id: str,
    timeout: float,
    *,
    every: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The story's JSON once its media is done (active or highlighted) or has failed (status
    `failed`, `error`), polling `GET /stories/{story_id}` as its author (`token`).

    A 404 (the post not processed yet), an answer of 5xx or no answer (a worker restarting) is
    waited through; WaitTimeout after `timeout` seconds names the last answer; PostError when
    the API refuses the token.
    """
    url = f"{api_url.rstrip('/')}/stories/{story_id}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    deadline = clock() + timeout
    last = "none"
    while True:
        try:
            with urllib.request.urlopen(request, timeout=max(1.0, every * 4)) as answer:
                story = json.loads(answer.read())
            if not isinstance(story, dict):
                raise ValueError(f"not a story: {story!r:.80}")
            if story.get("status") != "processing":
                return story
            last = "status processing"
        except urllib.error.HTTPError as exc:
            reason = _error_of(exc)
            if exc.code in (401, 403):
                raise PostError(
                    f"the API at {api_url} refused the author's token ({exc.code}: {reason}); "
                    "is STORYSTREAM_API_SECRET the workers' secret?"
                ) from None
            last = f"{exc.code}: {reason}"
        except (OSError, ValueError) as exc:  # no answer, or not JSON
            last = f"no answer: {getattr(exc, 'reason', exc)}"
        if clock() >= deadline:
            raise WaitTimeout(
                f"story {story_id}: no transcode result after {timeout:g} s "
                f"(last answer from {url}: {last})"
            )
        sleep(every)


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (OSError, ValueError, AttributeError):
        return str(exc.reason)
