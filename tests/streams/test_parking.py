"""Events held for a story not known yet: in bounded chunks, released in order, whatever the
batches they came in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.views import View
from schemas.types import millis
from streams.runtime.store import PartitionStore
from streams.stages.parking import Parking
from tests.processors.factories_social import cut

parking: Parking[View] = Parking("parked", View)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=30)


def _views(count: int, start: int = 0) -> list[View]:
    """Views as the wiring reads them."""
    ms = millis(T0)
    return [
        View("story_1", f"viewer_{i:010d}", f"{i:032x}", ms + i)
        for i in range(start, start + count)
    ]


def _largest_value(store: PartitionStore) -> int:
    return max(len(value) for _, value in store.scan(parking.prefix))


def test_ten_thousand_views_are_held_in_values_far_below_a_record(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    views = _views(10_000)
    for batch in cut(views, [1, 700, 3, 2_000, 499]):
        parking.hold(store, "story_1", batch, LATER, limit=10_000)
        store.flush()
    assert _largest_value(store) < 100_000  # one value of all of them: over half a megabyte
    assert parking.held(store, "story_1") == (LATER, 10_000, 20)
    assert parking.release(store, "story_1") == (LATER, views)
    assert list(store.scan(parking.prefix)) == []
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
    assert {key for key, _ in store.scan(parking.prefix)} == {
        b"parked\x01story_2",
        b"parked\x01story_2\x00000000",
    }
    store.close()
