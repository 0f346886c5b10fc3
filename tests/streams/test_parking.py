"""Events held for a story not known yet: in bounded chunks, released in order, whatever the
batches they came in; the older one-value layout still loads."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.views import View
from schemas.types import millis
from streams.runtime.store import PartitionStore
from streams.stages import parking
from tests.processors.factories_social import cut

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=30)


def _views(count: int, start: int = 0) -> list[View]:
    """Views as the wiring reads them, each with its viewer record's ~40 bytes."""
    ms = millis(T0)
    return [
        View("story_1", f"viewer_{i:010d}", f"{i:032x}", ms + i, b"\x0estory_1" + bytes(28))
        for i in range(start, start + count)
    ]


def _largest_value(store: PartitionStore) -> int:
    return max(len(value) for _, value in store.scan(parking.PARKED))


def test_ten_thousand_views_are_held_in_values_far_below_a_record(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    views = _views(10_000)
    for batch in cut(views, [1, 700, 3, 2_000, 499]):
        parking.hold(store, "story_1", batch, LATER, limit=10_000)
        store.flush()
    assert _largest_value(store) < 100_000  # one value of all of them: ~0.9 MB
    assert parking.held(store, "story_1") == (LATER, 10_000, 20)
    assert parking.release(store, "story_1") == (LATER, views)
    assert list(store.scan(parking.PARKED)) == []
    store.close()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 1_500), st.lists(st.integers(0, 600), max_size=6), st.integers(0, 1_600))
def test_held_events_come_back_in_order_up_to_the_limit(
    tmp_path_factory: object, count: int, cuts: list[int], limit: int
) -> None:
    store = PartitionStore(tmp_path_factory.mktemp("park") / "p0")  # type: ignore[attr-defined]
    views = _views(count)
    overflow = 0
    firsts = []
    for i, batch in enumerate(cut(views, cuts)):
        first, left_out = parking.hold(store, "story_1", batch, LATER + timedelta(seconds=i), limit)
        firsts.append(first)
        overflow += left_out
        if i % 2:
            store.flush()
    assert firsts[0] == LATER and not any(firsts[1:])  # the deadline is the first batch's
    assert overflow == max(count - limit, 0)
    assert parking.release(store, "story_1") == (LATER, views[:limit])
    assert parking.release(store, "story_1") is None
    store.close()


def test_dropping_forgets_every_chunk(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    parking.hold(store, "story_1", _views(1_200), LATER, limit=10_000)
    parking.hold(store, "story_2", _views(3), LATER, limit=10_000)
    _, count, chunks = parking.held(store, "story_1") or (None, 0, 0)
    assert (count, chunks) == (1_200, 3)
    parking.drop(store, "story_1", chunks)
    store.flush()
    assert parking.held(store, "story_1") is None
    assert {key for key, _ in store.scan(parking.PARKED)} == {
        b"parked\x01story_2",
        b"parked\x01story_2\x00000000",
    }
    store.close()


def test_a_value_of_the_older_layout_is_held_on_and_released(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    older = _views(3)
    store.put(b"parked\x01story_1", pickle.dumps((LATER, older)))
    store.flush()
    first, overflow = parking.hold(store, "story_1", _views(2, start=3), T0, limit=10_000)
    assert (first, overflow) == (None, 0)
    assert parking.release(store, "story_1") == (LATER, _views(5))
    store.close()
