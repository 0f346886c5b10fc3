"""The previous video pipeline, kept as the transcode benchmark's same-run baseline.

One decode, then per frame and per rendition: a new scaler, an x264 encoder on PyAV's default
slice threads (each encode call waits for its frame), and an AAC encoder per rendition.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from connectors.media_files import ProducedRendition, TranscodeResult, produced
from connectors.media_probe import probe
from connectors.video_renditions import (
    AUDIO_BITRATE,
    AUDIO_RATE,
    save_poster,
    upright_filter,
    upright_frames,
)
from processors.media import RenditionSpec, plan_renditions


def transcode_video_baseline(
    source: Path, out_dir: Path, preset: str = "veryfast", crf: int = 23
) -> TranscodeResult:
    """Probe, plan and transcode a video the way the pipeline did before decode-once sharing."""
    import av

    info = probe(source)
    specs = plan_renditions(info.kind, info.width, info.height, info.duration_ms)
    out_dir.mkdir(parents=True, exist_ok=True)
    poster = next(s for s in specs if s.kind == "poster")
    outputs: list[_BaselineOutput] = []
    poster_path: Path | None = None
    with av.open(str(source), metadata_errors="ignore") as container:
        vin = container.streams.video[0]
        vin.thread_type = "AUTO"
        ain = container.streams.audio[0] if container.streams.audio else None
        rate = vin.average_rate or vin.guessed_rate or Fraction(30)
        time_base = vin.time_base or Fraction(1, 90_000)
        for spec in (s for s in specs if s.kind == "video"):
            path = out_dir / f"{spec.name}.{spec.ext}"
            outputs.append(
                _BaselineOutput(spec, path, rate, time_base, ain is not None, preset, crf)
            )
        graph = upright_filter(vin, info.rotation) if info.rotation else None
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
                for upright in upright_frames(graph, frame):
                    if poster_path is None and (
                        upright.time is None or upright.time * 1000 >= (poster.at_ms or 0)
                    ):
                        poster_path = save_poster(upright, poster, out_dir)
                    for out in outputs:
                        out.encode_video(upright)
        for chunk in resampler.resample(None):
            for out in outputs:
                out.encode_audio(chunk)
    for out in outputs:
        out.finish()
    made: list[ProducedRendition] = [
        produced(o.spec, o.path, o.spec.width, o.spec.height) for o in outputs
    ]
    if poster_path is not None:
        made.append(produced(poster, poster_path, poster.width, poster.height))
    return TranscodeResult(info, tuple(made))


class _BaselineOutput:
    def __init__(
        self,
        spec: RenditionSpec,
        path: Path,
        rate: Fraction,
        time_base: Fraction,
        audio: bool,
        preset: str,
        crf: int,
    ) -> None:
        import av

        self.spec = spec
        self.path = path
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        options = {"preset": preset, "crf": str(crf)}
        self.video = self.container.add_stream("libx264", rate=rate, options=options)
        self.video.width = spec.width
        self.video.height = spec.height
        self.video.pix_fmt = "yuv420p"
        self.video.codec_context.time_base = time_base
        self.audio: Any = None
        if audio:
            self.audio = self.container.add_stream("aac", rate=AUDIO_RATE)
            self.audio.layout = "stereo"
            self.audio.bit_rate = AUDIO_BITRATE

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
