"""Local state of one partition in RocksDB (rocksdict), behind a two-level write buffer.

Writes go to the current run's buffer; `keep_run` moves them into the batch's buffer and
`drop_run` forgets them (a handler run that failed leaves nothing behind). `flush` writes the
batch's buffer to RocksDB in one write batch.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteBufferManager

from streams.runtime.limits import RecordTooLarge
from streams.settings import DEFAULT_STATE_MEMORY_MB

CHECKPOINT_KEY = b"\x00checkpoint"
DECODED_CACHE_SIZE = 100_000  # decoded values kept by `get_decoded`, then forgotten at once
T = TypeVar("T")


class StateMemory:
    """The memory RocksDB may use for every partition store of a process together: one block
    cache, which the memtables are charged to as well, so their sum stays near `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cache = Cache(limit)
        # Memtables may take half; a store flushes its memtable when they would take more.
        self.write_buffers = WriteBufferManager.new_write_buffer_manager_with_cache(
            limit // 2, False, self.cache
        )

    @property
    def used(self) -> int:
        """Bytes held now by the cache, memtables included."""
        usage: int = self.cache.get_usage()
        return usage


DEFAULT_MEMORY = DEFAULT_STATE_MEMORY_MB * 1024 * 1024
_default_memory: StateMemory | None = None


def default_memory() -> StateMemory:
    """The process's state memory when none is given (made when first needed)."""
    global _default_memory
    if _default_memory is None:
        _default_memory = StateMemory(DEFAULT_MEMORY)
    return _default_memory


class PartitionStore:
    """Key-value state of one partition; keys and values are bytes."""

    def __init__(
        self, path: Path, max_record_bytes: int | None = None, memory: StateMemory | None = None
    ) -> None:
        """`max_record_bytes`: the largest key and value a write may hold (one changelog
        record); a larger write raises RecordTooLarge. `memory`: shared with the process's
        other stores (default: `default_memory()`)."""
        path.mkdir(parents=True, exist_ok=True)
        memory = memory or default_memory()
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_manager(memory.write_buffers)
        options.set_write_buffer_size(min(32 * 1024 * 1024, memory.limit // 8))
        options.set_max_write_buffer_number(2)
        # Whole-key Bloom filters: most lookups on the views path are for absent keys.
        options.set_memtable_whole_key_filtering(True)
        options.set_memtable_prefix_bloom_ratio(0.1)
        tables = BlockBasedOptions()
        tables.set_bloom_filter(10, False)
        tables.set_block_cache(memory.cache)
        tables.set_cache_index_and_filter_blocks(True)  # counted in the cache, not beside it
        tables.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(tables)
        self.path = path
        self._db = Rdict(str(path), options)
        self._limit = max_record_bytes
        self._pending: dict[bytes, bytes | None] = {}  # kept runs of this batch
        self._run: dict[bytes, bytes | None] = {}  # the run under way
        self._groups: dict[bytes, set[bytes]] = {}  # written keys by their group prefix
        self._ungrouped: list[bytes] = []  # written keys not sorted out yet (see scan)
        self._unfiled: dict[int, list[bytes]] = {}  # the rest by first byte, not in _groups yet
        self._decoded: dict[bytes, tuple[Callable[[bytes], Any], Any]] = {}

    # -- reads ------------------------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        run = self._run
        if key in run:
            return run[key]
        pending = self._pending
        if key in pending:
            return pending[key]
        value: bytes | None = self._db.get(key)
        return value

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        """`get` of each key, in order (one call for a batch of point lookups)."""
        run, pending, get = self._run, self._pending, self._db.get
        return [
            run[key] if key in run else pending[key] if key in pending else get(key) for key in keys
        ]

    def get_decoded(self, key: bytes, decode: Callable[[bytes], T]) -> T | None:
        """`decode(get(key))`, cached until the key is written: for values read far more
        often than written (a story's info, read for every batch of its views)."""
        cached = self._decoded.get(key)
        if cached is not None and cached[0] == decode:
            value: T | None = cached[1]
            return value
        data = self.get(key)
        value = None if data is None else decode(data)
        if len(self._decoded) >= DECODED_CACHE_SIZE:
            self._decoded.clear()
        self._decoded[key] = (decode, value)
        return value

    def get_committed(self, key: bytes) -> bytes | None:
        """What RocksDB holds (for readers on other threads: the API)."""
        value: bytes | None = self._db.get(key)
        return value

    def scan_committed(
        self, prefix: bytes, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Committed keys with `prefix` from `start`, in key order (for other threads)."""
        begin = start if start is not None and start > prefix else prefix
        yield from self._iter_db(prefix, begin)

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Keys with `prefix` from `start` (inclusive) in key order, buffered writes included."""
        begin = start if start is not None and start > prefix else prefix
        if prefix[-1:] in (b"\x00", b"\x01") and _group(prefix) == prefix:
            self._group_pending(prefix[0])
            candidates: Iterable[bytes] = self._groups.get(prefix, ())
        else:
            candidates = {*self._pending, *self._run}
        run, pending = self._run, self._pending
        buffered: list[tuple[bytes, bytes | None]] = []
        for key in candidates:
            if key.startswith(prefix) and key >= begin:
                if key in run:
                    buffered.append((key, run[key]))
                elif key in pending:  # else: a key of a dropped run, not written
                    buffered.append((key, pending[key]))
        buffered.sort()
        yield from _merge(self._iter_db(prefix, begin), iter(buffered))

    def _iter_db(self, prefix: bytes, begin: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
        it.seek(begin)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            yield key, it.value()
            it.next()

    def _group_pending(self, first: int) -> None:
        """File the keys written since the last scan whose first byte is `first` under their
        groups (lazily: scans are rare, writes are the hot path)."""
        unfiled = self._unfiled
        if self._ungrouped:
            for key in self._ungrouped:
                bucket = unfiled.get(key[0])
                if bucket is None:
                    unfiled[key[0]] = [key]
                else:
                    bucket.append(key)
            self._ungrouped = []
        groups = self._groups
        for key in unfiled.pop(first, ()):
            groups.setdefault(_group(key), set()).add(key)

    # -- writes -----------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes) -> None:
        if self._limit is not None and len(key) + len(value) > self._limit:
            raise RecordTooLarge("state value", len(key) + len(value), self._limit)
        self._run[key] = value
        self._ungrouped.append(key)
        if key in self._decoded:
            del self._decoded[key]

    def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        """`put` of each (key, value), in order."""
        limit = self._limit
        if limit is not None:
            for key, value in items:
                if len(key) + len(value) > limit:
                    raise RecordTooLarge("state value", len(key) + len(value), limit)
        self._run.update(items)
        keys = [key for key, _ in items]
        self._ungrouped += keys
        decoded = self._decoded
        if not decoded.keys().isdisjoint(keys):
            for key in keys:
                decoded.pop(key, None)

    def delete(self, key: bytes) -> None:
        self._run[key] = None
        self._ungrouped.append(key)
        if key in self._decoded:
            del self._decoded[key]

    def keep_run(self) -> None:
        """The run under way succeeded: its writes join the batch's."""
        if self._run:
            self._pending.update(self._run)
            self._run = {}

    def drop_run(self) -> None:
        """The run under way failed: forget its writes (and what was decoded from them)."""
        decoded = self._decoded
        for key in self._run:
            decoded.pop(key, None)
        self._run = {}

    @property
    def dirty(self) -> dict[bytes, bytes | None]:
        """The batch's changed keys (None: deleted), for the changelog."""
        assert not self._run, "a run is still under way"
        return self._pending

    def flush(self, checkpoint: bytes | None = None) -> None:
        """Write every buffered change (and the checkpoint, if given) atomically."""
        self.keep_run()
        if not self._pending and checkpoint is None:
            return
        # In key order: RocksDB inserts a sorted batch into its memtable faster than one in the
        # batch's own (scattered) order, by more than the sort costs.
        pending = self._pending
        batch = WriteBatch(raw_mode=True)
        for key in sorted(pending):
            value = pending[key]
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if checkpoint is not None:
            batch.put(CHECKPOINT_KEY, checkpoint)
        self._db.write(batch)
        self._clear_buffers()

    def discard(self) -> None:
        """Drop the buffered writes (a batch that failed is redone from the inputs)."""
        self._clear_buffers()
        self._decoded = {}

    def _clear_buffers(self) -> None:
        self._pending = {}
        self._run = {}
        self._groups = {}
        self._ungrouped = []
        self._unfiled = {}

    def apply_restored(self, key: bytes, value: bytes | None) -> None:
        """Write a record read back from the changelog straight to RocksDB."""
        self._decoded.pop(key, None)
        if value is None:
            self._db.delete(key)
        else:
            self._db.put(key, value)

    @property
    def checkpoint(self) -> bytes | None:
        value: bytes | None = self._db.get(CHECKPOINT_KEY)
        return value

    def close(self) -> None:
        self._decoded = {}
        self._db.close()

    @staticmethod
    def destroy(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


def _group(key: bytes) -> bytes:
    """A key's group: its bytes up to and including the first separator (NUL or 0x01).

    Keys are laid out as `tag/table name, separator, ...`, so a scan of a group (or of a
    story's keys, whose prefix ends at its separator) needs only that group's buffered keys.
    """
    nul, one = key.find(b"\x00"), key.find(b"\x01")
    if nul < 0 and one < 0:
        return key
    end = one if nul < 0 else nul if one < 0 else min(nul, one)
    return key[: end + 1]


def _merge(
    stored: Iterator[tuple[bytes, bytes]], pending: Iterator[tuple[bytes, bytes | None]]
) -> Iterator[tuple[bytes, bytes]]:
    """Merge two key-ordered streams; pending entries win and deletions hide stored keys."""
    s = next(stored, None)
    p = next(pending, None)
    while s is not None or p is not None:
        if p is None or (s is not None and s[0] < p[0]):
            assert s is not None
            yield s
            s = next(stored, None)
            continue
        if s is not None and s[0] == p[0]:
            s = next(stored, None)
        if p[1] is not None:
            yield p[0], p[1]
        p = next(pending, None)
