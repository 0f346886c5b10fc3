"""One page of figures: runs the benchmarks and writes bench/report/REPORT.md with PNG plots.

    python -m bench.report [--full] [--only views e2e fanout expiry memory scale]
                           [--brokers tansu[,kafka]] [--out bench/report] [--replot]

Each bench runs as its own process (`python -m bench.NAME ... --json FILE`), small sizes by
default (about ten minutes on 2 cores), the issue's sizes with `--full`. The load average is
read before and after each, since the machine may be shared. The results are kept in
`results.json` beside the page; `--replot` redraws the page from it without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report_page import SECTIONS, write_page

OUT = Path(__file__).parent / "report"

# name: (sizes by default, sizes with --full); `{out}` is where the bench writes its JSON.
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "views": (["--quick"], []),
    # 400,000: at 50,000 the run lasts about as long as a few batches and commits.
    "e2e": (["--views", "400000"], ["--views", "400000"]),
    "fanout": (["--followers", "10000"], ["--followers", "10000"]),
    "expiry": (["--stories", "20000"], []),
    "memory": (["--stories", "50000", "--views", "500000"], []),
    # Not --quick: its 20,000 views go by in a batch or two, too few to time a group.
    "scale": (["--views", "200000", "--no-recovery"], ["--no-recovery"]),
}
JSON_OPTION = {"memory": "--out"}  # the others take `--json`


def machine() -> dict[str, Any]:
    """What the page says it ran on."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    meminfo = Path("/proc/meminfo").read_text().split()
    memory_kib = int(meminfo[meminfo.index("MemTotal:") + 1])
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_kib / 2**20,
        "cpu": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "load": os.getloadavg(),
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def run_bench(name: str, options: list[str], scratch: Path) -> dict[str, Any]:
    """Run `python -m bench.NAME OPTIONS`; its JSON results, the load around it, its wall time,
    and on failure the tail of what it printed."""
    out = scratch / f"{name}.json"
    cmd = [
        sys.executable,
        "-m",
        f"bench.{name}",
        *options,
        JSON_OPTION.get(name, "--json"),
        str(out),
    ]
    shown = " ".join(["python -m", f"bench.{name}", *options])
    print(f"== {shown}", flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.monotonic() - started
    print(done.stdout, flush=True)
    entry: dict[str, Any] = {
        "command": shown,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "seconds": seconds,
    }
    if done.returncode == 0 and out.exists():
        entry["data"] = json.loads(out.read_text())
    else:
        entry["error"] = f"exit {done.returncode}:\n" + done.stdout[-2000:]
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="the issue's sizes (hours, not minutes)"
    )
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    parser.add_argument(
        "--brokers",
        default=None,
        help="bench.views' brokers (default tansu,kafka; Kafka Streams runs only on kafka)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--replot", action="store_true", help="redraw the page from OUT/results.json only"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "results.json"
    if args.replot:
        results = json.loads(saved.read_text())
    else:
        results = {"machine": machine(), "full": args.full, "benches": {}}
        brokers = args.brokers or "tansu,kafka"
        with tempfile.TemporaryDirectory(prefix="bench-report-") as scratch:
            for name in args.only:
                options = list(BENCHES[name][1 if args.full else 0])
                if name == "views":
                    options += ["--brokers", brokers]
                results["benches"][name] = run_bench(name, options, Path(scratch))
                saved.write_text(json.dumps(results))  # what ran so far survives a failure
        results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["load_end"] = os.getloadavg()
        saved.write_text(json.dumps(results))
    page = write_page(results, args.out)
    missing = [s for s in SECTIONS if s not in results["benches"]]
    print(f"wrote {page}" + (f" (not run: {', '.join(missing)})" if missing else ""))


if __name__ == "__main__":
    main()
