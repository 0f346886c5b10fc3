"""Adapter contract: the S3 adapter (on moto's server) and the in-memory fake behave alike."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.object_store import (
    MIN_PART_BYTES,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    PreconditionFailed,
    move_prefix,
)
from connectors.s3_store import S3ObjectStore
from infra.s3 import EmbeddedS3
from tests.connectors.conftest import s3_store


class TestObjectStoreContract:
    def test_put_and_get_bytes(self, store: ObjectStore) -> None:
        store.put_bytes("media/m1/a.jpg", b"\xff\xd8\xffdata", "image/jpeg")
        assert store.get_bytes("media/m1/a.jpg") == b"\xff\xd8\xffdata"
        info = store.head("media/m1/a.jpg")
        assert info is not None
        assert (info.size, info.content_type) == (7, "image/jpeg")

    def test_put_file_and_download(self, store: ObjectStore, tmp_path: Path) -> None:
        source = tmp_path / "in.bin"
        source.write_bytes(b"x" * 100_000)
        store.put_file("uploads/m1/original", source, "video/mp4")
        target = tmp_path / "out.bin"
        store.download("uploads/m1/original", target)
        assert target.read_bytes() == source.read_bytes()
        assert store.head("uploads/m1/original").content_type == "video/mp4"  # type: ignore[union-attr]

    def test_missing_object(self, store: ObjectStore, tmp_path: Path) -> None:
        assert store.head("media/nope/a.jpg") is None
        with pytest.raises(ObjectNotFound, match="media/nope/a.jpg"):
            store.get_bytes("media/nope/a.jpg")
        with pytest.raises(ObjectNotFound):
            store.download("media/nope/a.jpg", tmp_path / "x")

    def test_put_file_missing_local_file(self, store: ObjectStore, tmp_path: Path) -> None:
        with pytest.raises(ObjectStoreError, match="missing.bin"):
            store.put_file("uploads/m1/original", tmp_path / "missing.bin", "video/mp4")

    def test_list_keys_by_prefix_is_not_a_string_prefix_of_ids(self, store: ObjectStore) -> None:
        for key in ["media/m1/a.jpg", "media/m1/b.mp4", "media/m10/a.jpg", "uploads/m1/original"]:
            store.put_bytes(key, b"1")
        assert store.list_keys("media/m1/") == ["media/m1/a.jpg", "media/m1/b.mp4"]
        assert store.list_keys("nothing/") == []

    def test_list_prefixes_names_the_folders_one_level_down(self, store: ObjectStore) -> None:
        for key in [
            "archive/t/date=2026-11-01/hour=00/a.avro",
            "archive/t/date=2026-11-01/hour=01/b.avro",
            "archive/t/date=2026-11-02/hour=00/c.avro",
            "archive/t/loose.avro",
            "archive/u/date=2026-11-01/hour=00/d.avro",
        ]:
            store.put_bytes(key, b"1")
        assert store.list_prefixes("archive/t/") == [
            "archive/t/date=2026-11-01/",
            "archive/t/date=2026-11-02/",
        ]
        assert store.list_prefixes("archive/") == ["archive/t/", "archive/u/"]
        assert store.list_prefixes("archive/t/date=2026-11-01/hour=00/") == []
        assert store.list_prefixes("nothing/") == []

    def test_delete_prefix_is_idempotent(self, store: ObjectStore) -> None:
        for key in ["media/m1/a.jpg", "media/m1/b.mp4", "media/m10/a.jpg"]:
            store.put_bytes(key, b"1")
        assert store.delete_prefix("media/m1/") == 2
        assert store.delete_prefix("media/m1/") == 0
        assert store.list_keys("media/") == ["media/m10/a.jpg"]

    def test_delete_keys_ignores_missing(self, store: ObjectStore) -> None:
        store.put_bytes("a/1", b"1")
        store.delete_keys(["a/1", "a/2"])
        store.delete_keys([])
        assert store.list_keys("a/") == []

    def test_delete_prefix_refuses_the_whole_bucket(self, store: ObjectStore) -> None:
        with pytest.raises(ValueError):
            store.delete_prefix("")

    def test_copy_keeps_content_type(self, store: ObjectStore) -> None:
        store.put_bytes("media/m1/a.jpg", b"abc", "image/jpeg")
        store.copy("media/m1/a.jpg", "highlights/m1/a.jpg")
        assert store.get_bytes("highlights/m1/a.jpg") == b"abc"
        assert store.head("highlights/m1/a.jpg").content_type == "image/jpeg"  # type: ignore[union-attr]
        assert store.head("media/m1/a.jpg") is not None

    def test_copy_missing_source(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound):
            store.copy("media/m1/none", "highlights/m1/none")

    def test_move_is_idempotent(self, store: ObjectStore) -> None:
        store.put_bytes("media/m1/a.jpg", b"abc", "image/jpeg")
        store.move("media/m1/a.jpg", "highlights/m1/a.jpg")
        store.move("media/m1/a.jpg", "highlights/m1/a.jpg")  # a re-run after a crash
        assert store.head("media/m1/a.jpg") is None
        assert store.get_bytes("highlights/m1/a.jpg") == b"abc"
        with pytest.raises(ObjectNotFound):
            store.move("media/m1/none", "highlights/m1/none")

    def test_move_prefix_resumes(self, store: ObjectStore) -> None:
        for name in ["a.jpg", "b.mp4", "c.jpg"]:
            store.put_bytes(f"media/m1/{name}", name.encode())
        store.move("media/m1/a.jpg", "highlights/m1/a.jpg")  # crashed after the first move
        moved = move_prefix(store, "media/m1/", "highlights/m1/")
        assert moved == [("media/m1/b.mp4", "highlights/m1/b.mp4"),
                         ("media/m1/c.jpg", "highlights/m1/c.jpg")]  # fmt: skip
        assert store.list_keys("media/m1/") == []
        assert len(store.list_keys("highlights/m1/")) == 3

    def test_public_url(self, make_store: Callable[..., ObjectStore]) -> None:
        store = make_store()
        url = store.public_url("media/m1/1080p.mp4")
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith(f"/{store.bucket}/media/m1/1080p.mp4")  # type: ignore[attr-defined]

    def test_missing_bucket_is_a_clear_error(self, make_store: Callable[..., ObjectStore]) -> None:
        store = make_store(create_bucket=False)
        with pytest.raises(ObjectStoreError, match="bucket .* does not exist"):
            store.put_bytes("a/b", b"1")
        store.ensure_bucket()
        store.ensure_bucket()  # idempotent
        store.put_bytes("a/b", b"1")
        assert store.get_bytes("a/b") == b"1"

    def test_versioned_writes_succeed_only_against_the_version_read(
        self, store: ObjectStore
    ) -> None:
        first = store.put_versioned("sessions/a.json", b"1", "application/json", expected=None)
        with pytest.raises(PreconditionFailed):  # it exists now
            store.put_versioned("sessions/a.json", b"x", "application/json", expected=None)
        data, version = store.get_versioned("sessions/a.json")
        assert (data, version) == (b"1", first)
        second = store.put_versioned("sessions/a.json", b"2", "application/json", expected=first)
        assert second != first
        with pytest.raises(PreconditionFailed):  # a writer that read the first version lost
            store.put_versioned("sessions/a.json", b"3", "application/json", expected=first)
        assert store.get_versioned("sessions/a.json") == (b"2", second)
        with pytest.raises(ObjectNotFound):
            store.get_versioned("sessions/none.json")

    def test_multipart_upload_joins_its_parts_in_order(self, store: ObjectStore) -> None:
        first, last = bytes(range(256)) * (MIN_PART_BYTES // 256), b"tail"
        upload = store.start_multipart("uploads/m1/original", "image/png")
        tag2 = store.upload_part("uploads/m1/original", upload, 2, last)
        store.upload_part("uploads/m1/original", upload, 1, b"first try")
        tag1 = store.upload_part("uploads/m1/original", upload, 1, first)  # replaces part 1
        assert [u.upload_id for u in store.list_multipart("uploads/")] == [upload]
        assert store.head("uploads/m1/original") is None  # nothing until it is completed
        store.complete_multipart("uploads/m1/original", upload, [(1, tag1), (2, tag2)])
        assert store.get_bytes("uploads/m1/original") == first + last
        assert store.head("uploads/m1/original").content_type == "image/png"  # type: ignore[union-attr]
        assert store.list_multipart("uploads/") == []

    def test_multipart_parts_but_the_last_must_be_5_mib(self, store: ObjectStore) -> None:
        upload = store.start_multipart("uploads/m2/original", "video/mp4")
        tags = [store.upload_part("uploads/m2/original", upload, n, b"small") for n in (1, 2)]
        with pytest.raises(ObjectStoreError, match="EntityTooSmall"):
            store.complete_multipart("uploads/m2/original", upload, [(1, tags[0]), (2, tags[1])])
        store.complete_multipart("uploads/m2/original", upload, [(1, tags[0])])  # one part: fine
        assert store.get_bytes("uploads/m2/original") == b"small"

    def test_multipart_refuses_a_part_it_does_not_hold(self, store: ObjectStore) -> None:
        upload = store.start_multipart("uploads/m3/original", "video/mp4")
        tag = store.upload_part("uploads/m3/original", upload, 1, b"one")
        with pytest.raises(ObjectStoreError, match="InvalidPart"):
            store.complete_multipart("uploads/m3/original", upload, [(1, tag), (2, tag)])

    def test_abort_multipart_is_idempotent(self, store: ObjectStore) -> None:
        upload = store.start_multipart("uploads/m4/original", "video/mp4")
        store.upload_part("uploads/m4/original", upload, 1, b"data")
        kept = store.start_multipart("uploads/m5/original", "video/mp4")
        store.abort_multipart("uploads/m4/original", upload)
        store.abort_multipart("uploads/m4/original", upload)  # a sweep re-run
        assert [(u.key, u.upload_id) for u in store.list_multipart("uploads/")] == [
            ("uploads/m5/original", kept)
        ]
        with pytest.raises(ObjectStoreError):  # S3: NoSuchUpload (moto: a 500)
            store.upload_part("uploads/m4/original", upload, 2, b"late")
        assert store.list_multipart("uploads/m4/") == []


class TestS3Adapter:
    """What only the real adapter can show: HTTP downloads, multipart, errors, pickling."""

    def test_renditions_are_public_originals_private(self, embedded_s3: EmbeddedS3) -> None:
        store = s3_store(embedded_s3, create_bucket=True, public_prefixes=("media/",))
        store.put_bytes("media/m1/a.jpg", b"jpeg!", "image/jpeg")
        store.put_bytes("uploads/m1/original", b"secret", "image/jpeg")
        with urllib.request.urlopen(store.public_url("media/m1/a.jpg")) as response:
            assert response.read() == b"jpeg!"
            assert response.headers["Content-Type"] == "image/jpeg"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(store.public_url("uploads/m1/original"))

    def test_multipart_upload_download_and_copy(
        self, embedded_s3: EmbeddedS3, tmp_path: Path
    ) -> None:
        store = s3_store(embedded_s3, create_bucket=True, multipart_threshold=5 * 1024 * 1024)
        source = tmp_path / "big.bin"
        source.write_bytes(bytes(range(256)) * (12 * 4096))  # 12 MiB: three parts
        store.put_file("uploads/big/original", source, "video/mp4")
        store.copy("uploads/big/original", "media/big/copy")
        target = tmp_path / "back.bin"
        store.download("media/big/copy", target)
        assert target.read_bytes() == source.read_bytes()

    def test_unreachable_endpoint_fails_clearly(self) -> None:
        store = S3ObjectStore("bucket", endpoint_url="http://127.0.0.1:9", max_attempts=1,
                              credentials=("a", "b"), timeout=1)  # fmt: skip
        with pytest.raises(ObjectStoreError, match="127.0.0.1:9"):
            store.put_bytes("a/b", b"1")

    def test_client_is_lazy_and_store_pickles(self, embedded_s3: EmbeddedS3) -> None:
        import pickle

        store = s3_store(embedded_s3, create_bucket=True)
        assert store._client is None
        store.put_bytes("a/b", b"1")
        clone = pickle.loads(pickle.dumps(store))
        assert clone.get_bytes("a/b") == b"1"

    def test_aws_urls_are_virtual_hosted(self) -> None:
        store = S3ObjectStore("stories", region="eu-west-1")
        assert store.public_url("media/m 1/a.jpg") == (
            "https://stories.s3.eu-west-1.amazonaws.com/media/m%201/a.jpg"
        )
        cdn = S3ObjectStore("stories", public_base_url="https://cdn.example.com/")
        assert cdn.public_url("media/m1/a.jpg") == "https://cdn.example.com/media/m1/a.jpg"
