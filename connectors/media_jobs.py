"""The media jobs the wiring runs: transcode one upload, purge or move a media's objects.

Both do blocking I/O: call them in a thread (`asyncio.to_thread`), with a `Transcoder` so that
the CPU work happens in worker processes.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from connectors.object_store import ObjectNotFound, ObjectStore, move_prefix
from connectors.transcoder import TranscodeError, Transcoder, transcode_media
from processors.media import (
    DEFAULT_LIMITS,
    MediaLimits,
    check_size,
    plan_objects_change,
    rendition_key,
)
from processors.messages import MediaObjectsChanged
from schemas.events import MediaTranscoded, MediaUploaded, Rendition, derive_event_id

log = logging.getLogger(__name__)


def process_upload(
    store: ObjectStore,
    event: MediaUploaded,
    workdir: Path,
    now: datetime,
    *,
    transcoder: Transcoder | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> MediaTranscoded:
    """Transcode one upload into `media/{media_id}/...` and report it as MediaTranscoded.

    Bad media (and an original that no longer exists) gives an event with `error` set and no
    renditions; object-store failures raise ObjectStoreError so the caller can retry. A re-run
    writes the same keys and yields the same event id, so redelivery is harmless. Without a
    `transcoder` the work runs in this process (tests, benchmarks).
    """
    event_id = derive_event_id(f"media_transcoded:{event.event_id}".encode())

    def failed(reason: str) -> MediaTranscoded:
        log.warning("media %s rejected: %s", event.media_id, reason)
        return MediaTranscoded(
            event_id=event_id, media_id=event.media_id, renditions=[], at=now, error=reason
        )

    Path(workdir).mkdir(parents=True, exist_ok=True)
    job = Path(tempfile.mkdtemp(prefix=f"{event.media_id}-", dir=workdir))
    try:
        info = store.head(event.object_key)
        if info is None:
            return failed(f"original not found: {event.object_key}")
        reason = check_size(info.size, limits)
        if reason:
            return failed(reason)
        source = job / "original"
        try:
            store.download(event.object_key, source)
        except ObjectNotFound:
            return failed(f"original not found: {event.object_key}")
        out_dir = job / "renditions"
        try:
            if transcoder is not None:
                result = transcoder.transcode_media(source, out_dir)
            else:
                result = transcode_media(source, out_dir, limits=limits)
        except TranscodeError as exc:
            return failed(str(exc))
        renditions = []
        for produced in result.renditions:
            key = rendition_key(event.media_id, produced.spec)
            store.put_file(key, produced.path, produced.content_type)
            renditions.append(
                Rendition(
                    name=produced.spec.name,
                    url=store.public_url(key),
                    width=produced.width,
                    height=produced.height,
                    content_type=produced.content_type,
                )
            )
        return MediaTranscoded(
            event_id=event_id,
            media_id=event.media_id,
            renditions=renditions,
            at=now,
            duration_ms=result.duration_ms,
            blurhash=result.blurhash,
        )
    finally:
        shutil.rmtree(job, ignore_errors=True)


@dataclass(frozen=True)
class MovedObject:
    old_key: str
    new_key: str
    url: str


def apply_objects_change(store: ObjectStore, change: MediaObjectsChanged) -> list[MovedObject]:
    """Carry out a purge or a move to highlights; safe to re-run after a crash.

    Returns what this call moved (with the new public URLs); a purge returns nothing.
    """
    plan = plan_objects_change(change.media_id, change.action)
    for prefix in plan.delete_prefixes:
        store.delete_prefix(prefix)
    moved = []
    for source, target in plan.move_prefixes:
        for old, new in move_prefix(store, source, target):
            moved.append(MovedObject(old, new, store.public_url(new)))
    return moved
