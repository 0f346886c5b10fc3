"""The collector's thresholds while batches run (the live engine, replay), and after."""

from __future__ import annotations

import gc

import pytest

from streams.runtime.collector import GC_THRESHOLDS, batch_collection

DEFAULT = (700, 10, 10)  # Python's own (another test in this process may have left others)


def test_batches_run_with_rarer_young_collections_and_the_former_ones_come_back() -> None:
    original = gc.get_threshold()
    gc.set_threshold(*DEFAULT)
    try:
        with batch_collection():
            assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_threshold() == DEFAULT
        with pytest.raises(RuntimeError), batch_collection():
            raise RuntimeError("a batch failed")
        assert gc.get_threshold() == DEFAULT
    finally:
        gc.set_threshold(*original)
