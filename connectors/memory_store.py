"""An in-memory object store with the S3 adapter's behaviour (the same contract tests)."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from connectors.object_store import (
    DEFAULT_CONTENT_TYPE,
    MIN_PART_BYTES,
    MultipartUpload,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    PreconditionFailed,
    public_url_of,
)


class InMemoryObjectStore:
    """A fake with the S3 adapter's behaviour (checked by the same contract tests)."""

    def __init__(
        self,
        bucket: str = "storystream-media",
        *,
        endpoint_url: str | None = "http://objects.invalid",
        region: str = "us-east-1",
        create_bucket: bool = True,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self._objects: dict[str, tuple[bytes, str]] = {}
        # upload id -> (key, content type, parts by number, when it began)
        self._uploads: dict[str, tuple[str, str, dict[int, bytes], datetime]] = {}
        self._exists = create_bucket
        self._lock = threading.Lock()

    def _check_bucket(self, key: str) -> None:
        if not self._exists:
            raise ObjectStoreError(
                f"s3://{self.bucket}/{key}: bucket {self.bucket!r} does not exist"
            )

    def _get(self, action: str, key: str) -> tuple[bytes, str]:
        self._check_bucket(key)
        try:
            return self._objects[key]
        except KeyError:
            raise ObjectNotFound(f"{action} s3://{self.bucket}/{key}: no such object") from None

    def ensure_bucket(self) -> None:
        self._exists = True

    def put_bytes(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        with self._lock:
            self._check_bucket(key)
            self._objects[key] = (bytes(data), content_type)

    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ObjectStoreError(f"upload {path} to s3://{self.bucket}/{key}: {exc}") from exc
        self.put_bytes(key, data, content_type)

    def get_bytes(self, key: str) -> bytes:
        with self._lock:
            return self._get("get", key)[0]

    def download(self, key: str, path: Path) -> None:
        data = self.get_bytes(key)
        try:
            Path(path).write_bytes(data)
        except OSError as exc:
            raise ObjectStoreError(f"download s3://{self.bucket}/{key} to {path}: {exc}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        with self._lock:
            self._check_bucket(key)
            found = self._objects.get(key)
        return None if found is None else ObjectInfo(key, len(found[0]), found[1])

    def list_keys(self, prefix: str) -> list[str]:
        with self._lock:
            self._check_bucket(prefix)
            return sorted(k for k in self._objects if k.startswith(prefix))

    def list_prefixes(self, prefix: str) -> list[str]:
        with self._lock:
            self._check_bucket(prefix)
            found = {
                prefix + k[len(prefix) :].split("/", 1)[0] + "/"
                for k in self._objects
                if k.startswith(prefix) and "/" in k[len(prefix) :]
            }
        return sorted(found)

    def copy(self, source: str, target: str) -> None:
        with self._lock:
            self._objects[target] = self._get("copy", source)

    def move(self, source: str, target: str) -> None:
        with self._lock:
            self._check_bucket(source)
            if source not in self._objects:
                if target in self._objects:
                    return
                raise ObjectNotFound(
                    f"move s3://{self.bucket}/{source} -> {target}: neither exists"
                )
            self._objects[target] = self._objects.pop(source)

    def delete_keys(self, keys: list[str]) -> None:
        with self._lock:
            self._check_bucket(keys[0] if keys else "")
            for key in keys:
                self._objects.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete the whole bucket (empty prefix)")
        keys = self.list_keys(prefix)
        self.delete_keys(keys)
        return len(keys)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        with self._lock:
            data = self._get("get", key)[0]
        return data, _etag(data)

    def put_versioned(
        self, key: str, data: bytes, content_type: str, *, expected: str | None
    ) -> str:
        with self._lock:
            self._check_bucket(key)
            found = self._objects.get(key)
            current = None if found is None else _etag(found[0])
            if current != expected:
                raise PreconditionFailed(f"put s3://{self.bucket}/{key}: changed since it was read")
            self._objects[key] = (bytes(data), content_type)
        return _etag(data)

    def start_multipart(self, key: str, content_type: str) -> str:
        with self._lock:
            self._check_bucket(key)
            upload_id = uuid.uuid4().hex
            self._uploads[upload_id] = (key, content_type, {}, datetime.now(UTC))
        return upload_id

    def _upload(self, action: str, key: str, upload_id: str) -> dict[int, bytes]:
        found = self._uploads.get(upload_id)
        if found is None or found[0] != key:
            raise ObjectNotFound(f"{action} s3://{self.bucket}/{key}: no such upload")
        return found[2]

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        if not 1 <= number <= 10_000:
            raise ObjectStoreError(f"upload part s3://{self.bucket}/{key}: InvalidArgument part")
        with self._lock:
            self._upload("upload part", key, upload_id)[number] = bytes(data)
        return _etag(data)

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> None:
        target = f"s3://{self.bucket}/{key}"
        with self._lock:
            stored = self._upload("complete multipart", key, upload_id)
            numbers = [number for number, _ in parts]
            if not parts or numbers != sorted(set(numbers)):
                raise ObjectStoreError(f"complete multipart {target} failed: InvalidPartOrder")
            chosen = []
            for number, tag in parts:
                data = stored.get(number)
                if data is None or _etag(data).strip('"') != tag.strip('"'):
                    raise ObjectStoreError(f"complete multipart {target} failed: InvalidPart")
                chosen.append(data)
            if any(len(data) < MIN_PART_BYTES for data in chosen[:-1]):
                raise ObjectStoreError(f"complete multipart {target} failed: EntityTooSmall")
            self._objects[key] = (b"".join(chosen), self._uploads.pop(upload_id)[1])

    def abort_multipart(self, key: str, upload_id: str) -> None:
        with self._lock:
            found = self._uploads.get(upload_id)
            if found is not None and found[0] == key:
                del self._uploads[upload_id]

    def list_multipart(self, prefix: str) -> list[MultipartUpload]:
        with self._lock:
            self._check_bucket(prefix)
            found = [
                MultipartUpload(key, upload_id, initiated)
                for upload_id, (key, _, _, initiated) in self._uploads.items()
                if key.startswith(prefix)
            ]
        return sorted(found, key=lambda u: (u.key, u.initiated))

    def public_url(self, key: str) -> str:
        return public_url_of(self.endpoint_url, self.bucket, self.region, key)


def _etag(data: bytes) -> str:
    """S3's ETag of an object written whole: its MD5, quoted."""
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
