"""Views reaching the tray stage: the cost of a StorySeen by how much its user has seen.

    python -m bench.trays [--users 500] [--views 4000] [--batch 1000]

Each of `--users` users starts with a tray of T fanned-out stories and M stories already
viewed (marks); then `--views` StorySeen messages for stories outside their trays (the
common case: a view of a celebrity's or a public story, or of one seen before a follow)
arrive in batches of `--batch`, each batch applied and written to RocksDB (the engine's
commit). Two layouts, in one run, on the same inputs and the same processors:

- storystream: the tray stage as it runs (`apply_trays`, `streams/stages/tray_store`): a
  small value per user, one key per mark;
- baseline: each user's marks inside the tray's value (the same codec), so a view reads and
  rewrites all of them (which is also what the changelog would carry).

Prints the CPU time of this thread per StorySeen (`time.thread_time`: other work on a shared
machine skews it less than wall time) and the bytes written per StorySeen for each (T, M).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from processors import trays
from processors.trays import TrayState
from streams.runtime.context import StageContext
from streams.runtime.records import InRecord
from streams.runtime.store import PartitionStore
from streams.stages.common import by_key, ctx_of
from streams.stages.social import apply_trays
from streams.stages.state import Table
from tests.processors.factories_social import added, at, seen
from tests.streams.stage_context import recording_context

SCENARIOS = ((0, 1), (0, 10), (0, 100), (0, 1000), (20, 10), (20, 100))
WHOLE: Table[TrayState] = Table("tray", TrayState)  # the baseline's: marks inside


def _whole_values(pctx: StageContext, decoded: Iterable[tuple[InRecord, Any]]) -> None:
    """The baseline: each user's state, marks and all, read and written as one value."""
    for user_id, items in by_key(decoded).items():
        state: TrayState | None = WHOLE.get(pctx.store, user_id)
        for record, message in items:
            state, _ = trays.handle(state, message, ctx_of(pctx, record))
        WHOLE.set(pctx.store, user_id, state)


Apply = Callable[[StageContext, Iterable[tuple[InRecord, Any]]], None]


def run(apply: Apply, users: int, views: int, batch: int, stories: int, marks: int) -> Any:
    """(seconds per StorySeen, bytes written per StorySeen) of `apply` in one scenario."""
    offsets = iter(range(10**9))
    with tempfile.TemporaryDirectory() as tmp:
        store = PartitionStore(Path(tmp) / "p0")

        def apply_batch(messages: list[Any], minute: float) -> int:
            pctx, _ = recording_context(store, at(minute))
            records = [
                (InRecord("t", 0, next(offsets), m.user_id.encode(), None, 0), m) for m in messages
            ]
            apply(pctx, records)
            store.keep_run()  # the driver's, after a run that succeeded
            written = sum(len(k) + len(v or b"") for k, v in store.dirty.items())
            store.flush()
            return written

        setup: list[Any] = [
            added(f"user-{u:06d}", f"author-{j % 7}", f"tray-{u}-{j}")
            for u in range(users)
            for j in range(stories)
        ]
        setup += [
            seen(f"user-{u:06d}", f"before-{u}-{i}") for i in range(marks) for u in range(users)
        ]
        for start in range(0, len(setup), 5_000):
            apply_batch(setup[start : start + 5_000], 1)
        timed = [seen(f"user-{i % users:06d}", f"story-{i}", 2) for i in range(views)]
        written = 0
        started = time.thread_time()
        for start in range(0, views, batch):
            written += apply_batch(timed[start : start + batch], 2)
        seconds = time.thread_time() - started
        store.close()
    return seconds / views, written / views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--views", type=int, default=4_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    print(
        f"{args.views:,} StorySeen over {args.users:,} users, batches of {args.batch:,}; "
        "T tray stories, M marks (stories seen before) per user"
    )
    print(f"{'T':>3} {'M':>5}  {'storystream':>22}  {'baseline (one value)':>24}  speed-up")
    for stories, marks in SCENARIOS:
        sized = (args.users, args.views, args.batch, stories, marks)
        new_s, new_b = run(apply_trays, *sized)
        old_s, old_b = run(_whole_values, *sized)
        print(
            f"{stories:>3} {marks:>5}  {new_s * 1e6:>8.1f} us {new_b:>7,.0f} B  "
            f"{old_s * 1e6:>10.1f} us {old_b:>9,.0f} B  {old_s / new_s:>7.1f}x"
        )


if __name__ == "__main__":
    main()
