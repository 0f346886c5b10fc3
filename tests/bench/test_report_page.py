"""bench.report's page: figures and REPORT.md from a small synthetic result set (no bench runs)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from bench.report_page import SECTIONS, TITLES, write_page


def _entry(command: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": command,
        "load_before": [3.5, 3.0, 2.5],
        "load_after": [4.25, 3.1, 2.6],
        "seconds": 12.0,
        "data": data,
    }


def _results() -> dict[str, Any]:
    rng = random.Random(1)

    def view_result(key: str, name: str, rate: float) -> dict[str, Any]:
        return {"key": key, "name": name, "count": 20_000, "seconds": 20_000 / rate, "rate": rate}

    return {
        "machine": {
            "cores": 2,
            "memory_gib": 7.8,
            "cpu": "Synthetic CPU @ 2.0GHz",
            "python": "3.11.9",
            "platform": "Linux",
            "date": "2026-12-04T00:00:00+00:00",
            "commit": "abc1234",
            "dirty": False,
            "load": [5.0, 4.0, 3.0],
        },
        "finished": "2026-12-04T00:10:00+00:00",
        "load_end": [6.0, 5.0, 4.0],
        "full": False,
        "benches": {
            "views": _entry(
                "python -m bench.views --quick --brokers tansu,kafka",
                {
                    "views": 20_000,
                    "stories": 500,
                    "brokers": {
                        impl: [
                            view_result("ceiling", "ceiling: consume+decode+dict", 90_000.0),
                            view_result("storystream", "storystream engine", 20_000.0),
                            view_result("quix", "Quix Streams (count+HLL, RocksDB)", 14_000.0),
                            view_result("faust", "naive Faust (count Table, rocksdb)", 1_400.0),
                        ]
                        for impl in ("tansu", "kafka")
                    },
                },
            ),
            "e2e": _entry(
                "python -m bench.e2e --views 50000",
                [
                    {
                        "processes": processes,
                        "views": 50_000,
                        "stories": 2_000,
                        "users": 20_000,
                        "first_views": 41_000,
                        "rates": {
                            "publish": 55_000,
                            "counts": 20_000 * processes,
                            "trays": 18_000 * processes,
                            "baseline": 1e5,
                        },
                        "worker_cpu_us_per_view": 61.0,
                    }
                    for processes in (1, 2)
                ],
            ),
            "fanout": _entry(
                "python -m bench.fanout --followers 300",
                {
                    "followers": 300,
                    "arrivals": sorted(rng.uniform(0.2, 2.0) for _ in range(300)),
                    "rate": 5_000.0,
                },
            ),
            "expiry": _entry(
                "python -m bench.expiry --stories 500",
                {
                    "stories": 500,
                    "delays": [rng.expovariate(2.0) for _ in range(500)],
                    "views_before": 9_000.0,
                    "views_during": 7_000.0,
                },
            ),
            "memory": _entry(
                "python -m bench.memory --stories 1000 --views 10000",
                {
                    "samples": [{"stories": 0, "views": 0, "rss": 150.0, "peak": 150.0}]
                    + [
                        {"stories": s, "views": 0, "rss": 150 + s / 20, "peak": 160 + s / 20}
                        for s in (200, 400, 600, 800, 1000)
                    ]
                    + [
                        {"stories": 1000, "views": v, "rss": 200 + v / 200, "peak": 210 + v / 200}
                        for v in (2000, 4000, 6000, 8000, 10000)
                    ],
                    "tray_seconds": [0.002, 0.003, 0.004],
                },
            ),
            "scale": {
                "command": "python -m bench.scale --quick --no-recovery",
                "load_before": [3.0, 3.0, 3.0],
                "load_after": [3.0, 3.0, 3.0],
                "seconds": 30.0,
                "error": "exit 1:\nTimeoutError: the group never owned every partition",
            },
        },
    }


def test_the_page_holds_every_section_with_its_figure(tmp_path: Path) -> None:
    results = _results()
    results["benches"]["views"]["data"]["brokers"]["kafka"].append(
        {"key": "kstreams", "name": "Kafka Streams (1 thread, warm)", "count": 20_000}
        | {"seconds": 20_000 / 6_000, "rate": 6_000.0}
    )
    results["benches"]["views"]["data"]["brokers"]["tansu"].append(
        {
            "key": "kstreams",
            "name": "Kafka Streams",
            "count": 0,
            "seconds": 0.0,
            "rate": 0.0,
            "note": "skipped: the embedded broker cannot decode a Java client's JoinGroup\nmore",
        }
    )
    page = write_page(results, tmp_path)

    text = page.read_text()
    assert page == tmp_path / "REPORT.md"
    for number, name in enumerate(SECTIONS, 1):
        assert f"## {number}. {TITLES[name]}" in text
    for name in ("views", "e2e", "fanout", "expiry", "memory"):
        image = tmp_path / f"{name}.png"
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert image.stat().st_size > 5_000, name  # a drawn figure, not an empty canvas
        assert f"]({name}.png)" in text
    # The machine and the load around each bench, the sizes each ran with.
    assert "Synthetic CPU @ 2.0GHz, 2 cores" in text
    assert "abc1234" in text and "3.11.9" in text
    assert "5.00 / 4.00 / 3.00" in text and "6.00 / 5.00 / 4.00" in text
    assert "3.50 / 3.00 / 2.50 before, 4.25 / 3.10 / 2.60 after" in text
    assert "`python -m bench.e2e --views 50000`" in text
    # Figures in the text beside the plots, with their same-run baselines.
    assert (
        "| storystream engine | 20,000 (0.22 of the ceiling) | 20,000 (0.22 of the ceiling) |"
        in text
    )
    assert "1 process(es): the whole worker at 18,000 views/s, 0.18 of the bare baseline" in text
    assert "2 process(es): the whole worker at 36,000 views/s, 0.36 of the bare baseline" in text
    assert "7,000 during the burst against 9,000 just before it" in text
    assert "Idle worker 150 MiB (the baseline)" in text
    assert "From 200 to 1,000 stories: 52,429 bytes of RSS a story." in text
    assert "| Kafka Streams (1 thread, warm) | - | 6,000 (0.07 of the ceiling) |" in text
    # A contender that could not run on a broker is named with the bench's reason.
    assert "- tansu: Kafka Streams: not run (skipped: the embedded broker cannot" in text
    # A failed bench is on the page with its reason, not silently missing.
    assert not (tmp_path / "scale.png").exists()
    assert "the group never owned every partition" in text
    json.dumps(results)  # what the runner saves to redraw the page from


def test_a_bench_not_run_says_how_to_run_it(tmp_path: Path) -> None:
    results = _results()
    del results["benches"]["memory"]
    text = write_page(results, tmp_path).read_text()
    assert "Not run (`python -m bench.report --only memory`)." in text
    assert not (tmp_path / "memory.png").exists()
