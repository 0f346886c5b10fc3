"""The partition store: read-your-writes over RocksDB, ordered scans, atomic flushes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.runtime.limits import RecordTooLarge
from streams.runtime.metrics import Metrics
from streams.runtime.restore import Restorer
from streams.runtime.store import CHECKPOINT_KEY, PartitionStore
from streams.settings import Settings
from streams.worker.build import build_engine

keys = st.builds(
    lambda tag, story, sep, rest: tag + story + sep + rest,
    st.sampled_from([b"I", b"O", b"author\x01"]),
    st.sampled_from([b"s1", b"s10", b"s2"]),
    st.sampled_from([b"\x00", b"\x01", b""]),
    st.binary(max_size=3),
)
operations = st.lists(
    st.tuples(st.booleans(), keys, st.binary(min_size=1, max_size=3), st.booleans(), st.booleans())
)


@settings(max_examples=150, deadline=None)
@given(operations, st.sampled_from([b"I", b"Is1", b"Is1\x00", b"author\x01", b"O", b""]))
def test_scan_equals_a_sorted_dict(tmp_path_factory: object, ops: list, prefix: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("store"))  # type: ignore[attr-defined]
    store = PartitionStore(path / "p")
    model: dict[bytes, bytes] = {}
    for is_put, key, value, flush, many in ops:
        if is_put and many:  # a key and its neighbour, in one call
            store.put_many([(key, value), (key + b"\x02", value)])
            model[key] = model[key + b"\x02"] = value
        elif is_put:
            store.put(key, value)
            model[key] = value
        else:
            store.delete(key)
            model.pop(key, None)
        if flush:
            store.flush()
        assert store.get(key) == model.get(key)
        neighbours = [key, key + b"\x02", b"absent"]
        assert store.get_many(neighbours) == [model.get(k) for k in neighbours]
        # a scan between writes sees them all (keys are filed under their groups lazily)
        assert list(store.scan(prefix)) == sorted(
            (k, v) for k, v in model.items() if k.startswith(prefix)
        )
    expected = sorted((k, v) for k, v in model.items() if k.startswith(prefix))
    assert list(store.scan(prefix)) == expected
    store.flush(b"cp")
    data = lambda items: [kv for kv in items if kv[0] != CHECKPOINT_KEY]  # noqa: E731
    assert data(store.scan_committed(prefix)) == expected
    store.close()
    reopened = PartitionStore(path / "p")
    assert reopened.checkpoint == b"cp"
    assert data(reopened.scan(prefix)) == expected


def test_unflushed_writes_are_not_committed(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p")
    store.put(b"a", b"1")
    assert store.get(b"a") == b"1" and store.get_committed(b"a") is None
    store.keep_run()
    assert store.dirty == {b"a": b"1"}
    store.discard()
    assert store.get(b"a") is None


def test_a_decoded_value_is_cached_until_its_key_is_written(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p")
    decoded: list[bytes] = []

    def decode(data: bytes) -> str:
        decoded.append(data)
        return data.decode()

    assert store.get_decoded(b"k", decode) is None
    store.put(b"k", b"one")
    assert store.get_decoded(b"k", decode) == "one"
    assert store.get_decoded(b"k", decode) == "one"
    assert decoded == [b"one"]  # the second read came from the cache
    assert store.get_decoded(b"k", lambda data: data.upper()) == b"ONE"  # another decoder
    store.flush()
    store.delete(b"k")
    assert store.get_decoded(b"k", decode) is None
    store.discard()  # the delete is dropped: the committed value is read again
    assert store.get_decoded(b"k", decode) == "one"
    store.apply_restored(b"k", b"two")
    assert store.get_decoded(b"k", decode) == "two"
    store.put_many([(b"j", b"0"), (b"k", b"three")])
    assert store.get_decoded(b"k", decode) == "three"
    assert decoded == [b"one", b"one", b"two", b"three"]
    store.close()


def test_a_dropped_run_leaves_nothing_and_a_kept_one_joins_the_batch(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p")
    store.put(b"g\x01committed", b"0")
    store.flush()
    store.put(b"g\x01kept", b"1")
    store.keep_run()
    decoded = store.get_decoded(b"g\x01kept", bytes.upper)
    store.put(b"g\x01kept", b"overwritten")  # by the run that fails
    store.put(b"g\x01new", b"2")
    store.delete(b"g\x01committed")
    assert [k for k, _ in store.scan(b"g\x01")] == [b"g\x01kept", b"g\x01new"]
    assert store.get_decoded(b"g\x01new", bytes.upper) == b"2"
    store.drop_run()
    assert (decoded, store.get_decoded(b"g\x01kept", bytes.upper)) == (b"1", b"1")
    assert store.get(b"g\x01new") is None and store.get_decoded(b"g\x01new", bytes.upper) is None
    assert list(store.scan(b"g\x01")) == [(b"g\x01committed", b"0"), (b"g\x01kept", b"1")]
    assert store.dirty == {b"g\x01kept": b"1"}
    store.flush()
    assert store.get_committed(b"g\x01kept") == b"1" and store.get_committed(b"g\x01new") is None
    store.close()


def test_a_write_larger_than_a_changelog_record_is_refused(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p", max_record_bytes=100)
    store.put(b"k", b"x" * 99)
    with pytest.raises(RecordTooLarge, match="101 bytes is over the 100-byte"):
        store.put(b"kk", b"x" * 99)
    with pytest.raises(RecordTooLarge):
        store.put_many([(b"a", b"small"), (b"b", b"x" * 100)])
    assert store.get(b"a") is None  # put_many checks every item before writing any
    store.close()


def test_a_workers_stores_are_charged_to_its_state_memory_setting(tmp_path: Path) -> None:
    settings = Settings(state_memory_mb=64, data_dir=tmp_path, broker="unused:9092")
    engine = build_engine(settings, lambda: datetime.now(UTC), "w1")
    memory = engine.state_memory
    assert memory is not None and memory.limit == 64 * 1024 * 1024
    restorer = Restorer(
        "unused:9092", "g", engine.topology, tmp_path / "s", Metrics(), None, memory
    )
    store = restorer.open(0)
    before = memory.used
    for n in range(2_000):
        store.put(b"k%05d" % n, bytes(1_000))
    store.flush()
    assert memory.used >= before + 1_000_000  # its memtable, charged to the worker's budget
    store.close()
