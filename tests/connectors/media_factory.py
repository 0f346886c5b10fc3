"""Factories for real media files: photos made with Pillow, videos (with audio) with PyAV."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

ORIENTATION = 0x0112


def make_image(
    path: Path,
    width: int = 1600,
    height: int = 1200,
    *,
    fmt: str = "JPEG",
    orientation: int | None = None,
    gps: bool = False,
    texture: bool = False,
) -> Path:
    """A photo with a gradient; optionally EXIF orientation and a GPS tag (to see it stripped).

    `texture` adds camera-like noise: a real photo's size and decoding cost, for benchmarks.
    """
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = x[None, :]
    rgb[..., 1] = y[:, None]
    rgb[..., 2] = 128
    rgb[: height // 4, : width // 4] = (255, 0, 0)  # a red top-left corner shows the rotation
    if texture:
        noise = np.random.default_rng(3).normal(0, 16, rgb.shape)
        rgb = np.clip(rgb + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if fmt == "PNG":
        image = image.convert("RGBA")
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0)}
        exif[0x010F] = "StoryCam"  # Make
    kwargs = {"exif": exif.tobytes()} if (orientation is not None or gps) else {}
    image.save(path, fmt, quality=90, **kwargs)
    return path


def make_video(
    path: Path,
    width: int = 320,
    height: int = 240,
    *,
    seconds: float = 1.0,
    fps: int = 10,
    audio: bool = True,
    preset: str = "ultrafast",
    rotation: int = 0,
    container: str = "mp4",
    texture: bool = False,
) -> Path:
    """An H.264 (VP9 for webm) video of moving bars, with a 440 Hz stereo tone.

    `texture` adds camera-like noise and a moving gradient, so that encoders work about as
    hard as on real footage (flat synthetic frames make benchmarks look too good).
    """
    frames = int(seconds * fps)
    base = np.zeros((height, width, 3), dtype=np.uint8)
    base[..., 2] = 90
    base[: height // 4, : width // 4] = (255, 0, 0)
    textures: list[np.ndarray] = []
    if texture:
        rng = np.random.default_rng(7)
        ramp = np.linspace(0, 160, width, dtype=np.float32)[None, :, None]
        for shift in range(8):
            noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
            noisy = base.astype(np.float32) + np.roll(ramp, shift * width // 8, axis=1) + noise
            textures.append(np.clip(noisy, 0, 255).astype(np.uint8))
    with av.open(str(path), "w", format=container) as out:
        codec = "libvpx-vp9" if container == "webm" else "libx264"
        opts = {"preset": preset, "crf": "30"} if codec == "libx264" else {"deadline": "realtime"}
        vstream = out.add_stream(codec, rate=fps, options=opts)
        assert isinstance(vstream, av.VideoStream)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if rotation:
            vstream.set_display_rotation(rotation)
        astream: av.AudioStream | None = None
        if audio:
            acodec = "libopus" if container == "webm" else "aac"
            added = out.add_stream(acodec, rate=48_000)
            assert isinstance(added, av.AudioStream)
            astream = added
            astream.layout = "stereo"
        bar = max(1, width // 16)
        samples_per_frame = 48_000 // fps
        for index in range(frames):
            rgb = textures[index % 8].copy() if textures else base.copy()
            x = (index * bar) % width
            rgb[:, x : x + bar] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            out.mux(vstream.encode(frame))
            if astream is not None:
                t = (np.arange(samples_per_frame) + index * samples_per_frame) / 48_000
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(
                    np.stack([tone, tone]), format="fltp", layout="stereo"
                )
                chunk.sample_rate = 48_000
                chunk.pts = index * samples_per_frame
                chunk.time_base = Fraction(1, 48_000)
                out.mux(astream.encode(chunk))
        out.mux(vstream.encode(None))
        if astream is not None:
            out.mux(astream.encode(None))
    return path


def image_bytes(width: int = 64, height: int = 48, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, fmt)
    return buffer.getvalue()
