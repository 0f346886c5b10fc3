"""The producer side of `storystream post`: check a media file by content and upload it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.object_store import ObjectStore
from processors.media import (
    DEFAULT_LIMITS,
    SNIFF_BYTES,
    MediaKind,
    MediaLimits,
    check_size,
    media_kind,
    original_key,
    sniff_content_type,
)


class UploadError(ValueError):
    """The file cannot be posted (missing, empty, too large or not a supported media type)."""


def inspect_file(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> tuple[str, MediaKind, int]:
    """The sniffed content type, kind and size of a local media file, or UploadError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError as exc:
        raise UploadError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    reason = check_size(size, limits)
    if reason:
        raise UploadError(f"{path}: {reason}")
    content_type = sniff_content_type(head)
    kind = media_kind(content_type)
    if kind is None or content_type is None:
        found = f"detected {content_type}" if content_type else "content not recognised"
        raise UploadError(
            f"{path}: not a supported image or video ({found}); "
            "post a JPEG, PNG, WebP, GIF, MP4, MOV, WebM or Matroska file"
        )
    return content_type, kind, size


def default_credentials_found() -> bool:
    """Whether boto3's default chain (environment, ~/.aws, an instance role) has S3 keys."""
    import botocore.session  # here: only `post` without keys of its own needs it

    return botocore.session.Session().get_credentials() is not None


def upload_original(
    store: ObjectStore,
    path: Path,
    author_id: str,
    media_id: str,
    *,
    at: datetime | None = None,
    story_id: str | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Upload the file to `uploads/{media_id}/original`; return the MediaUploaded fields.

    The content type comes from the file's bytes, never its name. `at` (the event time) is
    included when given; the caller adds it otherwise, with its clock.
    """
    content_type, kind, size = inspect_file(path, limits)
    key = original_key(media_id)
    store.put_file(key, Path(path), content_type)
    fields: dict[str, Any] = {
        "type": "media_uploaded",
        "media_id": media_id,
        "author_id": author_id,
        "object_key": key,
        "content_type": content_type,
        "size_bytes": size,
    }
    if at is not None:
        fields["at"] = at
    if story_id is not None:
        fields["story_id"] = story_id
    return fields
