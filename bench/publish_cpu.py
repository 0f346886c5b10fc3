"""CPU time per line of publish's worker side, without a broker (thread_time: a shared machine
disturbs it less than wall time).

    python -m bench.publish_cpu [--lines 100000]

Prints, for the bench.publish mix of lines: the general (orjson) lane alone, the flat
(msgspec) lane alone, and a worker's whole job per block (split, lanes, result packed as the
worker sends it), with the garbage collector as publish sets it.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bench.publish import generate
from streams.publish.publisher import _lanes, blocks, encode_block_packed

TTL = timedelta(hours=24)


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The least CPU time of `runs` runs, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.thread_time()
        work()
        best = min(best, time.thread_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        generate(path, args.lines)
        with path.open("rb") as stream:
            block_list = list(blocks(stream))
    lines = [line for data in block_list for line in data.split(b"\n") if line]
    flat, lane, _ = _lanes(None, TTL)
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)  # as publish runs

    def worker() -> None:
        for block in block_list:
            encode_block_packed(block, TTL, None)  # the bytes a worker sends back

    worker()  # warm the time caches
    figures = {
        "general lane (orjson), per line": lambda: [lane.encode(line) for line in lines],
        "flat lane (msgspec), per line": lambda: flat.encode_lines(lines),
        "worker job per block (split, lanes, packing)": worker,
    }
    for name, work in figures.items():
        print(f"{name:<48} {best_of(5, work) / len(lines) * 1e6:6.2f} us/line")


if __name__ == "__main__":
    main()
