"""Resumable uploads into the object store: sessions any worker can continue.

A session is a small JSON object (`upload-sessions/{id}/state.json`) changed only by versioned
writes, so two workers never both move an upload on. Its bytes go into an S3 multipart upload
of `uploads/{id}/original` in parts of a fixed size (part n holds bytes [(n-1)P, nP), so a
part sent again is the same part); bytes short of a whole part wait in a pending object named
by the range it holds. Blocking calls: the HTTP API runs them in an executor.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from connectors.object_store import MIN_PART_BYTES, ObjectNotFound, ObjectStore, PreconditionFailed
from processors.media import (
    DEFAULT_LIMITS,
    IMAGE_TYPES,
    SNIFF_BYTES,
    VIDEO_TYPES,
    MediaLimits,
    check_size,
    media_kind,
    original_key,
    sniff_content_type,
)

log = logging.getLogger(__name__)
SESSIONS = "upload-sessions/"
MAX_PARTS = 10_000  # S3's


class UploadRefused(ValueError):
    """The upload cannot be taken: `field` names what is wrong; `kind` says how (`invalid`,
    `too_large`, `unsupported`)."""

    def __init__(
        self, field: str, reason: str, kind: Literal["invalid", "too_large", "unsupported"]
    ) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.kind = kind


class UploadNotFound(LookupError):
    """No such upload (never made, abandoned and swept, or its id mistyped)."""


class UploadConflict(RuntimeError):
    """The bytes do not start where the upload stands (or another request moved it on)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Session(BaseModel):
    """One upload's state, as stored."""

    model_config = ConfigDict(frozen=True)

    upload_id: str
    author_id: str
    size: int
    declared_type: str
    content_type: str | None = None  # sniffed from its first bytes
    part_bytes: int
    multipart_id: str
    parts: list[tuple[int, str]] = []  # (number, ETag) of the whole parts stored
    pending: str | None = None  # the key of the bytes after the last whole part
    offset: int = 0
    complete: bool = False
    posted: dict[str, Any] | None = None  # what the story post sent (for its retries)
    abandoned: bool = False  # claimed by a sweep: gone for everyone else
    created_at: datetime
    updated_at: datetime

    @property
    def object_key(self) -> str:
        return original_key(self.upload_id)


def state_key(upload_id: str) -> str:
    return f"{SESSIONS}{upload_id}/state.json"


class Uploads:
    """Upload sessions in `store`; `clock` gives the times they are stamped with."""

    def __init__(
        self,
        store: ObjectStore,
        clock: Callable[[], datetime],
        limits: MediaLimits = DEFAULT_LIMITS,
        part_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (S3's least part)")
        self.store = store
        self.clock = clock
        self.limits = limits
        self.part_bytes = part_bytes

    def create(self, author_id: str, size: int, content_type: str) -> Session:
        """A new session for `size` bytes of an image or video; UploadRefused otherwise."""
        reason = check_size(size, self.limits)
        if reason:
            kind: Literal["invalid", "too_large"] = "too_large" if size > 0 else "invalid"
            raise UploadRefused("size", reason, kind)
        if content_type not in IMAGE_TYPES | VIDEO_TYPES:
            supported = ", ".join(sorted(IMAGE_TYPES | VIDEO_TYPES))
            raise UploadRefused("content_type", f"must be one of {supported}", "invalid")
        upload_id = uuid.uuid4().hex
        part_bytes = max(self.part_bytes, -(-size // MAX_PARTS))
        multipart_id = self.store.start_multipart(original_key(upload_id), content_type)
        now = self.clock()
        session = Session(
            upload_id=upload_id,
            author_id=author_id,
            size=size,
            declared_type=content_type,
            part_bytes=part_bytes,
            multipart_id=multipart_id,
            created_at=now,
            updated_at=now,
        )
        try:
            self._write(session, None)
        except BaseException:
            self.store.abort_multipart(session.object_key, multipart_id)
            raise
        return session

    def load(self, upload_id: str) -> tuple[Session, str]:
        """The session and its version; UploadNotFound (an abandoned one too)."""
        session, version = self._read(upload_id)
        if session.abandoned:
            raise UploadNotFound(f"no upload {upload_id} (abandoned)")
        return session, version

    def _read(self, upload_id: str) -> tuple[Session, str]:
        try:
            data, version = self.store.get_versioned(state_key(upload_id))
        except ObjectNotFound:
            raise UploadNotFound(f"no upload {upload_id}") from None
        return Session.model_validate_json(data), version

    def _write(self, session: Session, version: str | None) -> str:
        data = session.model_dump_json().encode()
        return self.store.put_versioned(
            state_key(session.upload_id), data, "application/json", expected=version
        )

    def append(self, upload_id: str, start: int, data: bytes) -> Session:
        """Take `data`, bytes from `start` on. Bytes the upload holds already are skipped (a
        chunk sent again); UploadConflict when `start` is past where the upload stands, or
        when another request moved it on meanwhile; UploadRefused (and the upload is dropped)
        when its first bytes are not a supported image or video."""
        session, version = self.load(upload_id)
        if session.complete:
            raise UploadConflict(f"upload {upload_id} is complete", session.offset)
        if start > session.offset:
            raise UploadConflict(
                f"bytes from {start} sent, but the upload holds {session.offset} bytes: "
                f"send from {session.offset}",
                session.offset,
            )
        data = data[session.offset - start :]
        end = session.offset + len(data)
        if end > session.size:
            raise UploadRefused("range", f"bytes past the declared size {session.size}", "invalid")
        if not data:
            return session
        pending = self.store.get_bytes(session.pending) if session.pending else b""
        base = session.offset - len(pending)  # where the buffer starts: a part's start
        buffer = pending + data
        content_type = session.content_type
        if content_type is None and (len(buffer) >= SNIFF_BYTES or end == session.size):
            content_type = self._sniff(session, buffer[:SNIFF_BYTES])
        size = session.part_bytes
        parts = list(session.parts)
        cut = 0
        while len(buffer) - cut >= size:
            parts.append(self._part(session, base + cut, buffer[cut : cut + size]))
            cut += size
        rest = buffer[cut:]
        new_pending: str | None = None
        if end == session.size:
            if rest or not parts:
                parts.append(self._part(session, base + cut, rest))
            self.store.complete_multipart(session.object_key, session.multipart_id, parts)
        elif rest:
            new_pending = f"{SESSIONS}{upload_id}/pending-{base + cut}-{end}"
            self.store.put_bytes(new_pending, rest)
        moved = session.model_copy(
            update={
                "parts": parts,
                "pending": new_pending,
                "offset": end,
                "content_type": content_type,
                "complete": end == session.size,
                "updated_at": self.clock(),
            }
        )
        try:
            self._write(moved, version)
        except PreconditionFailed:
            now, _ = self.load(upload_id)
            raise UploadConflict(
                f"upload {upload_id} was moved on by another request: it holds {now.offset} bytes",
                now.offset,
            ) from None
        if session.pending and session.pending != new_pending:
            self.store.delete_keys([session.pending])
        return moved

    def _part(self, session: Session, start: int, data: bytes) -> tuple[int, str]:
        number = start // session.part_bytes + 1
        tag = self.store.upload_part(session.object_key, session.multipart_id, number, data)
        return number, tag

    def _sniff(self, session: Session, head: bytes) -> str:
        """The content type of the upload's first bytes (never the client's word for it);
        UploadRefused, and the upload dropped, unless it is the supported type declared."""
        found = sniff_content_type(head)
        if found is None or media_kind(found) is None:
            self.drop(session)
            detected = f"detected {found}" if found else "content not recognised"
            raise UploadRefused(
                "content",
                f"not a supported image or video ({detected}); the upload is dropped",
                "unsupported",
            )
        if found != session.declared_type:
            self.drop(session)
            raise UploadRefused(
                "content_type",
                f"declared {session.declared_type}, but the bytes are {found}; "
                "the upload is dropped",
                "invalid",
            )
        return found

    def mark_posted(self, upload_id: str, posted: dict[str, Any]) -> Session:
        """Record what posting the upload as a story sent (first come wins: UploadConflict
        if it was posted meanwhile)."""
        session, version = self.load(upload_id)
        if session.posted is not None:
            raise UploadConflict(f"upload {upload_id} was posted already", session.offset)
        marked = session.model_copy(update={"posted": posted, "updated_at": self.clock()})
        try:
            self._write(marked, version)
        except PreconditionFailed:
            raise UploadConflict(f"upload {upload_id} changed meanwhile", session.offset) from None
        return marked

    def drop(self, session: Session, keep_original: bool = False) -> None:
        """Abort the multipart upload and delete the session's objects (idempotent)."""
        if not session.complete:
            self.store.abort_multipart(session.object_key, session.multipart_id)
        elif not keep_original:
            self.store.delete_keys([session.object_key])
        self.store.delete_prefix(f"{SESSIONS}{session.upload_id}/")

    def sweep(self, older_than: timedelta) -> int:
        """Drop the sessions untouched for `older_than` (a posted one keeps its original: the
        story owns it now), and multipart uploads with no session that old; how many."""
        cutoff = self.clock() - older_than
        swept = 0
        known: set[str] = set()
        for key in self.store.list_keys(SESSIONS):
            if not key.endswith("/state.json"):
                continue
            upload_id = key.removeprefix(SESSIONS).split("/", 1)[0]
            known.add(upload_id)
            try:
                session, version = self._read(upload_id)
            except UploadNotFound:
                continue
            if session.updated_at >= cutoff and not session.abandoned:
                continue
            try:  # claim it: a request that moved it on meanwhile wins, and it stays
                if not session.abandoned:  # else a sweep claimed it and stopped short
                    self._write(session.model_copy(update={"abandoned": True}), version)
            except PreconditionFailed:
                continue
            self.drop(session, keep_original=session.posted is not None)
            swept += 1
        for upload in self.store.list_multipart("uploads/"):
            upload_id = upload.key.removeprefix("uploads/").split("/", 1)[0]
            if upload_id not in known and upload.initiated < cutoff:
                self.store.abort_multipart(upload.key, upload.upload_id)
                swept += 1
        if swept:
            log.info("swept %d abandoned uploads", swept)
        return swept
