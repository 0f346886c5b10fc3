"""Python's garbage collector while batches are applied (the live engine, replay).

A batch allocates millions of short-lived objects, and Python's default collector would run a
young collection every 700 of them, walking the engine's caches and the messages held: while
batches run, young collections run every 50,000 allocations instead.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GC_THRESHOLDS = (50_000, 20, 100)


@contextmanager
def batch_collection() -> Iterator[None]:
    """The collector's thresholds for batches inside the block; the former ones after it."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
