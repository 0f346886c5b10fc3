"""The object store's protocol, its errors and what its adapters share (`s3_store`: S3 by
boto3; `memory_store`: an in-memory fake held to the same contract tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MIB = 1024 * 1024
MIN_PART_BYTES = 5 * MIB  # S3's least size of a multipart upload's part, but the last


class ObjectStoreError(RuntimeError):
    """An object-store operation failed (after retries, for transient errors)."""


class ObjectNotFound(ObjectStoreError):
    """The object (or multipart upload) does not exist."""


class PreconditionFailed(ObjectStoreError):
    """A conditional write lost: the object changed (or appeared) since it was read."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str


@dataclass(frozen=True)
class MultipartUpload:
    """A multipart upload begun and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


class ObjectStore(Protocol):
    """What the pipeline needs from object storage. Deletes and moves are idempotent."""

    def ensure_bucket(self) -> None: ...
    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> None: ...
    def put_file(self, key: str, path: Path, content_type: str = ...) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def download(self, key: str, path: Path) -> None: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def list_prefixes(self, prefix: str) -> list[str]: ...
    def copy(self, source: str, target: str) -> None: ...
    def move(self, source: str, target: str) -> None: ...
    def delete_keys(self, keys: list[str]) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def public_url(self, key: str) -> str: ...

    # Small objects changed in place by many writers: a version (the ETag) read with the
    # object, and writes that only succeed against it (PreconditionFailed otherwise).
    def get_versioned(self, key: str) -> tuple[bytes, str]: ...
    def put_versioned(
        self, key: str, data: bytes, content_type: str, *, expected: str | None
    ) -> str: ...

    # Multipart uploads: parts of at least MIN_PART_BYTES but the last, numbered from 1.
    def start_multipart(self, key: str, content_type: str) -> str: ...
    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str: ...
    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> None: ...
    def abort_multipart(self, key: str, upload_id: str) -> None: ...
    def list_multipart(self, prefix: str) -> list[MultipartUpload]: ...


def move_prefix(store: ObjectStore, source: str, target: str) -> list[tuple[str, str]]:
    """Move every object under `source` to the same name under `target`; safe to re-run.

    Returns the (old key, new key) pairs of what was moved by this call.
    """
    moved = []
    for key in store.list_keys(source):
        new_key = target + key.removeprefix(source)
        store.move(key, new_key)
        moved.append((key, new_key))
    return moved


def public_url_of(endpoint_url: str | None, bucket: str, region: str, key: str) -> str:
    path = quote(key, safe="/-_.~")
    if endpoint_url:  # path style: works with any S3-compatible server and plain HTTP
        return f"{endpoint_url.rstrip('/')}/{bucket}/{path}"
    return f"https://{bucket}.s3.{region}.amazonaws.com/{path}"
