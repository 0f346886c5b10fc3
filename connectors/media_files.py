"""What transcoding reports: the error for bad media, probe facts and the files produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from processors.media import MediaKind, RenditionSpec

JPEG_QUALITY = 85


class TranscodeError(Exception):
    """The media cannot be transcoded: empty, corrupt, unsupported, too large or too long."""


@dataclass(frozen=True)
class MediaInfo:
    """What probing found: sniffed type, kind, display-oriented size, duration, rotation."""

    content_type: str
    kind: MediaKind
    width: int
    height: int
    duration_ms: int | None = None
    has_audio: bool = False
    rotation: int = 0


@dataclass(frozen=True)
class ProducedRendition:
    """One file written for a spec, with its real size in pixels and bytes."""

    spec: RenditionSpec
    path: Path
    width: int
    height: int
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class TranscodeResult:
    """Probe facts, every rendition produced (in the plan's order), and the blurhash of the
    image (of the poster frame for a video; None when no poster was asked for)."""

    info: MediaInfo
    renditions: tuple[ProducedRendition, ...] = field(default=())
    blurhash: str | None = None

    @property
    def duration_ms(self) -> int | None:
        return self.info.duration_ms


def produced(spec: RenditionSpec, path: Path, width: int, height: int) -> ProducedRendition:
    """The rendition written at `path` (its size in bytes read from the file)."""
    return ProducedRendition(spec, path, width, height, spec.content_type, path.stat().st_size)


def reason(exc: Exception) -> str:
    """An FFmpeg error's reason without the file name (ours is a temporary file)."""
    return str(getattr(exc, "strerror", None) or exc)
