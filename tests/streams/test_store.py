"""The partition store: read-your-writes over RocksDB, ordered scans, atomic flushes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.store import CHECKPOINT_KEY, PartitionStore

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
