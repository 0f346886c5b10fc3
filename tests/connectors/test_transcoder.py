"""Transcoding real media made with Pillow and PyAV; the upload and object-change jobs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import av
import msgspec
import pytest
from PIL import Image

from bench.transcode_baseline import transcode_video_baseline
from connectors.media_jobs import apply_objects_change, process_upload
from connectors.memory_store import InMemoryObjectStore
from connectors.object_store import ObjectStore
from connectors.transcoder import (
    TranscodeError,
    Transcoder,
    VideoOptions,
    probe,
    transcode,
    transcode_media,
)
from connectors.upload import UploadError, upload_original
from infra.s3 import EmbeddedS3
from processors.media import PUBLIC_PREFIXES, MediaLimits, plan_renditions
from processors.messages import MediaObjectsChanged
from schemas.events import MediaUploaded
from tests.connectors.conftest import s3_store
from tests.connectors.media_factory import make_image, make_video

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RED = (255, 0, 0)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every source file, made once for the module."""
    d = tmp_path_factory.mktemp("media")
    tiny = make_video(d / "tiny.mp4", 320, 240, seconds=1, fps=10)
    data = tiny.read_bytes()
    files = {
        "photo": make_image(d / "photo.jpg", 4000, 3000),
        "rotated": make_image(d / "rotated.jpg", 800, 600, orientation=6, gps=True),
        "alpha": make_image(d / "alpha.png", 300, 200, fmt="PNG"),
        "portrait": make_video(d / "portrait.mp4", 1080, 1920, seconds=2, fps=15),
        "tiny": tiny,
        "phone": make_video(d / "phone.mp4", 720, 1280, seconds=1, fps=10),
        "silent": make_video(d / "silent.mp4", 320, 240, seconds=1, audio=False),
        "sideways": make_video(d / "sideways.mp4", 320, 240, seconds=1, rotation=-90),
        "webm": make_video(d / "clip.webm", 320, 240, seconds=1, container="webm"),
        "long": make_video(d / "long.mp4", 64, 48, seconds=61, fps=2, audio=False),
        "noisy": make_video(d / "noisy.mp4", 320, 240, seconds=4, fps=10, texture=True),
        "empty": d / "empty.mp4",
        "random": d / "random.bin",
        "text": d / "text.jpg",
        "truncated_mp4": d / "truncated.mp4",
        "truncated_jpg": d / "truncated.jpg",
    }
    files["empty"].write_bytes(b"")
    files["random"].write_bytes(bytes((i * 7919) % 251 for i in range(4096)))
    files["text"].write_text("definitely not a photo\n")
    files["truncated_mp4"].write_bytes(data[: len(data) // 2])
    files["truncated_jpg"].write_bytes(files["rotated"].read_bytes()[:3000])
    return files


def sizes(result: object) -> dict[str, tuple[int, int]]:
    return {r.spec.name: (r.width, r.height) for r in result.renditions}  # type: ignore[attr-defined]


def streams_of(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frame = next(container.decode(video))
        return {
            "codecs": sorted(s.codec_context.name for s in container.streams),
            "size": (video.codec_context.width, video.codec_context.height),
            "pix_fmt": video.codec_context.pix_fmt,
            "duration_ms": (container.duration or 0) // 1000,
            "rotation": frame.rotation,
        }


class TestImages:
    def test_large_photo_gets_three_widths_and_a_thumbnail(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        result = transcode_media(media["photo"], tmp_path)
        assert sizes(result) == {
            "1080": (1080, 810),
            "720": (720, 540),
            "480": (480, 360),
            "thumbnail": (150, 150),
        }
        for rendition in result.renditions:
            with Image.open(rendition.path) as img:
                assert img.format == "JPEG"
                assert img.size == (rendition.width, rendition.height)
            assert rendition.content_type == "image/jpeg"

    def test_exif_orientation_applied_and_metadata_stripped(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        with Image.open(media["rotated"]) as source:
            assert source.getexif()[0x0112] == 6
        result = transcode_media(media["rotated"], tmp_path)
        # 800x600 stored, orientation 6 (turn clockwise): displayed 600x800, never upscaled.
        assert sizes(result) == {"600": (600, 800), "480": (480, 640), "thumbnail": (150, 150)}
        with Image.open(result.renditions[0].path) as img:
            assert not img.getexif()
            assert "exif" not in img.info and "icc_profile" not in img.info
            top_right = img.getpixel((img.width - 5, 5))
            assert isinstance(top_right, tuple)
            assert all(abs(a - b) < 40 for a, b in zip(top_right, RED, strict=True))

    def test_transparent_png_is_flattened_never_upscaled(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        result = transcode_media(media["alpha"], tmp_path)
        assert sizes(result) == {"300": (300, 200), "thumbnail": (150, 150)}
        with Image.open(result.renditions[0].path) as img:
            assert img.mode == "RGB"


class TestVideos:
    def test_portrait_video_renditions(self, media: dict[str, Path], tmp_path: Path) -> None:
        result = transcode_media(media["portrait"], tmp_path)
        assert sizes(result) == {
            "1080p": (1080, 1920),
            "720p": (720, 1280),
            "480p": (480, 854),
            "poster": (1080, 1920),
        }
        assert result.duration_ms is not None and abs(result.duration_ms - 2000) < 100
        for rendition in result.renditions[:3]:
            facts = streams_of(rendition.path)
            assert facts["codecs"] == ["aac", "h264"]
            assert facts["size"] == (rendition.width, rendition.height)
            assert facts["pix_fmt"] == "yuv420p"
            assert abs(int(facts["duration_ms"]) - 2000) < 150  # type: ignore[call-overload]
            data = rendition.path.read_bytes()
            assert data.index(b"moov") < data.index(b"mdat")  # faststart: playable while loading
        with Image.open(result.renditions[3].path) as poster:
            assert (poster.format, poster.size) == ("JPEG", (1080, 1920))

    def test_small_video_is_never_upscaled(self, media: dict[str, Path], tmp_path: Path) -> None:
        result = transcode_media(media["tiny"], tmp_path)
        assert sizes(result) == {"240p": (320, 240), "poster": (320, 240)}
        assert streams_of(result.renditions[0].path)["size"] == (320, 240)

    def test_phone_video_renditions_are_named_by_their_real_size(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        result = transcode_media(media["phone"], tmp_path)
        # Its largest rendition is what it is: 720p (never the 1080 tier's name).
        assert sizes(result) == {"720p": (720, 1280), "480p": (480, 854), "poster": (720, 1280)}
        for rendition in result.renditions[:2]:
            assert streams_of(rendition.path)["size"] == (rendition.width, rendition.height)
            assert rendition.path.name == f"{rendition.spec.name}.mp4"

    def test_video_without_audio_stays_silent(self, media: dict[str, Path], tmp_path: Path) -> None:
        result = transcode_media(media["silent"], tmp_path)
        assert streams_of(result.renditions[0].path)["codecs"] == ["h264"]

    def test_sideways_phone_video_is_turned_upright(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        assert probe(media["sideways"]).rotation == 270
        result = transcode_media(media["sideways"], tmp_path)
        assert sizes(result) == {"240p": (240, 320), "poster": (240, 320)}
        facts = streams_of(result.renditions[0].path)
        assert facts["size"] == (240, 320) and facts["rotation"] == 0
        with Image.open(result.renditions[1].path) as poster:  # red corner now top right
            top_right = poster.getpixel((poster.width - 5, 5))
            assert isinstance(top_right, tuple)
            assert all(abs(a - b) < 60 for a, b in zip(top_right, RED, strict=True))

    def test_webm_is_transcoded_to_h264(self, media: dict[str, Path], tmp_path: Path) -> None:
        assert probe(media["webm"]).content_type == "video/webm"
        result = transcode_media(media["webm"], tmp_path)
        assert streams_of(result.renditions[0].path)["codecs"] == ["aac", "h264"]


def packets(path: Path) -> dict[str, list[tuple[int | None, bytes]]]:
    """Every packet's timestamp and bytes, per stream type, in file order."""
    found: dict[str, list[tuple[int | None, bytes]]] = {"video": [], "audio": []}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size and packet.stream.type in found:
                found[packet.stream.type].append((packet.pts, bytes(packet)))
    return found


def video_facts(path: Path) -> dict[str, object]:
    """Codecs, size, frame count and duration (s) of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "codecs": sorted(s.codec_context.name for s in container.streams),
            "size": (stream.codec_context.width, stream.codec_context.height),
            "frames": frames,
            "duration_s": round((container.duration or 0) / 1e6, 1),
        }


class TestDecodeOnce:
    """Every rendition from one decode: the plan's sizes, H.264/AAC, the source's length."""

    @pytest.mark.parametrize("name", ["portrait", "phone", "sideways", "webm", "silent"])
    def test_renditions_are_planned_sizes_h264_aac_of_the_source_length(
        self, media: dict[str, Path], tmp_path: Path, name: str
    ) -> None:
        info = probe(media[name])
        planned = plan_renditions(info.kind, info.width, info.height, info.duration_ms)
        result = transcode_media(media[name], tmp_path)
        assert [(r.spec, r.width, r.height) for r in result.renditions] == [
            (s, s.width, s.height) for s in planned
        ]
        with av.open(str(media[name])) as source:
            source_frames = sum(1 for _ in source.decode(source.streams.video[0]))
        codecs = ["aac", "h264"] if info.has_audio else ["h264"]
        for rendition in result.renditions[:-1]:
            facts = video_facts(rendition.path)
            assert facts["codecs"] == codecs
            assert facts["size"] == (rendition.width, rendition.height)
            assert facts["frames"] == source_frames
            assert facts["duration_s"] == round((info.duration_ms or 0) / 1000, 1)

    @pytest.mark.parametrize("name", ["portrait", "sideways", "webm", "silent"])
    def test_same_renditions_as_the_previous_pipeline(
        self, media: dict[str, Path], tmp_path: Path, name: str
    ) -> None:
        now = transcode_media(media[name], tmp_path / "now")
        before = transcode_video_baseline(media[name], tmp_path / "before")
        assert sizes(now) == sizes(before)
        for ours, theirs in zip(now.renditions[:-1], before.renditions[:-1], strict=True):
            assert video_facts(ours.path) == video_facts(theirs.path)
            assert [pts for pts, _ in packets(ours.path)["video"]] == [
                pts for pts, _ in packets(theirs.path)["video"]
            ]

    def test_aac_audio_is_copied_into_every_rendition(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        source_audio = packets(media["portrait"])["audio"]
        result = transcode_media(media["portrait"], tmp_path)
        assert len(result.renditions) == 4
        for rendition in result.renditions[:-1]:
            assert packets(rendition.path)["audio"] == source_audio

    def test_other_audio_becomes_the_same_aac_in_every_rendition(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        spec = plan_renditions("video", 320, 240, 1000)[0]
        small = replace(spec, name="120p", width=160, height=120)
        result = transcode(media["webm"], [spec, small], tmp_path)
        audio = [packets(r.path)["audio"] for r in result.renditions]
        assert audio[0] and audio[0] == audio[1]  # Opus in, the same AAC packets out
        with av.open(str(result.renditions[1].path)) as small_file:
            assert small_file.streams.audio[0].codec_context.name == "aac"

    def test_bitrate_cap_of_the_plan_is_applied(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        spec = plan_renditions("video", 320, 240, 4000)[0]
        options = VideoOptions(crf=12)  # a quality the noise makes expensive
        free = transcode(media["noisy"], [replace(spec, max_kbps=None)], tmp_path / "free",
                         options=options)  # fmt: skip
        capped = transcode(media["noisy"], [replace(spec, max_kbps=200)], tmp_path / "capped",
                           options=options)  # fmt: skip

        def video_kbps(path: Path) -> float:
            return sum(len(data) for _, data in packets(path)["video"]) * 8 / 4 / 1000

        assert video_kbps(free.renditions[0].path) > 600
        # VBV: at most the cap over any 2 s, plus the buffer's initial fill once over 4 s.
        assert video_kbps(capped.renditions[0].path) <= 200 * (1 + 0.9 * 2 / 4)


class TestBadMedia:
    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("empty", "empty file"),
            ("random", "unsupported media: unrecognised content"),
            ("text", "unsupported media: unrecognised content"),
            ("truncated_mp4", "corrupt video"),
            ("truncated_jpg", "corrupt image"),
            ("long", r"video too long: 61\.0 s \(at most 60 s\)"),
        ],
    )
    def test_rejected_with_a_clear_message(
        self, media: dict[str, Path], tmp_path: Path, name: str, message: str
    ) -> None:
        with pytest.raises(TranscodeError, match=message):
            transcode_media(media[name], tmp_path)

    def test_limits_are_parameters(self, media: dict[str, Path], tmp_path: Path) -> None:
        with pytest.raises(TranscodeError, match="file too large"):
            transcode_media(media["rotated"], tmp_path, limits=MediaLimits(max_bytes=1000))
        with pytest.raises(TranscodeError, match="video too long"):
            transcode_media(media["tiny"], tmp_path, limits=MediaLimits(max_video_ms=500))
        with pytest.raises(TranscodeError, match="image too large"):
            transcode_media(media["photo"], tmp_path, limits=MediaLimits(max_image_pixels=10**6))


def uploaded(store: ObjectStore, path: Path, media_id: str) -> MediaUploaded:
    fields = upload_original(store, path, "alice", media_id, at=NOW)
    return MediaUploaded(**fields)


class TestJobs:
    def test_process_upload_in_the_worker_pool_on_s3(
        self, embedded_s3: EmbeddedS3, media: dict[str, Path], tmp_path: Path
    ) -> None:
        import urllib.request

        store = s3_store(embedded_s3, create_bucket=True, public_prefixes=PUBLIC_PREFIXES)
        event = uploaded(store, media["tiny"], "vid-1")
        assert event.content_type == "video/mp4" and event.object_key == "uploads/vid-1/original"
        with Transcoder(workers=1) as pool:
            done = process_upload(store, event, tmp_path, NOW, transcoder=pool)
        assert done.error is None and done.media_id == "vid-1" and done.at == NOW
        assert [(r.name, r.content_type) for r in done.renditions] == [
            ("240p", "video/mp4"),
            ("poster", "image/jpeg"),
        ]
        assert store.list_keys("media/vid-1/") == [
            "media/vid-1/240p.mp4",
            "media/vid-1/poster.jpg",
        ]
        with urllib.request.urlopen(done.renditions[1].url) as response:  # clients can fetch
            assert response.read()[:3] == b"\xff\xd8\xff"
        assert list(tmp_path.iterdir()) == []  # the job's files are cleaned up

    def test_process_upload_is_idempotent(self, media: dict[str, Path], tmp_path: Path) -> None:
        store = InMemoryObjectStore()
        event = uploaded(store, media["rotated"], "img-1")
        first = process_upload(store, event, tmp_path, NOW)
        again = process_upload(store, event, tmp_path, NOW)
        assert first == again
        assert [r.name for r in first.renditions] == ["600", "480", "thumbnail"]
        assert first.renditions[0].url == store.public_url("media/img-1/600.jpg")
        assert len(store.list_keys("media/img-1/")) == 3

    def test_bad_upload_becomes_an_error_event(
        self, media: dict[str, Path], tmp_path: Path
    ) -> None:
        store = InMemoryObjectStore()
        store.put_bytes("uploads/bad/original", media["truncated_mp4"].read_bytes(), "video/mp4")
        event = MediaUploaded(event_id="e-bad", media_id="bad", author_id="alice",
                              object_key="uploads/bad/original", content_type="video/mp4",
                              at=NOW)  # fmt: skip
        done = process_upload(store, event, tmp_path, NOW)
        assert done.renditions == [] and done.error and "corrupt video" in done.error
        assert store.list_keys("media/bad/") == []
        gone = event.model_copy(update={"object_key": "uploads/gone/original"})
        assert "original not found" in (process_upload(store, gone, tmp_path, NOW).error or "")

    def test_move_to_highlights_then_purge(self, tmp_path: Path) -> None:
        store = InMemoryObjectStore()
        for key in ["uploads/m1/original", "media/m1/1080.jpg", "media/m1/thumbnail.jpg",
                    "media/m10/1080.jpg"]:  # fmt: skip
            store.put_bytes(key, b"x")
        move = MediaObjectsChanged(media_id="m1", story_id="s1", action="move_to_highlights")
        moved = apply_objects_change(store, move)
        assert [m.new_key for m in moved] == [
            "highlights/m1/1080.jpg",
            "highlights/m1/thumbnail.jpg",
        ]
        assert moved[0].url == store.public_url("highlights/m1/1080.jpg")
        assert apply_objects_change(store, move) == []  # a re-run does no harm
        purge = msgspec.structs.replace(move, action="purge")
        apply_objects_change(store, purge)
        apply_objects_change(store, purge)
        assert store.list_keys("media/") == ["media/m10/1080.jpg"]
        assert store.list_keys("highlights/") == store.list_keys("uploads/") == []


class TestUpload:
    def test_upload_sniffs_content_not_name(self, tmp_path: Path) -> None:
        store = InMemoryObjectStore()
        disguised = make_image(tmp_path / "holiday.mp4", 64, 48)  # a JPEG named .mp4
        fields = upload_original(store, disguised, "alice", "m1", story_id="s1")
        assert fields["content_type"] == "image/jpeg"
        assert fields["size_bytes"] == disguised.stat().st_size
        assert store.head("uploads/m1/original").content_type == "image/jpeg"  # type: ignore[union-attr]

    def test_unsupported_file_is_refused_naming_it(self, media: dict[str, Path]) -> None:
        store = InMemoryObjectStore()
        with pytest.raises(UploadError, match=r"text\.jpg: not a supported .*not recognised"):
            upload_original(store, media["text"], "alice", "m1")
        assert store.list_keys("uploads/") == []

    def test_detected_but_unsupported_type_is_named(self, tmp_path: Path) -> None:
        heic = tmp_path / "IMG_0001.HEIC"
        heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100)
        with pytest.raises(UploadError, match="detected image/heic"):
            upload_original(InMemoryObjectStore(), heic, "alice", "m1")

    def test_missing_and_empty_files(self, media: dict[str, Path], tmp_path: Path) -> None:
        with pytest.raises(UploadError, match="cannot read"):
            upload_original(InMemoryObjectStore(), tmp_path / "nope.jpg", "alice", "m1")
        with pytest.raises(UploadError, match="empty file"):
            upload_original(InMemoryObjectStore(), media["empty"], "alice", "m1")
