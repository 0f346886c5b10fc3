"""The object store on S3 or any S3-compatible server (MinIO, moto), by boto3."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client  # pragma: no cover
else:
    S3Client = Any


from connectors.object_store import (
    DEFAULT_CONTENT_TYPE,
    MIB,
    MultipartUpload,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    PreconditionFailed,
    public_url_of,
)

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
# A conditional write that lost: S3 answers 412, or 409 for a write racing another.
_CONDITION_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})


class S3ObjectStore:
    """The S3 adapter. The boto3 client is made on first use (and not pickled: a worker
    process makes its own). Transient errors are retried with backoff by botocore's
    standard retry mode; large files go up and down in parts."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        credentials: tuple[str, str] | None = None,
        public_base_url: str | None = None,
        create_bucket: bool = False,
        public_prefixes: tuple[str, ...] = (),
        max_attempts: int = 5,
        multipart_threshold: int = 16 * MIB,
        timeout: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.public_base_url = public_base_url
        self._credentials = credentials
        self._create_bucket = create_bucket
        self.public_prefixes = public_prefixes
        self._max_attempts = max_attempts
        self._multipart_threshold = multipart_threshold
        self._timeout = timeout
        self._client: S3Client | None = None
        self._transfer: Any = None
        self._lock = threading.Lock()
        self._bucket_ready = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_client=None, _transfer=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self.endpoint_url or f"aws:{self.region}"
        return f"S3ObjectStore(bucket={self.bucket!r}, endpoint={where!r})"

    @property
    def client(self) -> S3Client:
        """The boto3 S3 client, created (and the bucket made, if asked) on first use."""
        with self._lock:
            if self._client is None:
                import boto3
                from boto3.s3.transfer import TransferConfig
                from botocore.config import Config

                config = Config(
                    region_name=self.region,
                    retries={"mode": "standard", "max_attempts": self._max_attempts},
                    connect_timeout=self._timeout,
                    read_timeout=self._timeout,
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                )
                keys = {}
                if self._credentials is not None:
                    keys = {
                        "aws_access_key_id": self._credentials[0],
                        "aws_secret_access_key": self._credentials[1],
                    }
                session = boto3.session.Session(region_name=self.region, **keys)
                self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
                self._transfer = TransferConfig(
                    multipart_threshold=self._multipart_threshold,
                    multipart_chunksize=max(8 * MIB, self._multipart_threshold // 2),
                    max_concurrency=4,
                )
            client = self._client
        if self._create_bucket and not self._bucket_ready:
            self._bucket_ready = True  # before the call: ensure_bucket uses this property
            try:
                self.ensure_bucket()
            except ObjectStoreError:
                self._bucket_ready = False
                raise
        return client

    def _fail(self, action: str, key: str, exc: Exception) -> ObjectStoreError:
        from botocore.exceptions import ClientError

        target = f"s3://{self.bucket}/{key}"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = f"{action} {target} failed: {code} {error.get('Message', '')}".rstrip()
            if code in _MISSING_CODES:
                what = "upload" if code == "NoSuchUpload" else "object"
                return ObjectNotFound(f"{action} {target}: no such {what}")
            if code in _CONDITION_CODES:
                return PreconditionFailed(f"{action} {target}: changed since it was read")
            if code == "NoSuchBucket":
                return ObjectStoreError(f"{action} {target}: bucket {self.bucket!r} does not exist")
            return ObjectStoreError(message)
        where = self.endpoint_url or "AWS S3"
        return ObjectStoreError(f"{action} {target} failed ({where}): {exc}")

    def _call(self, action: str, key: str, fn: Any, /, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(action, key, exc) from exc

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists; make `public_prefixes` anonymously readable."""
        self._create()
        if self.public_prefixes:
            resources = [f"arn:aws:s3:::{self.bucket}/{p}*" for p in self.public_prefixes]
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "PublicRenditions",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": resources,
                    }
                ],
            }
            self._call(
                "put bucket policy",
                "",
                self.client.put_bucket_policy,
                Bucket=self.bucket,
                Policy=json.dumps(policy),
            )

    def _create(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client
        try:
            client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket"}:
                raise self._fail("head bucket", "", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head bucket", "", exc) from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            client.create_bucket(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise self._fail("create bucket", "", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("create bucket", "", exc) from exc

    def put_bytes(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        client = self.client
        self._call(
            "put",
            key,
            client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )

    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        client = self.client
        try:
            self._call(
                "upload",
                key,
                client.upload_file,
                Filename=str(path),
                Bucket=self.bucket,
                Key=key,
                ExtraArgs={"ContentType": content_type},
                Config=self._transfer,
            )
        except OSError as exc:
            raise ObjectStoreError(f"upload {path} to s3://{self.bucket}/{key}: {exc}") from exc

    def get_bytes(self, key: str) -> bytes:
        client = self.client
        response = self._call("get", key, client.get_object, Bucket=self.bucket, Key=key)
        body: bytes = self._call("get", key, response["Body"].read)
        return body

    def download(self, key: str, path: Path) -> None:
        client = self.client
        try:
            self._call(
                "download",
                key,
                client.download_file,
                Bucket=self.bucket,
                Key=key,
                Filename=str(path),
                Config=self._transfer,
            )
        except OSError as exc:
            raise ObjectStoreError(f"download s3://{self.bucket}/{key} to {path}: {exc}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        client = self.client
        try:
            response = self._call("head", key, client.head_object, Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return None
        return ObjectInfo(key, int(response["ContentLength"]), response.get("ContentType", ""))

    def list_keys(self, prefix: str) -> list[str]:
        client = self.client
        paginator = client.get_paginator("list_objects_v2")
        keys: list[str] = []

        def collect() -> None:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))

        self._call("list", prefix + "*", collect)
        return sorted(keys)

    def list_prefixes(self, prefix: str) -> list[str]:
        """The "folders" one level under `prefix` (S3's common prefixes, ending in `/`)."""
        client = self.client
        paginator = client.get_paginator("list_objects_v2")
        found: list[str] = []

        def collect() -> None:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                found.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))

        self._call("list", prefix + "*/", collect)
        return sorted(found)

    def copy(self, source: str, target: str) -> None:
        client = self.client
        self._call(
            "copy",
            source,
            client.copy,
            CopySource={"Bucket": self.bucket, "Key": source},
            Bucket=self.bucket,
            Key=target,
            Config=self._transfer,
        )

    def move(self, source: str, target: str) -> None:
        """Copy then delete; a source already gone with the target present is a done move."""
        try:
            self.copy(source, target)
        except ObjectNotFound:
            if self.head(target) is None:
                raise ObjectNotFound(
                    f"move s3://{self.bucket}/{source} -> {target}: neither exists"
                ) from None
            return
        self.delete_keys([source])

    def delete_keys(self, keys: list[str]) -> None:
        client = self.client
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start : start + 1000]
            response = self._call(
                "delete",
                batch[0],
                client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                raise ObjectStoreError(
                    f"delete s3://{self.bucket}/{first.get('Key')} failed: "
                    f"{first.get('Code')} {first.get('Message', '')} ({len(errors)} errors)"
                )

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete the whole bucket (empty prefix)")
        keys = self.list_keys(prefix)
        if keys:
            self.delete_keys(keys)
        return len(keys)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and its version tag (ETag)."""
        client = self.client
        response = self._call("get", key, client.get_object, Bucket=self.bucket, Key=key)
        body: bytes = self._call("get", key, response["Body"].read)
        return body, str(response["ETag"])

    def put_versioned(
        self, key: str, data: bytes, content_type: str, *, expected: str | None
    ) -> str:
        """Write the object if its version is still `expected` (None: if it does not exist);
        its new version, or PreconditionFailed."""
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        response = self._call(
            "put",
            key,
            self.client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            **condition,
        )
        return str(response["ETag"])

    def start_multipart(self, key: str, content_type: str) -> str:
        """Begin a multipart upload to `key`; its upload id."""
        response = self._call(
            "start multipart",
            key,
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ContentType=content_type,
        )
        return str(response["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Store part `number` (1-based; again replaces it); the part's ETag."""
        response = self._call(
            "upload part",
            key,
            self.client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
        )
        return str(response["ETag"])

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> None:
        """Make the object of the parts `(number, etag)`, in order."""
        self._call(
            "complete multipart",
            key,
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": tag} for n, tag in parts]},
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop an upload and its parts; an upload already gone is done."""
        try:
            self._call(
                "abort multipart",
                key,
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
            )
        except ObjectNotFound:
            pass

    def list_multipart(self, prefix: str) -> list[MultipartUpload]:
        """The uploads under `prefix` neither completed nor aborted."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        found: list[MultipartUpload] = []

        def collect() -> None:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    initiated = item["Initiated"]
                    found.append(MultipartUpload(item["Key"], item["UploadId"], initiated))

        self._call("list multipart", prefix + "*", collect)
        return sorted(found, key=lambda u: (u.key, u.initiated))

    def public_url(self, key: str) -> str:
        if self.public_base_url:
            return f"{self.public_base_url.rstrip('/')}/{quote(key, safe='/-_.~')}"
        return public_url_of(self.endpoint_url, self.bucket, self.region, key)
