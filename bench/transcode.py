"""Transcoding throughput: a 15 s 1080x1920 video's renditions, and 12 MP photos per second.

Run from the repository root: `.venv/bin/python -m bench.transcode [--preset veryfast ...]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from connectors.transcoder import Transcoder, VideoOptions, transcode_media
from tests.connectors.media_factory import make_image, make_video

VIDEO_SECONDS = 15


def bench_video(workdir: Path, presets: list[str]) -> None:
    source = workdir / "story.mp4"
    started = time.perf_counter()
    make_video(source, 1080, 1920, seconds=VIDEO_SECONDS, fps=30, preset="ultrafast", texture=True)
    print(
        f"generated {VIDEO_SECONDS} s 1080x1920 30 fps video with audio "
        f"({source.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s"
    )
    for preset in presets:
        out = workdir / f"video-{preset}"
        started = time.perf_counter()
        result = transcode_media(source, out, options=VideoOptions(preset=preset))
        elapsed = time.perf_counter() - started
        total = sum(r.size_bytes for r in result.renditions)
        names = ", ".join(f"{r.spec.name} {r.width}x{r.height}" for r in result.renditions)
        print(
            f"video  preset={preset:<9} {elapsed:6.2f} s for all renditions = "
            f"{elapsed / VIDEO_SECONDS:.2f}x real time ({total / 1e6:.1f} MB: {names})"
        )


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
    parser.add_argument("--preset", action="append", help="x264 presets to time (repeatable)")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="storystream-bench-") as tmp:
        bench_video(Path(tmp), args.preset or ["veryfast"])
        bench_photos(Path(tmp), args.photos, args.workers)


if __name__ == "__main__":
    main()
