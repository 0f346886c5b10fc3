"""Resumable upload sessions, on the S3 adapter (moto) and the in-memory fake alike."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from connectors.memory_store import InMemoryObjectStore
from connectors.object_store import MIN_PART_BYTES, ObjectStore
from connectors.resumable import (
    SESSIONS,
    UploadConflict,
    UploadNotFound,
    UploadRefused,
    Uploads,
)
from processors.media import MediaLimits, original_key


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def png(size: int) -> bytes:
    """A PNG file padded to `size` bytes (decoders stop at its end chunk)."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    filler = bytes(range(256)) * (size // 256 + 1)
    return (out.getvalue() + filler)[:size]


@pytest.fixture
def uploads(make_store: Callable[..., ObjectStore]) -> Uploads:
    return Uploads(make_store(), Clock(), MediaLimits(max_bytes=32 * 1024 * 1024), MIN_PART_BYTES)


def test_chunks_smaller_than_a_part_wait_and_make_one_object(uploads: Uploads) -> None:
    data = png(100_000)
    session = uploads.create("alice", len(data), "image/png")
    for start, end in [(0, 10), (10, 40_000), (40_000, 100_000)]:  # the first too short to sniff
        session = uploads.append(session.upload_id, start, data[start:end])
    assert session.complete and session.offset == len(data)
    assert session.content_type == "image/png"
    assert uploads.store.get_bytes(original_key(session.upload_id)) == data
    assert uploads.store.list_multipart("uploads/") == []
    assert uploads.store.list_keys(SESSIONS) == [f"{SESSIONS}{session.upload_id}/state.json"]


def test_parts_are_whole_and_a_chunk_sent_again_changes_nothing(uploads: Uploads) -> None:
    data = png(2 * MIN_PART_BYTES + 12345)
    session = uploads.create("alice", len(data), "image/png")
    chunk = 3 * 1024 * 1024
    session = uploads.append(session.upload_id, 0, data[:chunk])
    assert (session.offset, session.parts) == (chunk, [])  # short of a part: it waits
    again = uploads.append(session.upload_id, 0, data[:chunk])  # the answer was lost: resent
    assert again.offset == chunk
    start = chunk
    while start < len(data):
        session = uploads.append(session.upload_id, start - 100, data[start - 100 : start + chunk])
        start = session.offset
    assert [number for number, _ in session.parts] == [1, 2, 3]
    assert uploads.store.get_bytes(original_key(session.upload_id)) == data


def test_bytes_past_where_the_upload_stands_are_a_conflict(uploads: Uploads) -> None:
    data = png(50_000)
    session = uploads.create("alice", len(data), "image/png")
    uploads.append(session.upload_id, 0, data[:1000])
    with pytest.raises(UploadConflict) as caught:
        uploads.append(session.upload_id, 2000, data[2000:3000])
    assert caught.value.offset == 1000
    with pytest.raises(UploadRefused, match="past the declared size"):
        uploads.append(session.upload_id, 1000, data[1000:] + b"more")
    done = uploads.append(session.upload_id, 1000, data[1000:])
    with pytest.raises(UploadConflict, match="complete"):
        uploads.append(done.upload_id, 0, data)


def test_what_is_not_a_supported_image_or_video_is_refused_and_dropped(uploads: Uploads) -> None:
    session = uploads.create("alice", 10_000, "image/png")
    with pytest.raises(UploadRefused, match="not a supported image or video") as caught:
        uploads.append(session.upload_id, 0, b"%PDF-1.7" + bytes(9_992))
    assert caught.value.kind == "unsupported"
    with pytest.raises(UploadNotFound):
        uploads.load(session.upload_id)
    assert uploads.store.list_multipart("uploads/") == []
    other = uploads.create("alice", 10_000, "image/jpeg")
    with pytest.raises(UploadRefused, match="declared image/jpeg, but the bytes are image/png"):
        uploads.append(other.upload_id, 0, png(10_000))


def test_declared_size_and_type_are_checked(uploads: Uploads) -> None:
    with pytest.raises(UploadRefused, match="size: file too large") as too_large:
        uploads.create("alice", 32 * 1024 * 1024 + 1, "video/mp4")
    assert too_large.value.kind == "too_large"
    with pytest.raises(UploadRefused, match="size: empty file"):
        uploads.create("alice", 0, "video/mp4")
    with pytest.raises(UploadRefused, match="content_type: must be one of"):
        uploads.create("alice", 10, "application/pdf")
    assert uploads.store.list_multipart("uploads/") == []


def test_a_request_that_lost_a_race_is_a_conflict() -> None:
    class Racing(InMemoryObjectStore):
        """Another worker takes the same upload on while this one stores its pending bytes."""

        rival: Uploads | None = None

        def put_bytes(self, key: str, data: bytes, content_type: str = "x") -> None:
            super().put_bytes(key, data, content_type)
            rival, self.rival = self.rival, None
            if rival is not None:
                rival.append(upload_id, 0, payload[:2000])

    store = Racing()
    uploads = Uploads(store, Clock())
    payload = png(50_000)
    upload_id = uploads.create("alice", len(payload), "image/png").upload_id
    store.rival = Uploads(store, Clock())
    with pytest.raises(UploadConflict) as caught:
        uploads.append(upload_id, 0, payload[:1000])
    assert caught.value.offset == 2000  # the rival's write stands
    assert uploads.load(upload_id)[0].offset == 2000


def test_sweep_drops_what_was_left_and_keeps_what_moves(uploads: Uploads) -> None:
    clock = uploads.clock
    assert isinstance(clock, Clock)
    data = png(20_000)
    left = uploads.create("alice", len(data), "image/png")
    uploads.append(left.upload_id, 0, data[:5000])
    unposted = uploads.create("alice", len(data), "image/png")
    uploads.append(unposted.upload_id, 0, data)
    posted = uploads.create("alice", len(data), "image/png")
    uploads.append(posted.upload_id, 0, data)
    uploads.mark_posted(posted.upload_id, {"event_ids": ["e1"]})
    orphan = uploads.store.start_multipart("uploads/orphan/original", "image/png")  # no session
    clock.now += timedelta(days=2)
    fresh = uploads.create("bob", len(data), "image/png")
    uploads.append(fresh.upload_id, 0, data[:100])

    assert uploads.sweep(timedelta(days=1)) == 4
    for gone in (left, unposted, posted):
        with pytest.raises(UploadNotFound):
            uploads.load(gone.upload_id)
    assert [u.upload_id for u in uploads.store.list_multipart("uploads/")] == [fresh.multipart_id]
    assert orphan not in {u.upload_id for u in uploads.store.list_multipart("uploads/")}
    assert uploads.store.head(original_key(unposted.upload_id)) is None
    assert uploads.store.get_bytes(original_key(posted.upload_id)) == data  # the story's now
    assert uploads.load(fresh.upload_id)[0].offset == 100
    assert uploads.sweep(timedelta(days=1)) == 0
