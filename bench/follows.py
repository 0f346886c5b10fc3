"""Follows of a large author: the author stage's state per follower key vs one pickled set.

    python -m bench.follows [--followers 100000] [--follows 2000] [--batch 100]

An author starts with `--followers` followers; `--follows` new follows arrive in batches of
`--batch`, each batch applied and written to RocksDB (the engine's commit). Two layouts, in
one run, on the same inputs:

- storystream: the author stage as it runs (`apply_authors`, `streams/handlers/follow_graph`):
  a small value per author, a key per follower;
- baseline: the layout before it, one pickled `Author` holding its follower set, applied
  by `apply_by_key` (each follow copies the set; each batch rewrites the whole value, which
  is also what the changelog would carry).

Prints the time per follow, the bytes written per batch (what goes to the changelog) and
the largest value written (a Kafka record holds 1 MB by default).
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from processors import authors
from processors.authors import Author
from streams.runtime.engine import InRecord, PartitionContext
from streams.runtime.store import PartitionStore
from streams.stages.common import Table, apply_by_key
from streams.stages.follow_graph import FOLLOWER_TAG, core_key, member_prefix
from streams.stages.social import apply_authors
from tests.processors.factories_social import T0, ctx, followed

AUTHOR = "celebrity_author_0001"


class _Pickled(Table[Author]):
    """The baseline's layout: the author pickled whole under the same key, uncompressed (as
    it was; tables now compress values over 64 KiB, which would hide what it wrote)."""

    def encode(self, value: Author) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


PICKLED = _Pickled("author")


class _Engine:
    def __init__(self) -> None:
        self.policy = ctx(celebrity_followers=10**9).policy  # fan-out is not measured here
        self.emitted = 0

    def emit(self, _: PartitionContext, outputs: Iterable[Any]) -> None:
        self.emitted += sum(1 for _ in outputs)


def _user(i: int) -> str:
    return f"user_{i:012d}"  # 17 characters, a plausible user id


def _records(users: Iterable[str]) -> list[tuple[InRecord, Any]]:
    return [
        (InRecord("user-follows", 0, i, AUTHOR.encode(), None, 0), followed(user, AUTHOR))
        for i, user in enumerate(users)
    ]


def _run(
    name: str,
    store: PartitionStore,
    apply: Callable[[PartitionContext, list[tuple[InRecord, Any]]], None],
    args: argparse.Namespace,
) -> tuple[float, float, int]:
    """Seconds per follow, bytes written per batch, largest value written."""
    pctx = PartitionContext(_Engine(), 0, store, T0)  # type: ignore[arg-type]
    batches = [
        _records(_user(args.followers + i) for i in range(first, first + args.batch))
        for first in range(0, args.follows, args.batch)
    ]  # made before the clock starts: the events' validation is not the stage's work
    written = largest = 0
    seconds = 0.0
    for batch in batches:
        start = time.perf_counter()
        apply(pctx, batch)
        seconds += time.perf_counter() - start
        sizes = [len(v) + len(k) for k, v in store.dirty.items() if v is not None]
        written += sum(sizes)
        largest = max(largest, *sizes)
        start = time.perf_counter()
        store.flush()
        seconds += time.perf_counter() - start
    per_follow = seconds / args.follows
    print(
        f"  {name:<40} {per_follow * 1e6:>10,.1f} us a follow  "
        f"{written / len(batches):>12,.0f} B written a batch  largest value {largest:>10,} B"
    )
    return per_follow, written / len(batches), largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--follows", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    followers = [_user(i) for i in range(args.followers)]
    print(
        f"author with {args.followers:,} followers, {args.follows:,} follows in batches of "
        f"{args.batch}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        stored = PartitionStore(Path(tmp) / "stored")
        records = _records(followers)
        start = time.perf_counter()
        apply_authors(PartitionContext(_Engine(), 0, stored, T0), records)  # type: ignore[arg-type]
        stored.flush()
        print(
            f"  (storystream: {args.followers:,} follows applied in {time.perf_counter() - start:.2f}s)"
        )
        keys = sum(1 for _ in stored.scan(member_prefix(FOLLOWER_TAG, AUTHOR)))
        assert keys == args.followers, keys

        pickled = PartitionStore(Path(tmp) / "pickled")
        pickled.put(core_key(AUTHOR), PICKLED.encode(Author(AUTHOR, frozenset(followers))))
        pickled.flush()  # (built directly: one follow at a time would copy the set each time)

        def baseline(pctx: PartitionContext, records: list[tuple[InRecord, Any]]) -> None:
            apply_by_key(pctx, PICKLED, records, authors.handle)

        ours = _run("storystream (a key per follower)", stored, apply_authors, args)
        base = _run("baseline (one pickled set per author)", pickled, baseline, args)
        for store in (stored, pickled):
            store.close()
    print(
        f"time per follow: {base[0] / ours[0]:,.1f}x less; bytes written per batch: "
        f"{base[1] / ours[1]:,.1f}x fewer; largest value {ours[2]:,} B vs {base[2]:,} B"
    )


if __name__ == "__main__":
    main()
