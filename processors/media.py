"""Media decisions as plain data: content sniffing, limits, rendition plans and object keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["image", "video"]
SpecKind = Literal["image", "thumbnail", "video", "poster"]

JPEG = "image/jpeg"
MP4 = "video/mp4"

IMAGE_WIDTHS = (1080, 720, 480)
# Video tiers: the short side, and the most a rendition of that size may average over any two
# seconds (kbit/s): what a phone on a mobile network can stream without stalling.
VIDEO_TIERS = ((1080, 4500), (720, 2500), (480, 1200))
VIDEO_SHORT_SIDES = tuple(side for side, _ in VIDEO_TIERS)
THUMBNAIL_SIDE = 150
POSTER_AT_MS = 500  # a frame from the first second, past a possible fade-in from black

# Content types we accept, by sniffed content (never by file name or the client's claim).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm", "video/x-matroska"})

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
# Renditions are downloaded by clients over HTTP; originals under uploads/ stay private.
PUBLIC_PREFIXES = ("media/", "highlights/")
SNIFF_BYTES = 64  # how much of the head `sniff_content_type` needs


@dataclass(frozen=True)
class MediaLimits:
    """What the pipeline accepts: size of the upload, length of a video, pixels of an image."""

    max_bytes: int = 200 * 1024 * 1024
    max_video_ms: int = 60_000
    max_image_pixels: int = 64_000_000


DEFAULT_LIMITS = MediaLimits()


@dataclass(frozen=True)
class RenditionSpec:
    """One rendition to produce: `name` says what it is (an image's width, `720`; a video's
    short side, `720p`), width/height its size.

    `crop` means center-crop to exactly width x height (the thumbnail); otherwise the source is
    scaled to width x height, which keeps its aspect ratio. `at_ms` is the poster's frame time.
    `max_kbps` caps a video's bitrate (kbit/s over any two seconds).
    """

    name: str
    kind: SpecKind
    width: int
    height: int
    content_type: str
    ext: str
    crop: bool = False
    at_ms: int | None = None
    max_kbps: int | None = None


def sniff_content_type(head: bytes) -> str | None:
    """The content type from the first bytes of a file (magic numbers), or None if unknown.

    Recognised but unsupported formats (HEIC, AVIF) are reported too, so that the caller can
    say what it found; `media_kind` tells which types the pipeline accepts.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska or WebM (the DocType says which)
        return "video/webm" if b"webm" in head[:SNIFF_BYTES] else "video/x-matroska"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "image/heic"
        if brand in _AVIF_BRANDS:
            return "image/avif"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"  # isom, iso2..6, mp41, mp42, avc1, M4V, 3gp4, dash...
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return "video/quicktime"  # old QuickTime files start with an atom, not `ftyp`
    return None


def media_kind(content_type: str | None) -> MediaKind | None:
    """`image` or `video` for a supported content type, else None."""
    if content_type in IMAGE_TYPES:
        return "image"
    if content_type in VIDEO_TYPES:
        return "video"
    return None


def check_size(size_bytes: int, limits: MediaLimits = DEFAULT_LIMITS) -> str | None:
    """The reason an upload of that size is refused, or None."""
    if size_bytes <= 0:
        return "empty file"
    if size_bytes > limits.max_bytes:
        return f"file too large: {size_bytes} bytes (at most {limits.max_bytes})"
    return None


def check_video(duration_ms: int | None, limits: MediaLimits = DEFAULT_LIMITS) -> str | None:
    """The reason a video of that length is refused, or None.

    Stories of 15 to 60 s are kept whole, as one rendition of the full length per tier (no 15 s
    segments): players seek within an MP4 as easily, and a segment split can come later as
    another plan without changing the event contract.
    """
    if duration_ms is None or duration_ms <= 0:
        return "video has no duration (no frames?)"
    if duration_ms > limits.max_video_ms:
        return (
            f"video too long: {duration_ms / 1000:.1f} s (at most {limits.max_video_ms / 1000:g} s)"
        )
    return None


def check_image(width: int, height: int, limits: MediaLimits = DEFAULT_LIMITS) -> str | None:
    """The reason an image of that size is refused (empty, or a decompression bomb), or None."""
    if width <= 0 or height <= 0:
        return "image has no pixels"
    if width * height > limits.max_image_pixels:
        return (
            f"image too large: {width}x{height} pixels (at most {limits.max_image_pixels} pixels)"
        )
    return None


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def _image_plan(width: int, height: int) -> list[RenditionSpec]:
    specs: list[RenditionSpec] = []
    seen: set[tuple[int, int]] = set()
    for tier in IMAGE_WIDTHS:
        w = min(tier, width)  # never upscale: a small source caps the tier at its own size
        h = max(1, round(height * w / width))
        if (w, h) in seen:
            continue
        seen.add((w, h))
        specs.append(RenditionSpec(str(w), "image", w, h, JPEG, "jpg"))
    side = min(THUMBNAIL_SIDE, width, height)
    specs.append(RenditionSpec("thumbnail", "thumbnail", side, side, JPEG, "jpg", crop=True))
    return specs


def video_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Even dimensions with the short side at `short_side`, never above the source's size."""
    scale = short_side / min(width, height)
    if scale >= 1:
        return _even_floor(width), _even_floor(height)
    return _even(width * scale), _even(height * scale)


def _even_floor(value: int) -> int:
    return max(2, value - value % 2)


def video_max_kbps(short_side: int) -> int:
    """The bitrate cap of a video whose short side is `short_side`: the smallest tier that holds
    it (a 1000 px rendition streams at most what a 1080p one does; a 240p one what a 480p does)."""
    fitting = [cap for side, cap in VIDEO_TIERS if side >= short_side]
    return min(fitting) if fitting else max(cap for _, cap in VIDEO_TIERS)


def _video_plan(width: int, height: int, duration_ms: int) -> list[RenditionSpec]:
    specs: list[RenditionSpec] = []
    seen: set[tuple[int, int]] = set()
    for tier in VIDEO_SHORT_SIDES:
        size = video_size(width, height, tier)
        if size in seen:
            continue
        seen.add(size)
        name = f"{min(size)}p"  # a 720x1280 source's largest is 720p, not the 1080 tier's name
        cap = video_max_kbps(min(size))
        specs.append(RenditionSpec(name, "video", size[0], size[1], MP4, "mp4", max_kbps=cap))
    largest = specs[0]
    at_ms = min(POSTER_AT_MS, duration_ms // 2)
    specs.append(
        RenditionSpec("poster", "poster", largest.width, largest.height, JPEG, "jpg", at_ms=at_ms)
    )
    return specs


def plan_renditions(
    kind: MediaKind, width: int, height: int, duration_ms: int | None = None
) -> list[RenditionSpec]:
    """The renditions to produce for a source of that kind and (display-oriented) size.

    Images: JPEG 1080, 720 and 480 px wide and a 150x150 center-cropped thumbnail. Videos:
    H.264/AAC MP4 with the short side at 1080, 720 and 480 (portrait stays portrait), each with
    its tier's bitrate cap, and a JPEG poster. Never upscaled: tiers above the source's size
    collapse into one at its size.
    Each is named by its real size (an image by its width, a video by its short side), never
    by a tier it does not reach.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"no renditions for a {width}x{height} source")
    if kind == "image":
        return _image_plan(width, height)
    return _video_plan(width, height, duration_ms or 0)


# Object keys. Prefixes end with "/" so that media "m1" never matches "m10".


def uploads_prefix(media_id: str) -> str:
    return f"uploads/{media_id}/"


def original_key(media_id: str) -> str:
    """Where the producer uploads the original file."""
    return f"uploads/{media_id}/original"


def media_prefix(media_id: str) -> str:
    return f"media/{media_id}/"


def rendition_key(media_id: str, spec: RenditionSpec) -> str:
    """Where a rendition of live (not yet highlighted) media is stored."""
    return f"{media_prefix(media_id)}{spec.name}.{spec.ext}"


def highlights_prefix(media_id: str) -> str:
    return f"highlights/{media_id}/"


def highlight_key(media_key: str) -> str:
    """The long-term key of a rendition key under `media/`."""
    if not media_key.startswith("media/"):
        raise ValueError(f"not a rendition key: {media_key!r}")
    return "highlights/" + media_key.removeprefix("media/")


@dataclass(frozen=True)
class ObjectsPlan:
    """Object-store work for a MediaObjectsChanged: prefixes to delete, prefixes to move."""

    delete_prefixes: tuple[str, ...] = ()
    move_prefixes: tuple[tuple[str, str], ...] = ()


def plan_objects_change(
    media_id: str, action: Literal["purge", "move_to_highlights"]
) -> ObjectsPlan:
    """Purge deletes every object of the media (original, renditions, highlight copies);
    moving to highlights moves the renditions under the long-term prefix."""
    if action == "purge":
        return ObjectsPlan(
            delete_prefixes=(
                uploads_prefix(media_id),
                media_prefix(media_id),
                highlights_prefix(media_id),
            )
        )
    return ObjectsPlan(move_prefixes=((media_prefix(media_id), highlights_prefix(media_id)),))
