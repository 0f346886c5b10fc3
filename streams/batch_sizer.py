"""Batch sizes that keep a batch near a time budget.

Timers (the expiry scan) run between batches, so a batch of slow records (fan-out, tray
updates) must not hold them back for seconds, while fast records (views) still come in
batches big enough to coalesce many updates per key.
"""

from __future__ import annotations


class BatchSizer:
    def __init__(self, limit: int, seconds: float, floor: int = 100) -> None:
        self.limit, self.seconds, self.floor = limit, seconds, floor
        self.size = limit

    def measured(self, count: int, seconds: float) -> None:
        """A batch of `count` records took `seconds` to process: aim the next one.

        Only a batch at least half full measures the pace (a small one says the input is
        light, not that records are fast); the size moves halfway to the fitting one, so
        one odd batch does not swing it.
        """
        if count < self.size // 2 or seconds <= 0:
            return
        fitting = int(count * self.seconds / seconds)
        self.size = max(self.floor, min(self.limit, (self.size + fitting) // 2))
