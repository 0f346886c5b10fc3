"""What a video rendition holds: frames, duration, bitrate per stream, SSIM and PSNR to its source."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter


@dataclass(frozen=True)
class StreamFacts:
    """A file's video frames, duration and average bitrates (kbit/s) of video and audio."""

    codecs: tuple[str, ...]
    width: int
    height: int
    frames: int
    duration_s: float
    video_kbps: float
    audio_kbps: float


def stream_facts(path: Path) -> StreamFacts:
    """Count the video frames and the bytes of every packet per stream."""
    sizes = {"video": 0, "audio": 0}
    frames = 0
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        codecs = tuple(sorted(s.codec_context.name for s in container.streams))
        width, height = video.codec_context.width, video.codec_context.height
        duration_s = (container.duration or 0) / 1_000_000
        for packet in container.demux():
            if packet.size and packet.stream.type in sizes:
                sizes[packet.stream.type] += packet.size
                frames += packet.stream.type == "video"
    seconds = duration_s or 1.0
    return StreamFacts(
        codecs,
        width,
        height,
        frames,
        duration_s,
        sizes["video"] * 8 / seconds / 1000,
        sizes["audio"] * 8 / seconds / 1000,
    )


def similarity(source: Path, rendition: Path) -> tuple[float, float]:
    """Mean SSIM (libavfilter's, all planes) and Y PSNR (dB) of the rendition against the
    source scaled to its size by the scaler the pipeline uses: what encoding lost."""
    with av.open(str(source)) as original, av.open(str(rendition)) as encoded:
        video = encoded.streams.video[0]
        width, height = video.codec_context.width, video.codec_context.height
        graph, inputs, sink = _ssim_graph(width, height)
        scaler = VideoReformatter()
        ssim_total, ssim_count, squared_error, frames = 0.0, 0, 0.0, 0
        pairs = zip(original.decode(original.streams.video[0]), encoded.decode(video), strict=False)
        for index, (ref_frame, enc_frame) in enumerate(pairs):
            ref = scaler.reformat(ref_frame, width, height, format="yuv420p")
            squared_error += float(
                ((_luma(ref, width, height) - _luma(enc_frame, width, height)) ** 2).mean()
            )
            frames += 1
            for frame, buffer in ((ref, inputs[0]), (enc_frame, inputs[1])):
                frame.pts, frame.time_base = index, Fraction(1, 30)
                buffer.push(frame)
            for out in _drain(sink):
                ssim_total += float(out.metadata["lavfi.ssim.All"])
                ssim_count += 1
    mse = squared_error / max(frames, 1)
    psnr = 10 * float(np.log10(255**2 / mse)) if mse > 0 else float("inf")
    return ssim_total / max(ssim_count, 1), psnr


def _ssim_graph(width: int, height: int) -> tuple[Any, tuple[Any, Any], Any]:
    graph = av.filter.Graph()
    inputs = tuple(
        graph.add_buffer(
            width=width, height=height, format=av.VideoFormat("yuv420p"), time_base=Fraction(1, 30)
        )
        for _ in range(2)
    )
    ssim = graph.add("ssim")
    sink = graph.add("buffersink")
    inputs[0].link_to(ssim, 0, 0)
    inputs[1].link_to(ssim, 0, 1)
    ssim.link_to(sink)
    graph.configure()
    return graph, (inputs[0], inputs[1]), sink


def _drain(sink: Any) -> list[Any]:
    frames = []
    while True:
        try:
            frames.append(sink.pull())
        except (av.BlockingIOError, av.EOFError):
            return frames


def _luma(frame: Any, width: int, height: int) -> Any:
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)
    return rows[:, :width].astype(np.int32)
