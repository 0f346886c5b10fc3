"""Video renditions with PyAV: decode once, scale and encode every size, share the audio."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from connectors.blurhash_preview import frame_blurhash
from connectors.media_files import (
    JPEG_QUALITY,
    MediaInfo,
    ProducedRendition,
    TranscodeError,
    produced,
    reason,
)
from processors.media import MediaLimits, RenditionSpec, check_video

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_BITRATE = 128_000
_DURATION_SLACK_MS = 500  # container durations are approximate; frames past this are too long


@dataclass(frozen=True)
class VideoOptions:
    """How videos are encoded.

    `preset` and `crf` are x264's speed preset and constant quality, `x264_params` its options
    on top of the preset (`key=value:...`); a rendition's `max_kbps` (from the plan) caps its
    bitrate. `threads` is x264's frame threads per encoder (0: x264 picks from the cores).
    AAC mono or stereo sources up to `copy_audio_max_bitrate` keep their audio as it is; other
    audio is encoded once at `audio_bitrate` for every rendition.
    """

    preset: str = "veryfast"
    crf: int = 23
    # Sub-pixel refinement 1 and no 4x4/8x8 intra blocks in P/B frames: the two costliest
    # searches of veryfast, whose gain the benchmark measures as small (bench/transcode.py).
    x264_params: str = "subme=1:partitions=none"
    audio_bitrate: int = AUDIO_BITRATE
    threads: int = 0
    copy_audio_max_bitrate: int = 2 * AUDIO_BITRATE


def transcode_video(
    source: Path,
    specs: list[RenditionSpec],
    out_dir: Path,
    info: MediaInfo,
    limits: MediaLimits,
    options: VideoOptions,
) -> tuple[list[ProducedRendition], str | None]:
    """Write the video specs as MP4 and the poster as JPEG, decoding the source once; the
    renditions and the poster frame's blurhash (None without a poster spec)."""
    import av

    poster = next((s for s in specs if s.kind == "poster"), None)
    outputs: list[_Output] = []
    poster_path: Path | None = None
    preview: str | None = None
    last_ms = 0
    try:
        with av.open(str(source), metadata_errors="ignore") as container:
            vin = container.streams.video[0]
            vin.thread_type = "AUTO"
            ain = container.streams.audio[0] if container.streams.audio else None
            copy = ain is not None and _can_copy(ain, options)
            audio = _AudioEncoder(options) if ain is not None and not copy else None
            rate = vin.average_rate or vin.guessed_rate or Fraction(30)
            time_base = vin.time_base or Fraction(1, 90_000)
            for spec in (s for s in specs if s.kind == "video"):
                path = out_dir / f"{spec.name}.{spec.ext}"
                template = ain if copy else None
                outputs.append(
                    _Output(spec, path, rate, time_base, ain is not None, template, options)
                )
            graph = upright_filter(vin, info.rotation) if info.rotation else None
            streams = [vin] + ([ain] if ain is not None else [])
            for packet in container.demux(streams):
                if packet.stream is not vin:
                    if audio is None:
                        _mux_audio(outputs, [packet] if packet.size else [])
                    else:
                        for frame in packet.decode():
                            _mux_audio(outputs, audio.encode(frame))
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    if frame.time is not None:
                        last_ms = max(last_ms, int(frame.time * 1000))
                        if last_ms > limits.max_video_ms + _DURATION_SLACK_MS:
                            raise TranscodeError(check_video(last_ms, limits) or "video too long")
                    for upright in upright_frames(graph, frame):
                        if poster is not None and poster_path is None:
                            if upright.time is None or upright.time * 1000 >= (poster.at_ms or 0):
                                poster_path = save_poster(upright, poster, out_dir)
                                preview = frame_blurhash(upright)
                        for out in outputs:
                            out.encode_video(upright)
            if audio is not None:
                _mux_audio(outputs, audio.flush())
        for out in outputs:
            out.finish()
    except TranscodeError:
        _abort(outputs)
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        _abort(outputs)
        raise TranscodeError(f"corrupt video ({info.content_type}): {reason(exc)}") from exc
    made = [produced(o.spec, o.path, o.spec.width, o.spec.height) for o in outputs]
    if poster is not None:
        if poster_path is None:
            raise TranscodeError("video has no decodable frames")
        made.append(produced(poster, poster_path, poster.width, poster.height))
    return made, preview


class _Output:
    """One MP4 rendition being written: its scaler, its H.264 encoder, its audio stream."""

    def __init__(
        self,
        spec: RenditionSpec,
        path: Path,
        rate: Fraction,
        time_base: Fraction,
        audio: bool,
        audio_template: Any,
        options: VideoOptions,
    ) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        self.spec = spec
        self.path = path
        # One scaler per rendition, kept for every frame: a new one per frame (what
        # frame.reformat does) spends more time building its filters than scaling.
        self.scaler = VideoReformatter()
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.video = self.container.add_stream("libx264", rate=rate, options=_x264(spec, options))
        self.video.width = spec.width
        self.video.height = spec.height
        self.video.pix_fmt = "yuv420p"
        context = self.video.codec_context
        context.time_base = time_base
        # Frame threads: each encoder works on several frames at once while the decoder moves
        # on. Slice threads (PyAV's default) would make every encode call wait for its frame.
        context.thread_type = "FRAME"
        context.thread_count = options.threads
        self.audio: Any = None
        if audio_template is not None:
            self.audio = self.container.add_stream_from_template(audio_template)
        elif audio:
            self.audio = self.container.add_stream("aac", rate=AUDIO_RATE)
            self.audio.layout = "stereo"
            self.audio.bit_rate = options.audio_bitrate

    def encode_video(self, frame: Any) -> None:
        scaled = self.scaler.reformat(frame, self.spec.width, self.spec.height, format="yuv420p")
        if scaled is not frame:
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
        self.container.mux(self.video.encode(scaled))

    def mux_audio(self, packet: Any) -> None:
        if self.audio is not None:
            packet.stream = self.audio
            self.container.mux(packet)

    def finish(self) -> None:
        self.container.mux(self.video.encode(None))
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:
            log.debug("closing an aborted output", exc_info=True)


def _x264(spec: RenditionSpec, options: VideoOptions) -> dict[str, str]:
    x264 = {"preset": options.preset, "crf": str(options.crf)}
    if options.x264_params:
        x264["x264-params"] = options.x264_params
    if spec.max_kbps:  # capped constant quality: at most max_kbps over any two seconds
        x264["maxrate"] = f"{spec.max_kbps}k"
        x264["bufsize"] = f"{2 * spec.max_kbps}k"
    return x264


class _AudioEncoder:
    """AAC encoded once for every rendition (for sources whose audio cannot be copied)."""

    def __init__(self, options: VideoOptions) -> None:
        import av

        self.resampler = av.AudioResampler(
            format="fltp", layout="stereo", rate=AUDIO_RATE, frame_size=1024
        )
        self.codec = av.CodecContext.create("aac", "w")
        self.codec.sample_rate = AUDIO_RATE
        self.codec.layout = "stereo"
        self.codec.format = "fltp"
        self.codec.bit_rate = options.audio_bitrate
        self.codec.time_base = Fraction(1, AUDIO_RATE)

    def encode(self, frame: Any) -> list[Any]:
        return [p for chunk in self.resampler.resample(frame) for p in self.codec.encode(chunk)]

    def flush(self) -> list[Any]:
        packets = [p for chunk in self.resampler.resample(None) for p in self.codec.encode(chunk)]
        return packets + list(self.codec.encode(None))


def _can_copy(stream: Any, options: VideoOptions) -> bool:
    """AAC mono or stereo at a mobile bitrate goes into every rendition as it is."""
    context = stream.codec_context
    return bool(
        context.name == "aac"
        and context.channels in (1, 2)
        and context.sample_rate in (44_100, 48_000)
        and 0 < (context.bit_rate or stream.bit_rate or 0) <= options.copy_audio_max_bitrate
    )


def _mux_audio(outputs: list[_Output], packets: Iterable[Any]) -> None:
    for packet in packets:
        for out in outputs:
            out.mux_audio(packet)


def _abort(outputs: list[_Output]) -> None:
    for out in outputs:
        out.abort()


def upright_filter(stream: Any, rotation: int) -> Any:
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


def upright_frames(graph: Any, frame: Any) -> list[Any]:
    """The frames the upright filter gives back for `frame` (the frame itself without one)."""
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


def save_poster(frame: Any, spec: RenditionSpec, out_dir: Path) -> Path:
    """Write `frame` at the poster spec's size as a JPEG; its path."""
    from PIL import Image

    image = frame.to_image()
    if image.size != (spec.width, spec.height):
        image = image.resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    path = out_dir / f"{spec.name}.{spec.ext}"
    image.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return path
