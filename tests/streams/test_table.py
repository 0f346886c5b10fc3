"""State tables: a value too large for a changelog record as it is goes compressed, and every
value reads back as it was written (compressed or not, JSON or pickled)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from processors.trays import TrayState, TrayStory, render_tray, tray_digest
from streams.stages.common import COMPRESS_ABOVE, Table
from streams.stages.tray_store import TRAYS

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def _tray(stories: int) -> TrayState:
    """A tray with `stories` stories of stories/2 authors, half of them seen."""
    items = tuple(
        TrayStory(
            f"author_{i % (stories // 2 or 1):08d}",
            f"story_{i:012d}",
            T0,
            T0 + timedelta(hours=24),
            seen=i % 2 == 0,
        )
        for i in range(stories)
    )
    state = TrayState("user_000000001", items)
    return replace(state, published=tray_digest(render_tray(state, T0)))


def test_a_tray_of_thousands_of_stories_is_stored_far_below_a_record() -> None:
    state = _tray(10_000)
    assert len(TRAYS._adapter.dump_json(state)) > 1_000_000  # type: ignore[union-attr]
    data = TRAYS.encode(state)
    assert data[:1] == b"\x00" and len(data) < 200_000
    assert TRAYS.decode(data) == state


def test_a_small_value_stays_plain_json() -> None:
    state = _tray(4)
    data = TRAYS.encode(state)
    assert data[:1] == b"{" and len(data) <= COMPRESS_ABOVE
    assert TRAYS.decode(data) == state


def test_pickled_values_are_compressed_too() -> None:
    table: Table[dict[str, int]] = Table("plain")
    large = {f"key-{i}": i for i in range(20_000)}
    data = table.encode(large)
    assert data[:1] == b"\x00"
    assert table.decode(data) == large
    assert table.decode(table.encode({"a": 1})) == {"a": 1}
