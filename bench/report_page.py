"""The report's page: PNG plots (matplotlib, Agg) and REPORT.md from the benches' results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

Entry = dict[str, Any]  # one bench: command, load_before/after, seconds, data or error
BASELINE = "#9e9e9e"
OURS = "#1f77b4"
SECOND = "#6baed6"  # ours again: a second configuration
OTHERS = "#ff7f0e"
RAW = ("ceiling", "rocksdict")  # bare loops in the same run: the views bench's baselines
ORDER = ("ceiling", "rocksdict", "storystream", "kstreams-cold", "kstreams", "kstreams-2t")
SECTIONS = ("views", "e2e", "fanout", "expiry", "memory", "scale")
TITLES = {
    "views": "Views topology: throughput of each contender",
    "e2e": "The whole worker, end to end",
    "fanout": "Fan-out latency: post to each follower's tray",
    "expiry": "Expiry latency: expires_at to tombstone",
    "memory": "Memory against what the worker holds",
    "scale": "Throughput against workers",
}


def _save(fig: Figure, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def _label_bars(ax: Axes, bars: Any, values: list[float]) -> None:
    for bar, value in zip(bars, values, strict=True):
        if not value:  # a contender this broker did not run: no bar, no label
            continue
        ax.annotate(
            f"{value:,.0f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )


def _cdf(ax: Axes, values: list[float], label: str, color: str) -> None:
    ordered = sorted(values)
    n = len(ordered)
    ax.plot(ordered, [100 * (i + 1) / n for i in range(n)], color=color, label=label)
    ax.set_ylabel("% done by then")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _short(key: str, name: str) -> str:
    """A contender's tick label: its name less the details, but a Kafka Streams pass's."""
    head, _, rest = name.partition(" (")
    return f"{head}\n({rest}" if key.startswith("kstreams") and rest else head


def views_figure(data: dict[str, Any], out: Path) -> tuple[str, list[str]]:
    """Grouped bars: each contender's views/s on each broker; the ceiling grey."""
    brokers = data["brokers"]
    keys: list[str] = []  # the contenders that ran on some broker, in the bench's order
    names: dict[str, str] = {}
    lines = [f"{data['views']:,} views of {data['stories']:,} stories, each contender in turn."]
    skipped: list[str] = []
    for impl, results in brokers.items():
        for r in results:
            if r["count"] and r["key"] not in keys:
                keys.append(r["key"])
                names[r["key"]] = r["name"]
            elif not r["count"]:
                reason = (r.get("note") or "no figure").splitlines()[0]
                skipped.append(f"{impl}: {r['name']}: not run ({reason})")
    keys.sort(key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))
    fig, ax = plt.subplots(figsize=(max(9, 1.3 * len(keys)), 4.5))
    width = 0.8 / max(len(brokers), 1)
    for i, (impl, results) in enumerate(brokers.items()):
        by_key = {r["key"]: r for r in results}
        rates = [by_key[k]["rate"] if k in by_key else 0.0 for k in keys]
        colors = [BASELINE if k in RAW else OURS if k == "storystream" else OTHERS for k in keys]
        bars = ax.bar(
            [x + i * width for x in range(len(keys))],
            rates,
            width,
            color=colors,
            hatch="" if i == 0 else "//",
            edgecolor="black",
            label=impl,
        )
        _label_bars(ax, bars, rates)
    ax.set_xticks([x + width * (len(brokers) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels([_short(k, names[k]) for k in keys], rotation=15, fontsize=8)
    ax.set_ylabel("views/s (higher is better)")
    ax.set_title("views/s; grey: bare loops in the same run (baselines)")
    if len(brokers) > 1:
        ax.legend(title="broker (plain, hatched)")
    lines += ["", "| contender | " + " | ".join(f"{impl} views/s" for impl in brokers) + " |"]
    lines.append("|---" * (len(brokers) + 1) + "|")
    for k in keys:
        cells = []
        for results in brokers.values():
            by_key = {r["key"]: r for r in results}
            r, ceiling = by_key.get(k), by_key.get("ceiling")
            if r is None or not r["count"]:
                cells.append("-")
            elif ceiling and ceiling["rate"] and k != "ceiling":
                cells.append(f"{r['rate']:,.0f} ({r['rate'] / ceiling['rate']:.2f} of the ceiling)")
            else:
                cells.append(f"{r['rate']:,.0f}")
        lines.append(f"| {names[k]} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {line}" for line in skipped]
    return _save(fig, out, "views.png"), lines


def e2e_figure(runs: list[dict[str, Any]], out: Path) -> tuple[str, list[str]]:
    """Grouped bars, one group per worker size: publish, to committed counts, to committed
    trays, and the bare baseline of the same run."""
    labels = {
        "publish": "storystream publish",
        "counts": "to committed counts",
        "trays": "to committed trays\n(whole worker)",
        "baseline": "bare consume+decode\n(baseline)",
    }
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(runs)
    lines = []
    for i, data in enumerate(runs):
        rates = data["rates"]
        values = [rates[k] for k in labels]
        n = data["processes"]
        bars = ax.bar(
            [x + (i - (len(runs) - 1) / 2) * width for x in range(len(labels))],
            values,
            width,
            color=[OURS if n == 1 else SECOND] * 3 + [BASELINE],
            edgecolor="black",
            label=f"worker --processes {n}",
        )
        _label_bars(ax, bars, values)
        lines.append(
            f"{data['views']:,} views of {data['stories']:,} stories ({data['first_views']:,} "
            f"first views), one worker of {n} process(es): the whole worker at "
            f"{rates['trays']:,.0f} views/s, {rates['trays'] / rates['baseline']:.2g} of the bare "
            f"baseline ({rates['baseline']:,.0f}/s); worker CPU "
            f"{data['worker_cpu_us_per_view']:.0f} us a view."
        )
    ax.set_xticks(range(len(labels)), list(labels.values()))
    ax.set_ylabel("views/s")
    ax.legend()
    ax.set_title(f"{runs[0]['views']:,} views through one worker with every stage")
    return _save(fig, out, "e2e.png"), lines


def _latency_figure(
    values: list[float], out: Path, name: str, what: str, color: str
) -> tuple[str, list[str]]:
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(10, 4))
    hist.hist(values, bins=50, color=color, edgecolor="black", linewidth=0.3)
    hist.set_xlabel("seconds")
    hist.set_ylabel("count")
    hist.set_title(f"{what}: histogram")
    _cdf(cdf, values, what, color)
    cdf.set_xlabel("seconds")
    cdf.set_title(f"{what}: CDF")
    for q, style in ((0.5, "--"), (0.99, ":")):
        cdf.axvline(_quantile(values, q), color="black", linestyle=style, label=f"p{q * 100:.0f}")
    cdf.legend()
    for ax in (hist, cdf):
        ax.set_xlim(left=0)  # the wait before the first one is part of the latency
    line = (
        f"{len(values):,} samples: median {_quantile(values, 0.5):.2f} s, p90 "
        f"{_quantile(values, 0.9):.2f} s, p99 {_quantile(values, 0.99):.2f} s, worst "
        f"{max(values):.2f} s."
    )
    return _save(fig, out, name), [line]


def fanout_figure(data: dict[str, Any], out: Path) -> tuple[str, list[str]]:
    """Histogram and CDF of each follower's tray arrival after the post."""
    name, lines = _latency_figure(
        data["arrivals"], out, "fanout.png", "post to follower's tray", OURS
    )
    lines = [
        f"One author with {data['followers']:,} followers posts once; "
        f"{data['rate']:,.0f} tray updates/s from the post to the last tray (no same-run baseline). Each time is "
        "when the bench's reader received the follower's tray: trays arrive in batches."
    ] + lines
    return name, lines


def expiry_figure(data: dict[str, Any], out: Path) -> tuple[str, list[str]]:
    """Histogram and CDF of the delay from expires_at to each story's tombstone."""
    name, lines = _latency_figure(
        data["delays"], out, "expiry.png", "expires_at to tombstone", OURS
    )
    before, during = data["views_before"], data["views_during"]
    lines = [
        f"{data['stories']:,} stories expiring within one minute while views arrive; views/s "
        f"{during:,.0f} during the burst against {before:,.0f} just before it (same-run "
        f"baseline, ratio {during / max(before, 1e-9):.2f})."
    ] + lines
    return name, lines


def memory_figure(data: dict[str, Any], out: Path) -> tuple[str, list[str]]:
    """RSS against stories held, then against views held; the idle worker as baseline."""
    samples = data["samples"]
    idle = samples[0]["rss"]
    posting = [s for s in samples if not s["views"]]
    viewing = posting[-1:] + [s for s in samples if s["views"]]  # from the last posting step
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, rows, key, xlabel in (
        (left, posting, "stories", "stories held"),
        (right, viewing, "views", f"views held (with {samples[-1]['stories']:,} stories)"),
    ):
        xs = [s[key] for s in rows]
        ax.plot(xs, [s["rss"] for s in rows], "o-", color=OURS, label="RSS")
        ax.plot(xs, [s["peak"] for s in rows], "x--", color=OTHERS, label="peak RSS")
        ax.axhline(idle, color=BASELINE, linestyle=":", label="idle worker (baseline)")
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:,.0f}k"))
        ax.grid(alpha=0.3)
    left.set_ylabel("MiB")
    left.legend()
    stories = posting[-1]["stories"] if posting else 0
    grown = (posting[-1]["rss"] - idle) if posting else 0.0
    lines = [
        f"Idle worker {idle:,.0f} MiB (the baseline); peak {max(s['peak'] for s in samples):,.0f}"
        " MiB; "
        + (f"{grown * 2**20 / stories:,.0f} bytes of RSS per active story." if stories else "")
    ]
    if len(posting) > 2:  # past the first step's fixed costs (caches, the follows' trays)
        first, last = posting[1], posting[-1]
        slope = (last["rss"] - first["rss"]) * 2**20 / (last["stories"] - first["stories"])
        lines.append(
            f"From {first['stories']:,} to {last['stories']:,} stories: {slope:,.0f} bytes of "
            "RSS a story."
        )
    trays = data.get("tray_seconds") or []
    if trays:
        lines.append(
            f"API trays answered meanwhile: {len(trays):,}, median "
            f"{_quantile(trays, 0.5) * 1000:.1f} ms, p99 {_quantile(trays, 0.99) * 1000:.1f} ms."
        )
    return _save(fig, out, "memory.png"), lines


def scale_figure(data: dict[str, Any], out: Path) -> tuple[str, list[str]]:
    """views/s against the group size; one worker's rate as baseline."""
    rates = {int(n): r for n, r in data["rates"].items()}
    sizes = sorted(rates)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(sizes, [rates[n] for n in sizes], "o-", color=OURS, label="views/s")
    if 1 in rates:
        ax.axhline(rates[1], color=BASELINE, linestyle=":", label="one worker (baseline)")
    ax.set_xticks(sizes)
    ax.set_xlabel("workers in the group (4 partitions)")
    ax.set_ylabel("views/s")
    ax.set_ylim(0, max(rates.values()) * 1.15)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    base = rates.get(1)
    lines = [
        f"{data['views']:,} views of {data['stories']:,} stories; "
        + ", ".join(
            f"{n}: {rates[n]:,.0f}/s" + (f" (x{rates[n] / base:.2f})" if base else "")
            for n in sizes
        )
        + ". Workers and broker share the machine's cores: more workers than cores cannot scale."
    ]
    return _save(fig, out, "scale.png"), lines


FIGURES: dict[str, Callable[[Any, Path], tuple[str, list[str]]]] = {  # data: a bench's JSON
    "views": views_figure,
    "e2e": e2e_figure,
    "fanout": fanout_figure,
    "expiry": expiry_figure,
    "memory": memory_figure,
    "scale": scale_figure,
}


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def machine_lines(results: dict[str, Any]) -> list[str]:
    """The page's head: where and when it ran, and how busy the machine was."""
    m = results["machine"]
    commit = m["commit"] + (" (with uncommitted changes)" if m.get("dirty") else "")
    lines = [
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, {m['cores']} cores |",
        f"| memory | {m['memory_gib']:.1f} GiB |",
        f"| Python | {m['python']} on {m['platform']} |",
        f"| date | {m['date']} (finished {results.get('finished', 'n/a')}) |",
        f"| git commit | {commit} |",
        f"| sizes | {'the issue’s (`--full`)' if results.get('full') else 'small (default)'} |",
        f"| load average (1/5/15 min) at the start | {_load(m['load'])} |",
    ]
    if results.get("load_end"):
        lines.append(f"| load average at the end | {_load(results['load_end'])} |")
    lines.append("")
    lines.append(
        "A load average above the core count means other work shared the CPU: every figure "
        "is lower than on a quiet machine, the same-run baselines too (compare ratios, not "
        "absolutes)."
    )
    return lines


def write_page(results: dict[str, Any], out: Path) -> Path:
    """Draw every bench's figure into `out` and write `out/REPORT.md`; a bench that failed
    or did not run says so on the page."""
    out.mkdir(parents=True, exist_ok=True)
    page = ["# storystream benchmarks", "", *machine_lines(results), ""]
    benches: dict[str, Entry] = results["benches"]
    for number, name in enumerate(SECTIONS, 1):
        page += [f"## {number}. {TITLES[name]}", ""]
        entry = benches.get(name)
        if entry is None:
            page += [f"Not run (`python -m bench.report --only {name}`).", ""]
            continue
        page += [
            f"`{entry['command']}`: {entry['seconds']:.0f} s; load average "
            f"{_load(entry['load_before'])} before, {_load(entry['load_after'])} after.",
            "",
        ]
        if "data" not in entry:
            page += ["It failed:", "", "```", entry.get("error", "no output").strip(), "```", ""]
            continue
        image, lines = FIGURES[name](entry["data"], out)
        page += [f"![{TITLES[name]}]({image})", "", *lines, ""]
    path = out / "REPORT.md"
    path.write_text("\n".join(page))
    return path
