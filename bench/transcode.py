"""Transcoding: a 15 s 1080x1920 H.264 video to every rendition, and 12 MP photos per second.

Run from the repository root: `.venv/bin/python -m bench.transcode [--repeat 2] [--sweep]`.
The baseline, run alternately in the same process, is the previous video pipeline
(bench/transcode_baseline.py). Wall time moves with the machine's load; CPU time (user+sys of
this process and its children) moves less, and the load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from bench.transcode_baseline import transcode_video_baseline
from bench.video_quality import similarity, stream_facts
from connectors.transcoder import (
    Transcoder,
    TranscodeResult,
    VideoOptions,
    transcode,
    transcode_media,
)
from tests.connectors.media_factory import make_image, make_video

VIDEO_SECONDS = 15
# x264 settings the sweep compares (preset, options on top), at the default threads.
SWEEP_SETTINGS = (
    ("ultrafast", ""),
    ("superfast", ""),
    ("veryfast", ""),
    ("veryfast", "subme=1"),
    ("veryfast", "partitions=none"),
    ("veryfast", "subme=1:partitions=none"),
    ("faster", ""),
)
SWEEP_THREADS = (1, 2, 4, 0)  # x264 frame threads per encoder with the default settings


@dataclass(frozen=True)
class Timed:
    """One job's result, wall and CPU seconds, and the 1-minute load average around it."""

    result: TranscodeResult
    wall: float
    cpu: float
    load_before: float
    load_after: float

    def line(self, label: str) -> str:
        return (
            f"{label:<28} wall {self.wall:6.2f} s = {self.wall / VIDEO_SECONDS:4.2f}x real time"
            f"   cpu {self.cpu:6.2f} s ({self.cpu / self.wall:4.2f} cores)"
            f"   load {self.load_before:4.1f} -> {self.load_after:4.1f}"
        )


def cpu_seconds() -> float:
    """User+sys CPU of this process and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(job: Callable[[], TranscodeResult]) -> Timed:
    load_before = os.getloadavg()[0]
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = job()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return Timed(result, wall, cpu, load_before, os.getloadavg()[0])


def make_source(workdir: Path) -> Path:
    source = workdir / "story.mp4"
    started = time.perf_counter()
    make_video(source, 1080, 1920, seconds=VIDEO_SECONDS, fps=30, preset="ultrafast", texture=True)
    facts = stream_facts(source)
    print(
        f"source: {VIDEO_SECONDS} s 1080x1920 30 fps H.264 (x264 ultrafast crf 30, camera-like "
        f"noise) + AAC stereo, {facts.video_kbps:,.0f} + {facts.audio_kbps:,.0f} kbit/s, "
        f"made in {time.perf_counter() - started:.1f} s"
    )
    return source


def bench_video(workdir: Path, repeat: int, quality: bool, options: VideoOptions) -> None:
    source = make_source(workdir)
    print(
        f"pipeline: decode once, x264 preset={options.preset} {options.x264_params} "
        f"crf={options.crf} frame threads={options.threads or 'auto'}, AAC copied; baseline: "
        "the previous pipeline (bench/transcode_baseline.py: veryfast crf 23, slice threads)"
    )
    new: list[Timed] = []
    old: list[Timed] = []
    for run in range(repeat):
        out = workdir / f"baseline-{run}"
        old.append(timed(partial(transcode_video_baseline, source, out)))
        print(old[-1].line(f"baseline run {run + 1}"))
        out = workdir / f"new-{run}"
        new.append(timed(partial(transcode_media, source, out, options=options)))
        print(new[-1].line(f"decode-once run {run + 1}"))
    print(
        f"median: decode-once {_median(new, 'wall'):.2f} s wall, {_median(new, 'cpu'):.2f} s cpu;"
        f" baseline {_median(old, 'wall'):.2f} s wall, {_median(old, 'cpu'):.2f} s cpu"
        f" ({_median(old, 'wall') / _median(new, 'wall'):.2f}x less wall,"
        f" {_median(old, 'cpu') / _median(new, 'cpu'):.2f}x less cpu)"
    )
    renditions(source, workdir, new[-1].result, old[-1].result, quality, options)


def _median(runs: list[Timed], field: str) -> float:
    return float(statistics.median(getattr(run, field) for run in runs))


def renditions(
    source: Path,
    workdir: Path,
    result: TranscodeResult,
    baseline: TranscodeResult,
    quality: bool,
    options: VideoOptions,
) -> None:
    """Per rendition: facts of the decode-once output and the baseline's, and its time alone."""
    print(
        "rendition  size       frames  duration  video kbit/s (cap)  audio   SSIM    PSNR-Y"
        "   | baseline: frames video kbit/s SSIM   | alone: wall  cpu"
    )
    old = {r.spec.name: r for r in baseline.renditions}
    for produced in result.renditions:
        if produced.spec.kind != "video":
            print(f"{produced.spec.name:<10} {produced.width}x{produced.height} JPEG")
            continue
        facts = stream_facts(produced.path)
        before = stream_facts(old[produced.spec.name].path)
        ssim, psnr = similarity(source, produced.path) if quality else (0.0, 0.0)
        old_ssim = similarity(source, old[produced.spec.name].path)[0] if quality else 0.0
        spec = produced.spec
        alone = timed(
            partial(transcode, source, [spec], workdir / f"alone-{spec.name}", options=options)
        )
        print(
            f"{spec.name:<10} {facts.width}x{facts.height:<5} {facts.frames:>6}  {facts.duration_s:6.2f} s"
            f"  {facts.video_kbps:7,.0f} ({spec.max_kbps or 0:,})"
            f"  {facts.audio_kbps:5.0f}   {ssim:.4f}  {psnr:5.2f}"
            f"   | {before.frames:>6} {before.video_kbps:7,.0f} {old_ssim:.4f}"
            f" | {alone.wall:6.2f} {alone.cpu:6.2f}"
        )


def sweep(workdir: Path, quality: bool, options: VideoOptions) -> None:
    """Whole jobs for x264 settings, then thread counts: time, bitrate and SSIM per rendition."""
    jobs = [
        replace(options, preset=preset, x264_params=params) for preset, params in SWEEP_SETTINGS
    ] + [replace(options, threads=count) for count in SWEEP_THREADS]
    for index, job in enumerate(jobs):
        out = workdir / f"sweep-{index}"
        run = timed(partial(transcode_media, workdir / "story.mp4", out, options=job))
        parts = []
        for produced in run.result.renditions:
            if produced.spec.kind == "video":
                kbps = stream_facts(produced.path).video_kbps
                ssim = (
                    f" {similarity(workdir / 'story.mp4', produced.path)[0]:.4f}" if quality else ""
                )
                parts.append(f"{produced.spec.name} {kbps:,.0f}{ssim}")
        label = f"{job.preset} {job.x264_params or '-'} t={job.threads or 'auto'}"
        print(run.line(label) + "   kbit/s SSIM: " + "; ".join(parts))


def bench_photos(workdir: Path, count: int, workers: int) -> None:
    sources = [
        make_image(workdir / f"photo-{i}.jpg", 4000, 3000, texture=True) for i in range(count)
    ]
    started = time.perf_counter()
    for i, source in enumerate(sources[:2]):
        transcode_media(source, workdir / f"inline-{i}")
    inline = (time.perf_counter() - started) / 2
    print(f"photo  12 MP, one process: {inline:.2f} s each = {1 / inline:.1f} photos/s")
    with Transcoder(workers=workers) as pool:
        warmup = [pool.submit_media(sources[0], workdir / f"warm-{i}") for i in range(workers)]
        for future in warmup:  # spawn every worker before timing
            future.result()
        started = time.perf_counter()
        futures = [pool.submit_media(s, workdir / f"pool-{i}") for i, s in enumerate(sources)]
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - started
    print(
        f"photo  12 MP, pool of {workers}: {count} in {elapsed:.2f} s = "
        f"{count / elapsed:.1f} photos/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each pipeline")
    parser.add_argument("--preset", default=VideoOptions.preset, help="x264 preset")
    parser.add_argument("--threads", type=int, default=0, help="x264 threads (0: auto)")
    parser.add_argument("--x264-params", default=VideoOptions.x264_params)
    parser.add_argument("--sweep", action="store_true", help="also time x264 settings, threads")
    parser.add_argument("--no-quality", action="store_true", help="skip SSIM and PSNR")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    options = VideoOptions(preset=args.preset, threads=args.threads, x264_params=args.x264_params)
    with tempfile.TemporaryDirectory(prefix="storystream-bench-") as tmp:
        workdir = Path(tmp)
        bench_video(workdir, args.repeat, not args.no_quality, options)
        if args.sweep:
            sweep(workdir, not args.no_quality, options)
        bench_photos(workdir, args.photos, args.workers)
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
