"""The due index: what is due, in time order, read without walking the rest of the index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.types import EPOCH, millis
from streams.runtime.store import PartitionStore
from streams.stages.due import DueIndex, bucket_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class CountingStore(PartitionStore):
    """Counts the entries a scan hands out."""

    read = 0

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for item in super().scan(prefix, start):
            self.read += 1
            yield item


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    store = CountingStore(tmp_path / "p")
    yield store
    store.close()


def test_due_keys_come_oldest_first_committed_or_pending(store: CountingStore) -> None:
    # given keys due in the past, now and later, some flushed and some still buffered
    index = DueIndex("test")
    index.move(store, "late", None, NOW - timedelta(minutes=5))
    index.move(store, "later", None, NOW + timedelta(seconds=2))
    store.flush()
    index.move(store, "now", None, NOW)
    index.move(store, "early", None, NOW - timedelta(hours=1))
    # then those due at NOW come, oldest first
    assert index.due(store, NOW) == ["early", "late", "now"]
    # and a moved key is due at its new time only
    index.move(store, "early", NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert index.due(store, NOW) == ["late", "now"]
    assert index.due(store, NOW + timedelta(hours=1)) == ["late", "now", "later", "early"]


def test_finding_what_is_due_does_not_walk_the_future(store: CountingStore) -> None:
    # given a day of stories waiting in the index and two that are due
    index = DueIndex("test")
    for i in range(5000):
        index.move(store, f"future{i}", None, NOW + timedelta(seconds=10 + i))
    index.move(store, "due1", None, NOW - timedelta(seconds=1))
    index.move(store, "due2", None, NOW)
    store.flush()
    # when asking what is due
    store.read = 0
    assert index.due(store, NOW) == ["due1", "due2"]
    # then only the due entries and the first later one were read
    assert store.read == 3


def test_bucket_of_is_the_bucket_start_in_epoch_millis() -> None:
    hour = timedelta(hours=1)
    assert bucket_of(NOW, hour) == millis(NOW)  # NOW is on the hour
    assert bucket_of(NOW + timedelta(minutes=59.99), hour) == millis(NOW)
    assert bucket_of(NOW + hour, hour) == millis(NOW + hour)
    assert bucket_of(EPOCH - timedelta(minutes=1), hour) == -3_600_000
    with pytest.raises(ValueError):
        bucket_of(NOW, timedelta(0))
