"""A time-partitioned index of due keys in the partition store: `prefix | bucket | key`.

Buckets sort by time, so finding what is due is a range scan of the due buckets only, never a
scan of every story (the time-partitioned expiry that replaces `DELETE ... WHERE t < now`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from processors.expiry import bucket_of
from streams.store import PartitionStore

_WIDTH_DIGITS = 15


class DueIndex:
    def __init__(self, name: str, width: timedelta = timedelta(seconds=1)) -> None:
        self.prefix = name.encode() + b"\x01"
        self.width = width

    def _key(self, due: datetime, key: str) -> bytes:
        bucket = bucket_of(due, self.width)
        return self.prefix + str(bucket).zfill(_WIDTH_DIGITS).encode() + b"\x00" + key.encode()

    def move(
        self, store: PartitionStore, key: str, old: datetime | None, new: datetime | None
    ) -> None:
        """Re-index `key` from its old due time to its new one (None: not indexed)."""
        if old == new:
            return
        if old is not None:
            store.delete(self._key(old, key))
        if new is not None:
            store.put(self._key(new, key), b"")

    def due(self, store: PartitionStore, now: datetime) -> list[str]:
        """Keys whose bucket starts at or before `now` (the caller re-checks the exact time).

        Reads the due buckets and stops at the first later one: the cost follows what is due,
        not the size of the index (a day of stories waits in it).
        """
        limit = str(bucket_of(now, self.width)).zfill(_WIDTH_DIGITS).encode()
        keys = []
        for raw, _ in store.scan(self.prefix):
            bucket, _, key = raw[len(self.prefix) :].partition(b"\x00")
            if bucket > limit:
                break
            keys.append(key.decode())
        return keys
