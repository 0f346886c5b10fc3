"""A time-partitioned index of due keys in the partition store: `prefix | bucket | key`.

Buckets sort by time, so finding what is due is a range scan of the due buckets only, never a
scan of every story (the time-partitioned expiry that replaces `DELETE ... WHERE t < now`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.types import millis
from streams.runtime.store import PartitionStore

_WIDTH_DIGITS = 15
_MILLI = timedelta(milliseconds=1)


def width_ms(width: timedelta) -> int:
    """`width` in milliseconds, at least one."""
    ms = width // _MILLI
    if ms <= 0:
        raise ValueError("bucket width must be at least one millisecond")
    return ms


def bucket_of(when: datetime, width: timedelta) -> int:
    """The start (epoch milliseconds) of the bucket of `width` that holds `when`."""
    step = width_ms(width)
    return millis(when) // step * step


class DueIndex:
    """Keys by the time bucket they are due in, under one key prefix (values are empty)."""

    def __init__(self, name: str, width: timedelta = timedelta(seconds=1)) -> None:
        self.prefix = name.encode() + b"\x01"
        self.width = width
        self._width_ms = width_ms(width)

    def key(self, due: datetime, key: str) -> bytes:
        """The index entry of `key` due at `due`."""
        return self.key_at(millis(due), key)

    def key_at(self, due_ms: int, key: str) -> bytes:
        """The index entry of `key` due at `due_ms` (epoch milliseconds)."""
        bucket = due_ms // self._width_ms * self._width_ms
        return self.prefix + str(bucket).zfill(_WIDTH_DIGITS).encode() + b"\x00" + key.encode()

    def move(
        self, store: PartitionStore, key: str, old: datetime | None, new: datetime | None
    ) -> None:
        """Re-index `key` from its old due time to its new one (None: not indexed)."""
        self.move_at(
            store, key, None if old is None else millis(old), None if new is None else millis(new)
        )

    def move_at(
        self, store: PartitionStore, key: str, old_ms: int | None, new_ms: int | None
    ) -> None:
        """`move`, the due times in epoch milliseconds (for a caller that has them)."""
        if old_ms == new_ms:
            return
        if old_ms is not None:
            store.delete(self.key_at(old_ms, key))
        if new_ms is not None:
            store.put(self.key_at(new_ms, key), b"")

    def first_due(self, store: PartitionStore) -> int | None:
        """The start (epoch ms) of the earliest bucket holding a key (whose exact time is in
        that bucket); None when the index is empty."""
        for raw, _ in store.scan(self.prefix):
            return int(raw[len(self.prefix) : len(self.prefix) + _WIDTH_DIGITS])
        return None

    def due(self, store: PartitionStore, now: datetime) -> list[str]:
        """Keys whose bucket starts at or before `now` (the caller re-checks the exact time)."""
        return [key for _, key in self.due_entries(store, now)]

    def due_entries(
        self,
        store: PartitionStore,
        now: datetime,
        limit: int | None = None,
        committed: bool = False,
    ) -> list[tuple[bytes, str]]:
        """(index entry, key) of the keys due by `now`, oldest first, at most `limit`;
        `committed`: only those already in RocksDB (not the batch's writes, which need not be
        sorted then: an index whose new entries are never due yet takes them next time).

        Reads the due buckets and stops at the first later one: the cost follows what is due,
        not the size of the index (a day of stories waits in it).
        """
        last = str(bucket_of(now, self.width)).zfill(_WIDTH_DIGITS).encode()
        entries: list[tuple[bytes, str]] = []
        scan = store.scan_committed if committed else store.scan
        for raw, _ in scan(self.prefix):
            bucket, _, key = raw[len(self.prefix) :].partition(b"\x00")
            if bucket > last or len(entries) == limit:
                break
            entries.append((raw, key.decode()))
        return entries
