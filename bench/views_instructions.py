"""Instructions a view on the engine's views path, counted by valgrind's callgrind: a figure that
does not move with the load on a shared machine (CPU time here varies by 10-40% run to run), so
two trees can be compared by one run each.

    python -m bench.views_instructions [--views 40000] [--trays]

Needs valgrind (Debian's package). The same generated input as `bench.views`, Avro-encoded as
`publish` does it, is written to a file once; then each figure is a child process under
callgrind, counting the main thread only (RocksDB's background threads vary from run to run):

- the engine (`bench.views_engine`'s setup: real handlers, RocksDB stores, changelog, commit
  path, a counting producer) processing the posts, then the views; minus the same child
  processing the posts only;
- with `--trays`, also the tray stage: the engine processing the posts, the views, then the
  StorySeen forwards the views made (as `bench.views_engine --trays` hands them over); minus
  the engine's posts and views, a figure per StorySeen;
- baseline, in the same run: the ceiling loop of `bench.views` (fastavro decode and a count in
  a dict) over the view records; minus the same child loading the records only.

Each count includes whatever Python does at the time (garbage collection, the dict caches);
both children of a pair run the same code up to the part measured, so the difference is that
part. Under valgrind a child takes about 40 times as long: about 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import marshal
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RECORDS = "records.marshal"
STEPS = ("posts", "views", "load", "ceiling", "trays")  # a pair differs by its second step


def prepare(directory: Path, views: int) -> None:
    from bench.views import encode, generate
    from bench.views_engine import as_records

    posts, events = generate(max(views // 40, 1), views, max(views // 2, 1))
    records = [[tuple(r) for r in as_records(encode(batch))] for batch in (posts, events)]
    (directory / RECORDS).write_bytes(marshal.dumps(records))


def child(directory: Path, step: str) -> None:
    """One measured process: `posts`/`views` run the engine, `load`/`ceiling` the ceiling loop."""
    from streams.runtime.collector import GC_THRESHOLDS
    from streams.runtime.engine import InRecord

    posts, views = (
        [InRecord(*r) for r in rs] for rs in marshal.loads((directory / RECORDS).read_bytes())
    )
    if step in ("load", "ceiling"):
        from bench.views_engine import ceiling

        if step == "ceiling":
            ceiling(views)
        return
    from bench.views_engine import engine_over, feed

    gc.set_threshold(*GC_THRESHOLDS)  # as Engine.run does
    state = directory / f"state-{step}"
    engine, producer = engine_over(state, keep=("tray",))
    feed(engine, posts)
    if step in ("views", "trays"):
        feed(engine, views)
    if step == "trays":
        feed(engine, producer.kept)
        seen = engine.metrics.processed.value("bench-stage-tray")
        (directory / "seen").write_text(str(int(seen)))
    for assigned in engine._assigned.values():
        assigned.store.close()


def count(directory: Path, step: str) -> int:
    """Instructions of the main thread of a child run under callgrind."""
    out = directory / f"callgrind-{step}"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.views_instructions",
            "--child",
            step,
            "--dir",
            str(directory),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict and set layouts every run
    )
    main_thread = Path(f"{out}-01")
    for line in main_thread.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {main_thread}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=40_000)
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trays", action="store_true", help="the tray stage too")
    args = parser.parse_args()
    if args.child:
        child(args.dir, args.child)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bench-views-instructions-") as tmp:
        directory = Path(tmp)
        prepare(directory, args.views)
        steps = STEPS if args.trays else STEPS[:-1]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            counts = dict(
                zip(steps, pool.map(lambda step: count(directory, step), steps), strict=True)
            )
        seen = int((directory / "seen").read_text()) if args.trays else 0
    engine = (counts["views"] - counts["posts"]) / args.views
    base = (counts["ceiling"] - counts["load"]) / args.views
    print(f"{args.views:,} views, instructions of the main thread (callgrind):")
    print(f"  engine views path   {engine:9,.0f} a view")
    print(f"  ceiling loop        {base:9,.0f} a view  (baseline)")
    print(f"  ratio               {engine / base:9.2f}x the ceiling loop's")
    if args.trays:
        trays = (counts["trays"] - counts["views"]) / seen
        print(f"  engine tray stage   {trays:9,.0f} a StorySeen ({seen:,} of them)")


if __name__ == "__main__":
    main()
