"""Follows of a large author: a key per follower (the author stage) vs one value holding the set.

    python -m bench.follows [--followers 100000] [--follows 2000] [--batch 100]

An author starts with `--followers` followers; `--follows` new follows arrive in batches of
`--batch`, each batch applied and written to RocksDB (the engine's commit). Two layouts, in
one run, on the same inputs:

- storystream: the author stage as it runs (`apply_authors`, `streams/stages/follow_graph`):
  a small value per author, a key per follower;
- baseline: one value per author holding its follower set (MessagePack), applied to an
  in-memory `Author` (each follow copies the set; each batch rewrites the whole value, which
  is also what the changelog would carry).

Prints the CPU time of this thread per follow (`time.thread_time`: other work on a shared
machine skews it less than wall time), the bytes written per batch (what goes to the changelog) and
the largest value written (a Kafka record holds 1 MB by default).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

from processors import authors
from processors.authors import Author
from streams.runtime.context import StageContext
from streams.runtime.records import InRecord
from streams.runtime.store import PartitionStore
from streams.stages.common import by_key, ctx_of
from streams.stages.follow_graph import FOLLOWER_TAG, core_key, member_prefix
from streams.stages.social import apply_authors
from tests.processors.factories_social import T0, ctx, followed
from tests.streams.stage_context import recording_context

AUTHOR = "celebrity_author_0001"
POLICY = ctx(celebrity_followers=10**9).policy  # fan-out is not measured here
_WHOLE = tuple[str, list[str], list[str], bool]


def _whole(author: Author) -> bytes:
    """The baseline's value: the author and its sets, whole (stories aside: there are none)."""
    return msgspec.msgpack.encode(
        (author.author_id, sorted(author.followers), sorted(author.close_friends), author.celebrity)
    )


def _author(data: bytes) -> Author:
    author_id, followers, close_friends, celebrity = msgspec.msgpack.decode(data, type=_WHOLE)
    return Author(author_id, frozenset(followers), frozenset(close_friends), (), celebrity)


def baseline(pctx: StageContext, records: list[tuple[InRecord, Any]]) -> None:
    """Each author read whole, its inputs applied, written whole."""
    for author_id, items in by_key(records).items():
        raw = pctx.store.get(core_key(author_id))
        state = _author(raw) if raw is not None else None
        for record, item in items:
            state, outputs = authors.handle(state, item, ctx_of(pctx, record))
            pctx.emit(outputs)
        assert state is not None
        pctx.store.put(core_key(author_id), _whole(state))


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
    apply: Callable[[StageContext, list[tuple[InRecord, Any]]], None],
    args: argparse.Namespace,
) -> tuple[float, float, int]:
    """Seconds per follow, bytes written per batch, largest value written."""
    pctx, _ = recording_context(store, T0, POLICY)
    batches = [
        _records(_user(args.followers + i) for i in range(first, first + args.batch))
        for first in range(0, args.follows, args.batch)
    ]  # made before the clock starts: the events' validation is not the stage's work
    written = largest = 0
    seconds = 0.0
    for batch in batches:
        start = time.thread_time()
        apply(pctx, batch)
        store.keep_run()  # the driver's, after a run that succeeded
        seconds += time.thread_time() - start
        sizes = [len(v) + len(k) for k, v in store.dirty.items() if v is not None]
        written += sum(sizes)
        largest = max(largest, *sizes)
        start = time.thread_time()
        store.flush()
        seconds += time.thread_time() - start
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
        apply_authors(recording_context(stored, T0, POLICY)[0], records)
        stored.flush()
        print(
            f"  (storystream: {args.followers:,} follows applied in {time.perf_counter() - start:.2f}s)"
        )
        keys = sum(1 for _ in stored.scan(member_prefix(FOLLOWER_TAG, AUTHOR)))
        assert keys == args.followers, keys

        whole = PartitionStore(Path(tmp) / "whole")
        whole.put(core_key(AUTHOR), _whole(Author(AUTHOR, frozenset(followers))))
        whole.flush()  # (built directly: one follow at a time would copy the set each time)

        ours = _run("storystream (a key per follower)", stored, apply_authors, args)
        base = _run("baseline (one value holding the set)", whole, baseline, args)
        for store in (stored, whole):
            store.close()
    print(
        f"time per follow: {base[0] / ours[0]:,.1f}x less; bytes written per batch: "
        f"{base[1] / ours[1]:,.1f}x fewer; largest value {ours[2]:,} B vs {base[2]:,} B"
    )


if __name__ == "__main__":
    main()
