"""Transcoding entry points (probe, plan, transcode) and the pool of worker processes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import multiprocessing
import signal
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from connectors.image_renditions import transcode_image
from connectors.media_files import (
    MediaInfo,
    ProducedRendition,
    TranscodeError,
    TranscodeResult,
)
from connectors.media_probe import probe
from connectors.video_renditions import VideoOptions, transcode_video
from processors.media import DEFAULT_LIMITS, MediaLimits, RenditionSpec, plan_renditions

__all__ = [
    "MediaInfo",
    "ProducedRendition",
    "TranscodeError",
    "TranscodeResult",
    "Transcoder",
    "VideoOptions",
    "probe",
    "transcode",
    "transcode_media",
]


# Entry points (each runs in one process; the pool calls them)


def transcode(
    source_path: Path,
    specs: list[RenditionSpec],
    out_dir: Path,
    *,
    limits: MediaLimits = DEFAULT_LIMITS,
    options: VideoOptions | None = None,
) -> TranscodeResult:
    """Produce `specs` from the source into `out_dir` (files named `{name}.{ext}`)."""
    source_path, out_dir = Path(source_path), Path(out_dir)
    info = probe(source_path, limits)
    return _run(source_path, specs, out_dir, info, limits, options or VideoOptions())


def transcode_media(
    source_path: Path,
    out_dir: Path,
    *,
    limits: MediaLimits = DEFAULT_LIMITS,
    options: VideoOptions | None = None,
) -> TranscodeResult:
    """Probe, plan (processors.media) and transcode: the one job per upload."""
    source_path, out_dir = Path(source_path), Path(out_dir)
    info = probe(source_path, limits)
    specs = plan_renditions(info.kind, info.width, info.height, info.duration_ms)
    return _run(source_path, specs, out_dir, info, limits, options or VideoOptions())


def _run(
    source: Path,
    specs: list[RenditionSpec],
    out_dir: Path,
    info: MediaInfo,
    limits: MediaLimits,
    options: VideoOptions,
) -> TranscodeResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    preview: str | None
    if info.kind == "image":
        made, preview = transcode_image(source, specs, out_dir)
    else:
        made, preview = transcode_video(source, specs, out_dir, info, limits, options)
    return TranscodeResult(info, tuple(made), preview)


def _worker_init() -> None:
    # Die with the parent (no orphan encoders), and leave Ctrl-C to the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Transcoder:
    """A pool of worker processes for transcoding, so the event loop is never blocked.

    Processes are spawned (not forked: the parent has Kafka and RocksDB threads) and replaced
    after `max_tasks_per_child` jobs to bound memory growth in the codecs.
    """

    def __init__(
        self,
        workers: int = 1,
        *,
        limits: MediaLimits = DEFAULT_LIMITS,
        options: VideoOptions | None = None,
        max_tasks_per_child: int = 50,
    ) -> None:
        self.limits = limits
        self.options = options or VideoOptions()
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            max_tasks_per_child=max_tasks_per_child,
        )

    def submit_media(self, source: Path, out_dir: Path) -> concurrent.futures.Future[Any]:
        """Start `transcode_media` in a worker; the future holds the TranscodeResult."""
        return self._pool.submit(
            transcode_media, source, out_dir, limits=self.limits, options=self.options
        )

    def transcode_media(self, source: Path, out_dir: Path) -> TranscodeResult:
        """`transcode_media` in a worker process; blocks the calling thread only."""
        result: TranscodeResult = self.submit_media(source, out_dir).result()
        return result

    def transcode(self, source: Path, specs: list[RenditionSpec], out_dir: Path) -> TranscodeResult:
        """`transcode` in a worker process; blocks the calling thread only."""
        future = self._pool.submit(
            transcode, source, specs, out_dir, limits=self.limits, options=self.options
        )
        result: TranscodeResult = future.result()
        return result

    async def transcode_media_async(self, source: Path, out_dir: Path) -> TranscodeResult:
        result: TranscodeResult = await asyncio.wrap_future(self.submit_media(source, out_dir))
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Transcoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
