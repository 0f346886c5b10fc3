"""Transcoding with PyAV (video) and Pillow (images), in a pool of worker processes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import multiprocessing
import signal
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

from processors.media import (
    DEFAULT_LIMITS,
    SNIFF_BYTES,
    MediaKind,
    MediaLimits,
    RenditionSpec,
    check_image,
    check_size,
    check_video,
    media_kind,
    plan_renditions,
    sniff_content_type,
)

log = logging.getLogger(__name__)

JPEG_QUALITY = 85
AUDIO_RATE = 48_000
AUDIO_BITRATE = 128_000
_DURATION_SLACK_MS = 500  # container durations are approximate; frames past this are too long


class TranscodeError(Exception):
    """The media cannot be transcoded: empty, corrupt, unsupported, too large or too long."""


@dataclass(frozen=True)
class VideoOptions:
    """How videos are encoded (x264 preset and quality, AAC bitrate)."""

    preset: str = "veryfast"
    crf: int = 23
    audio_bitrate: int = AUDIO_BITRATE
    threads: int = 0  # 0: x264 picks from the cores


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
    spec: RenditionSpec
    path: Path
    width: int
    height: int
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class TranscodeResult:
    info: MediaInfo
    renditions: tuple[ProducedRendition, ...] = field(default=())

    @property
    def duration_ms(self) -> int | None:
        return self.info.duration_ms


# Probing


def _sniff(path: Path, limits: MediaLimits) -> tuple[str, MediaKind]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError as exc:
        raise TranscodeError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    reason = check_size(size, limits)
    if reason:
        raise TranscodeError(reason)
    content_type = sniff_content_type(head)
    kind = media_kind(content_type)
    if kind is None or content_type is None:
        found = content_type or "unrecognised content"
        raise TranscodeError(
            f"unsupported media: {found} (expected a JPEG, PNG, WebP, GIF, "
            "MP4, MOV, WebM or Matroska file)"
        )
    return content_type, kind


def probe(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Sniff and open the file, decode enough to trust it, and check the limits."""
    path = Path(path)
    content_type, kind = _sniff(path, limits)
    if kind == "image":
        return _probe_image(path, content_type, limits)
    return _probe_video(path, content_type, limits)


def _probe_image(path: Path, content_type: str, limits: MediaLimits) -> MediaInfo:
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            reason = check_image(width, height, limits)
            if reason:
                raise TranscodeError(reason)
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
            reason = check_video(duration_ms or 1, limits)
            if reason:
                raise TranscodeError(reason)
            first = next(container.decode(stream), None)
            if first is None:
                raise TranscodeError("video has no decodable frames")
            rotation = _quarter_turns(first.rotation) * 90
            width, height = first.width, first.height
            has_audio = bool(container.streams.audio)
    except TranscodeError:
        raise
    except (av.FFmpegError, ValueError, IndexError, StopIteration) as exc:
        raise TranscodeError(f"corrupt video ({content_type}): {_reason(exc)}") from exc
    if rotation in (90, 270):
        width, height = height, width
    return MediaInfo(content_type, "video", width, height, duration_ms, has_audio, rotation)


def _reason(exc: Exception) -> str:
    # FFmpeg errors name our temporary file; the reason alone is what the author needs.
    return str(getattr(exc, "strerror", None) or exc)


def _duration_ms(container: Any, stream: Any) -> int | None:
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * stream.time_base * 1000)
    if container.duration is not None:
        return int(container.duration / 1000)  # AV_TIME_BASE is microseconds
    return None


def _quarter_turns(degrees: float) -> int:
    return round(degrees / 90) % 4


# Images


def _transcode_image(
    source: Path, specs: list[RenditionSpec], out_dir: Path
) -> list[ProducedRendition]:
    from PIL import Image, ImageOps

    try:
        with Image.open(source) as img:
            img.seek(0)  # the first frame of an animated GIF or WebP
            if img.format == "JPEG":
                _draft(img, specs)
            base = _to_srgb(ImageOps.exif_transpose(img) or img)
            produced = []
            for spec in specs:
                size = (spec.width, spec.height)
                if spec.crop:
                    out = ImageOps.fit(base, size, Image.Resampling.LANCZOS)
                elif base.size != size:
                    out = base.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
                else:
                    out = base
                path = out_dir / f"{spec.name}.{spec.ext}"
                # No exif= or icc_profile= given: Pillow writes no metadata (GPS, camera...).
                out.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)
                produced.append(_produced(spec, path, out.width, out.height))
            return produced
    except TranscodeError:
        raise
    except Exception as exc:
        raise TranscodeError(f"corrupt image: {exc}") from exc


def _draft(img: Any, specs: list[RenditionSpec]) -> None:
    # JPEG can decode at 1/2, 1/4 or 1/8 scale (DCT scaling): ask for the largest rendition,
    # in the stored (not yet EXIF-rotated) orientation. Several times faster on 12 MP photos.
    width = max(s.width for s in specs)
    height = max(s.height for s in specs)
    if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
        width, height = height, width
    img.draft("RGB", (width, height))


def _to_srgb(img: Any) -> Any:
    from PIL import Image

    icc = img.info.get("icc_profile")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        img = background
    elif img.mode != "RGB":
        img = img.convert("RGB")
    if icc:  # keep colours right once the profile is stripped: convert to sRGB
        try:
            import io

            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"))
            if converted is not None:
                img = converted
        except Exception:  # a broken profile is not worth failing the upload
            log.debug("ignoring an unusable ICC profile", exc_info=True)
    return img


def _produced(spec: RenditionSpec, path: Path, width: int, height: int) -> ProducedRendition:
    return ProducedRendition(spec, path, width, height, spec.content_type, path.stat().st_size)


# Videos


class _VideoOutput:
    """One MP4 rendition being written: an H.264 encoder, and an AAC one if there is audio."""

    def __init__(
        self,
        spec: RenditionSpec,
        path: Path,
        rate: Fraction,
        time_base: Fraction,
        audio: bool,
        options: VideoOptions,
    ) -> None:
        import av

        self.spec = spec
        self.path = path
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        x264 = {"preset": options.preset, "crf": str(options.crf)}
        if options.threads:
            x264["threads"] = str(options.threads)
        self.video = self.container.add_stream("libx264", rate=rate, options=x264)
        self.video.width = spec.width
        self.video.height = spec.height
        self.video.pix_fmt = "yuv420p"
        self.video.codec_context.time_base = time_base
        self.audio = None
        if audio:
            self.audio = self.container.add_stream("aac", rate=AUDIO_RATE)
            self.audio.layout = "stereo"
            self.audio.bit_rate = options.audio_bitrate

    def encode_video(self, frame: Any) -> None:
        scaled = frame.reformat(self.spec.width, self.spec.height, format="yuv420p")
        scaled.pts, scaled.time_base = frame.pts, frame.time_base
        self.container.mux(self.video.encode(scaled))

    def encode_audio(self, frame: Any) -> None:
        if self.audio is not None:
            self.container.mux(self.audio.encode(frame))

    def finish(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio is not None:
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:
            log.debug("closing an aborted output", exc_info=True)


def _rotator(stream: Any, rotation: int) -> Any:
    """A filter graph turning frames upright (phones store portrait video sideways)."""
    import av

    filters = {
        90: [("transpose", "cclock")],
        180: [("hflip", ""), ("vflip", "")],
        270: [("transpose", "clock")],
    }[rotation]
    graph = av.filter.Graph()
    node = graph.add_buffer(template=stream)
    for name, args in filters:
        nxt = graph.add(name, args)
        node.link_to(nxt)
        node = nxt
    node.link_to(graph.add("buffersink"))
    graph.configure()
    return graph


def _transcode_video(
    source: Path,
    specs: list[RenditionSpec],
    out_dir: Path,
    info: MediaInfo,
    limits: MediaLimits,
    options: VideoOptions,
) -> list[ProducedRendition]:
    import av

    poster = next((s for s in specs if s.kind == "poster"), None)
    outputs: list[_VideoOutput] = []
    poster_path: Path | None = None
    last_ms = 0
    try:
        with av.open(str(source), metadata_errors="ignore") as container:
            vin = container.streams.video[0]
            vin.thread_type = "AUTO"
            ain = container.streams.audio[0] if container.streams.audio else None
            rate = vin.average_rate or vin.guessed_rate or Fraction(30)
            time_base = vin.time_base or Fraction(1, 90_000)
            for spec in (s for s in specs if s.kind == "video"):
                path = out_dir / f"{spec.name}.{spec.ext}"
                outputs.append(_VideoOutput(spec, path, rate, time_base, ain is not None, options))
            graph = _rotator(vin, info.rotation) if info.rotation else None
            resampler = av.AudioResampler(
                format="fltp", layout="stereo", rate=AUDIO_RATE, frame_size=1024
            )
            streams = [vin] + ([ain] if ain is not None else [])
            for packet in container.demux(streams):
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        for chunk in resampler.resample(frame):
                            for out in outputs:
                                out.encode_audio(chunk)
                        continue
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    if frame.time is not None:
                        last_ms = max(last_ms, int(frame.time * 1000))
                        if last_ms > limits.max_video_ms + _DURATION_SLACK_MS:
                            raise TranscodeError(check_video(last_ms, limits) or "video too long")
                    for upright in _upright(graph, frame):
                        if poster is not None and poster_path is None:
                            if upright.time is None or upright.time * 1000 >= (poster.at_ms or 0):
                                poster_path = _save_poster(upright, poster, out_dir)
                        for out in outputs:
                            out.encode_video(upright)
            for chunk in resampler.resample(None):
                for out in outputs:
                    out.encode_audio(chunk)
        for out in outputs:
            out.finish()
    except TranscodeError:
        for out in outputs:
            out.abort()
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        for out in outputs:
            out.abort()
        raise TranscodeError(f"corrupt video ({info.content_type}): {_reason(exc)}") from exc
    produced = [_produced(o.spec, o.path, o.spec.width, o.spec.height) for o in outputs]
    if poster is not None:
        if poster_path is None:
            raise TranscodeError("video has no decodable frames")
        produced.append(_produced(poster, poster_path, poster.width, poster.height))
    return produced


def _upright(graph: Any, frame: Any) -> list[Any]:
    if graph is None:
        return [frame]
    graph.push(frame)
    frames = []
    while True:
        try:
            frames.append(graph.pull())
        except (BlockingIOError, EOFError):
            return frames
        except Exception as exc:  # av.error.BlockingIOError subclasses differ by version
            if "again" in str(exc).lower() or "EAGAIN" in str(exc):
                return frames
            raise


def _save_poster(frame: Any, spec: RenditionSpec, out_dir: Path) -> Path:
    from PIL import Image

    image = frame.to_image()
    if image.size != (spec.width, spec.height):
        image = image.resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    path = out_dir / f"{spec.name}.{spec.ext}"
    image.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return path


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
    if info.kind == "image":
        produced = _transcode_image(source, specs, out_dir)
    else:
        produced = _transcode_video(source, specs, out_dir, info, limits, options)
    return TranscodeResult(info, tuple(produced))


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
