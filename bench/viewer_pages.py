"""Viewer-list paging on a story with 1,000,000 viewers: a page deep in the list costs what
the first page costs.

    python -m bench.viewer_pages [--viewers 1000000] [--limit 50] [--repeat 300]

Fills one partition's RocksDB (the worker's PartitionStore) with the story's viewer-list keys,
laid out by `streams.stages.viewer_list` exactly as the views stage writes them, then times the
API's read path (`page_bounds` -> `scan_committed` -> `read_page`) for pages starting at the
first viewer, at 25/50/75% of the list and at the last page, each the median of `--repeat`
reads, and prints each next to the first page's time (the baseline, same run).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.types import millis
from streams.runtime.store import PartitionStore
from streams.stages.viewer_list import (
    INDEX,
    ViewerEntry,
    encode_cursor,
    page_bounds,
    read_page,
    viewer_index_key,
    viewer_order_key,
)

STORY = "bench-story"
FIRST_VIEW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def viewer(i: int) -> tuple[str, datetime]:
    """Viewer i and their first view: several viewers share a millisecond, as in real traffic."""
    return f"user-{i:07d}", FIRST_VIEW + timedelta(milliseconds=i // 3)


def fill(store: PartitionStore, viewers: int, chunk: int = 100_000) -> None:
    for start in range(0, viewers, chunk):
        for i in range(start, min(start + chunk, viewers)):
            viewer_id, at = viewer(i)
            store.put(viewer_order_key(STORY, at, viewer_id), b"")
            entry = ViewerEntry(millis(at), (f"ev-{i}",))
            store.put(viewer_index_key(STORY, viewer_id), INDEX.encode(entry))
        store.flush()


def page_seconds(store: PartitionStore, cursor: str | None, limit: int, repeat: int) -> float:
    """Median seconds to read one page from `cursor`, as the API does."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        start, prefix = page_bounds(STORY, cursor)
        page = read_page((k for k, _ in store.scan_committed(prefix, start)), prefix, limit)
        times.append(time.perf_counter() - started)
        assert len(page.viewers) == limit
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = PartitionStore(Path(tmp) / "partition-0")
        started = time.monotonic()
        fill(store, args.viewers)
        print(f"{args.viewers:,} viewers stored in {time.monotonic() - started:.1f}s")
        positions = {
            "first page": 0,
            "at 25%": args.viewers // 4,
            "at 50%": args.viewers // 2,
            "at 75%": args.viewers * 3 // 4,
            "last page": args.viewers - args.limit,
        }
        baseline = None
        print(f"\n{'page of ' + str(args.limit):<16}{'median':>12}{'vs first page':>16}")
        for name, position in positions.items():
            cursor = None
            if position:  # the cursor the previous page would have returned
                viewer_id, at = viewer(position - 1)
                cursor = encode_cursor(viewer_order_key(STORY, at, viewer_id))
            seconds = page_seconds(store, cursor, args.limit, args.repeat)
            baseline = baseline or seconds
            print(f"{name:<16}{seconds * 1e6:>10.0f}us{seconds / baseline:>15.2f}x")
        store.close()


if __name__ == "__main__":
    main()
