"""Probing an upload: sniffed type, kind, display-oriented size, duration and rotation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.media_files import MediaInfo, TranscodeError, reason
from processors.media import (
    DEFAULT_LIMITS,
    SNIFF_BYTES,
    MediaKind,
    MediaLimits,
    check_image,
    check_size,
    check_video,
    media_kind,
    sniff_content_type,
)


def probe(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Sniff and open the file, decode enough to trust it, and check the limits."""
    path = Path(path)
    content_type, kind = _sniff(path, limits)
    if kind == "image":
        return _probe_image(path, content_type, limits)
    return _probe_video(path, content_type, limits)


def _sniff(path: Path, limits: MediaLimits) -> tuple[str, MediaKind]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError as exc:
        raise TranscodeError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    refused = check_size(size, limits)
    if refused:
        raise TranscodeError(refused)
    content_type = sniff_content_type(head)
    kind = media_kind(content_type)
    if kind is None or content_type is None:
        found = content_type or "unrecognised content"
        raise TranscodeError(
            f"unsupported media: {found} (expected a JPEG, PNG, WebP, GIF, "
            "MP4, MOV, WebM or Matroska file)"
        )
    return content_type, kind


def _probe_image(path: Path, content_type: str, limits: MediaLimits) -> MediaInfo:
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            refused = check_image(width, height, limits)
            if refused:
                raise TranscodeError(refused)
            orientation = img.getexif().get(0x0112, 1)
    except TranscodeError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError...
        raise TranscodeError(f"corrupt image ({content_type}): {exc}") from exc
    if orientation in (5, 6, 7, 8):  # rotated a quarter turn: display size is swapped
        width, height = height, width
    return MediaInfo(content_type, "image", width, height)


def _probe_video(path: Path, content_type: str, limits: MediaLimits) -> MediaInfo:
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise TranscodeError(f"no video stream in the {content_type} file")
            stream = container.streams.video[0]
            duration_ms = _duration_ms(container, stream)
            refused = check_video(duration_ms or 1, limits)
            if refused:
                raise TranscodeError(refused)
            first = next(container.decode(stream), None)
            if first is None:
                raise TranscodeError("video has no decodable frames")
            rotation = _quarter_turns(first.rotation) * 90
            width, height = first.width, first.height
            has_audio = bool(container.streams.audio)
    except TranscodeError:
        raise
    except (av.FFmpegError, ValueError, IndexError, StopIteration) as exc:
        raise TranscodeError(f"corrupt video ({content_type}): {reason(exc)}") from exc
    if rotation in (90, 270):
        width, height = height, width
    return MediaInfo(content_type, "video", width, height, duration_ms, has_audio, rotation)


def _duration_ms(container: Any, stream: Any) -> int | None:
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * stream.time_base * 1000)
    if container.duration is not None:
        return int(container.duration / 1000)  # AV_TIME_BASE is microseconds
    return None


def _quarter_turns(degrees: float) -> int:
    return round(degrees / 90) % 4
