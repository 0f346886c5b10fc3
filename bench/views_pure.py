"""Micro-benchmark of the pure views path: batches grouped per story, no broker, no RocksDB.

    .venv/bin/python -m bench.views_pure [--views 200000] [--stories 5000] [--batch 1000]
                                         [--viewers 50000] [--skew 0]

Times are CPU seconds of this thread (`time.thread_time`), so other processes on the machine
skew them less. The whole pure path the wiring runs is timed (group per story, plan lookups,
resolve them against a dict standing in for RocksDB, apply, compute the writes, encode and
decode the state), then its `apply_views` calls are replayed alone. `--skew s` draws stories
Zipf(s) instead of uniformly (uniform: about one view per story per batch, so per-batch costs
dominate).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from processors.context import Ctx
from processors.story_info import StoryInfo
from processors.views import View, ViewState, apply_views
from schemas.events import StoryViewed
from streams.stages.state import Codec
from streams.stages.viewer_list import lookup_viewers, write_views

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def generate(views: int, stories: int, viewers: int, skew: float, seed: int) -> list[StoryViewed]:
    """Views in arrival order, validated once up front (decoding is not the pure path)."""
    rng = random.Random(seed)
    story_ids = [f"story-{i}" for i in range(stories)]
    weights = [1 / (i + 1) ** skew for i in range(stories)] if skew else None
    chosen = rng.choices(story_ids, weights=weights, k=views)
    return [
        StoryViewed(
            event_id=f"ev-{i}",
            story_id=story_id,
            viewer_id=f"user-{rng.randrange(viewers)}",
            viewed_at=T0 + timedelta(milliseconds=i * 7),
        )
        for i, story_id in enumerate(chosen)
    ]


Call = tuple[ViewState | None, StoryInfo, list[View], dict[str, int], set[str]]
STATES: Codec[ViewState] = Codec(ViewState)


class _Store(dict[bytes, bytes]):
    """A dict standing in for RocksDB, with what the viewer list writes through."""

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        self.update(items)

    def delete(self, key: bytes) -> None:
        self.pop(key, None)


def run(events: list[View], batch: int, stories: int) -> tuple[float, list[Call], int]:
    """(whole pure path CPU seconds, the apply_views calls it made, outputs produced)."""
    infos = {
        f"story-{i}": StoryInfo(f"story-{i}", f"author-{i}", T0 + timedelta(hours=24), "live")
        for i in range(stories)
    }
    states: dict[str, bytes] = {}
    kv = _Store()
    ctx = Ctx(now=T0)
    calls: list[Call] = []
    produced = 0
    started = time.thread_time()
    for start in range(0, len(events), batch):
        grouped: defaultdict[str, list[View]] = defaultdict(list)
        for event in events[start : start + batch]:
            grouped[event.story_id].append(event)
        for story_id, views in grouped.items():
            info = infos[story_id]
            raw = states.get(story_id)
            state = None if raw is None else STATES.decode(raw)
            lookup = lookup_viewers(kv, story_id, info.author_id, views)
            calls.append((state, info, views, lookup.known, lookup.seen))
            result = apply_views(state, info, views, lookup.known, lookup.seen, ctx)
            write_views(kv, story_id, result, lookup)
            if result.changed and result.state is not None:
                states[story_id] = STATES.encode(result.state)
            produced += len(result.outputs)
    return time.thread_time() - started, calls, produced


def replay(calls: list[Call]) -> float:
    """CPU seconds of the same apply_views calls alone."""
    ctx = Ctx(now=T0)
    started = time.thread_time()
    for state, info, views, known, seen in calls:
        apply_views(state, info, views, known, seen, ctx)
    return time.thread_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--stories", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--viewers", type=int, default=50_000)
    parser.add_argument("--skew", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    events = [
        View.of(e.__dict__)
        for e in generate(args.views, args.stories, args.viewers, args.skew, args.seed)
    ]
    whole, calls, produced = run(events, args.batch, args.stories)
    applying = replay(calls)
    count = len(events)
    print(f"{count:,} views, {args.stories:,} stories, batches of {args.batch}, skew {args.skew}:")
    print(f"  {len(calls):,} apply_views calls, {produced:,} outputs")
    print(f"  apply_views only  {count / applying:>9,.0f} views/s ({applying:.2f} s CPU)")
    print(f"  whole pure path   {count / whole:>9,.0f} views/s ({whole:.2f} s CPU)")


if __name__ == "__main__":
    main()
