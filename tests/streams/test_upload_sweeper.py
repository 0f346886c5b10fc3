"""A worker's sweeper drops abandoned uploads on its own, every interval."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from connectors.memory_store import InMemoryObjectStore
from connectors.resumable import UploadNotFound, Uploads
from streams.api.uploads import UploadSweeper
from streams.settings import Settings


def test_the_sweeper_drops_uploads_left_longer_than_the_expiry() -> None:
    now = [datetime.now(UTC)]
    uploads = Uploads(InMemoryObjectStore(), lambda: now[0])
    left = uploads.create("ann", 100, "image/png")
    settings = Settings(upload_expiry="1h", upload_sweep_interval="50ms")
    sweeper = UploadSweeper(uploads, settings, ThreadPoolExecutor(1))
    sweeper.start()
    try:
        time.sleep(0.2)
        assert uploads.load(left.upload_id)  # not yet an hour old
        now[0] += timedelta(hours=1, seconds=1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                uploads.load(left.upload_id)
            except UploadNotFound:
                break
            time.sleep(0.05)
        with pytest.raises(UploadNotFound):
            uploads.load(left.upload_id)
        assert uploads.store.list_multipart("uploads/") == []
    finally:
        sweeper.stop()
