"""Batch sizing: slow records make batches smaller, fast ones grow them back to the limit."""

from __future__ import annotations

from streams.batch_sizer import BatchSizer


def test_slow_records_shrink_batches_to_the_time_budget() -> None:
    sizer = BatchSizer(limit=5000, seconds=1.0)
    for _ in range(20):  # 1 ms a record: about 1,000 fit in a second
        sizer.measured(sizer.size, sizer.size * 0.001)
    assert 900 <= sizer.size <= 1100


def test_fast_records_grow_batches_back_to_the_limit() -> None:
    sizer = BatchSizer(limit=5000, seconds=1.0)
    for _ in range(20):
        sizer.measured(sizer.size, sizer.size * 0.001)
    for _ in range(20):  # 10 us a record
        sizer.measured(sizer.size, sizer.size * 0.00001)
    assert sizer.size == 5000


def test_small_batches_say_nothing_about_the_pace() -> None:
    sizer = BatchSizer(limit=5000, seconds=1.0)
    sizer.measured(10, 5.0)  # a trickle of input, however slow, keeps the size
    assert sizer.size == 5000


def test_the_size_never_falls_below_the_floor() -> None:
    sizer = BatchSizer(limit=5000, seconds=1.0, floor=100)
    for _ in range(50):
        sizer.measured(sizer.size, 60.0)
    assert sizer.size == 100
