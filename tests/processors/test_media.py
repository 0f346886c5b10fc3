"""Pure media decisions: sniffing, limits, rendition plans and object keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.media import (
    MediaLimits,
    RenditionSpec,
    check_image,
    check_size,
    check_video,
    highlight_key,
    media_kind,
    original_key,
    plan_objects_change,
    plan_renditions,
    rendition_key,
    sniff_content_type,
)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video/mp4"),
        (b"\x00\x00\x00\x1cftypmp42\x00\x00\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video/quicktime"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "video/quicktime"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "image/avif"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
        (b"", None),
        (b"hello, world: not media", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"%PDF-1.7\n", None),
    ],
)
def test_sniff_content_type(head: bytes, expected: str | None) -> None:
    assert sniff_content_type(head) == expected


def test_media_kind_accepts_only_supported_types() -> None:
    assert media_kind("image/jpeg") == "image"
    assert media_kind("video/quicktime") == "video"
    assert media_kind("image/heic") is None  # recognised, not supported
    assert media_kind(None) is None


def test_limits() -> None:
    limits = MediaLimits(max_bytes=100, max_video_ms=60_000, max_image_pixels=100)
    assert check_size(0, limits) == "empty file"
    assert check_size(100, limits) is None
    assert "too large" in (check_size(101, limits) or "")
    assert check_video(60_000, limits) is None
    assert check_video(15_001, limits) is None  # kept whole: one rendition of the full length
    assert check_video(60_001, limits) == "video too long: 60.0 s (at most 60 s)"
    assert check_video(None, limits) is not None
    assert check_image(10, 10, limits) is None
    assert "too large" in (check_image(10, 11, limits) or "")
    assert check_image(0, 10, limits) is not None


def dims(specs: list[RenditionSpec]) -> dict[str, tuple[int, int]]:
    return {s.name: (s.width, s.height) for s in specs}


def test_image_plan() -> None:
    specs = plan_renditions("image", 4000, 3000)
    assert dims(specs) == {"1080": (1080, 810), "720": (720, 540), "480": (480, 360),
                           "thumbnail": (150, 150)}  # fmt: skip
    assert all(s.content_type == "image/jpeg" and s.ext == "jpg" for s in specs)
    assert [s.crop for s in specs] == [False, False, False, True]


def test_small_image_is_never_upscaled() -> None:
    # Named by their real width: no "1080" for a 640-wide photo.
    assert dims(plan_renditions("image", 640, 480)) == {
        "640": (640, 480),
        "480": (480, 360),
        "thumbnail": (150, 150),
    }
    assert dims(plan_renditions("image", 100, 80)) == {"100": (100, 80), "thumbnail": (80, 80)}


def test_portrait_video_plan() -> None:
    specs = plan_renditions("video", 1080, 1920, 2000)
    assert dims(specs) == {"1080p": (1080, 1920), "720p": (720, 1280), "480p": (480, 854),
                           "poster": (1080, 1920)}  # fmt: skip
    assert [s.content_type for s in specs] == ["video/mp4"] * 3 + ["image/jpeg"]
    assert specs[-1].at_ms == 500


def test_landscape_video_plan_and_short_poster() -> None:
    specs = plan_renditions("video", 1920, 1080, 600)
    assert dims(specs)["480p"] == (854, 480)
    assert specs[-1].at_ms == 300  # within a short clip


def test_small_video_is_never_upscaled_and_even() -> None:
    assert dims(plan_renditions("video", 320, 240, 1000)) == {"240p": (320, 240),
                                                              "poster": (320, 240)}  # fmt: skip
    assert dims(plan_renditions("video", 321, 241, 1000))["240p"] == (320, 240)
    assert dims(plan_renditions("video", 600, 1000, 1000)) == {
        "600p": (600, 1000),
        "480p": (480, 800),
        "poster": (600, 1000),
    }


def test_video_renditions_are_named_by_their_short_side() -> None:
    # A 720x1280 phone video: its largest rendition is 720p (it was called 1080p).
    assert dims(plan_renditions("video", 720, 1280, 1000)) == {
        "720p": (720, 1280),
        "480p": (480, 854),
        "poster": (720, 1280),
    }
    assert [s.name for s in plan_renditions("video", 1280, 720, 1000)] == ["720p", "480p", "poster"]


def test_video_bitrate_caps_follow_the_real_size() -> None:
    caps = {s.name: s.max_kbps for s in plan_renditions("video", 1080, 1920, 1000)}
    assert caps == {"1080p": 4500, "720p": 2500, "480p": 1200, "poster": None}
    # Between tiers a rendition streams what the next tier up does; below 480p, what 480p does.
    assert plan_renditions("video", 600, 1000, 1000)[0].max_kbps == 2500
    assert plan_renditions("video", 320, 240, 1000)[0].max_kbps == 1200
    assert all(s.max_kbps is None for s in plan_renditions("image", 4000, 3000))


def test_empty_source_has_no_plan() -> None:
    with pytest.raises(ValueError):
        plan_renditions("image", 0, 100)


@given(st.integers(16, 8000), st.integers(16, 8000))
def test_video_plans_are_even_bounded_and_keep_aspect(width: int, height: int) -> None:
    specs = plan_renditions("video", width, height, 1000)
    assert len({spec.name for spec in specs}) == len(specs)  # one object key each
    for spec in specs:
        assert spec.width % 2 == 0 and spec.height % 2 == 0
        assert spec.width <= width and spec.height <= height
        if spec.kind == "video":
            assert spec.name == f"{min(spec.width, spec.height)}p"
        # Each side is off by at most one pixel from the exact scale (rounding to even).
        assert abs(spec.width * height - spec.height * width) <= width + height


@given(st.integers(1, 8000), st.integers(1, 8000))
def test_image_plans_never_upscale(width: int, height: int) -> None:
    specs = plan_renditions("image", width, height)
    for spec in specs:
        assert 1 <= spec.width <= width and 1 <= spec.height <= height
        if spec.kind == "image":
            assert spec.name == str(spec.width)
    assert len({spec.name for spec in specs}) == len(specs)  # one object key each


def test_object_keys() -> None:
    spec = plan_renditions("video", 1080, 1920, 1000)[0]
    assert original_key("m1") == "uploads/m1/original"
    assert rendition_key("m1", spec) == "media/m1/1080p.mp4"
    assert highlight_key("media/m1/1080p.mp4") == "highlights/m1/1080p.mp4"
    with pytest.raises(ValueError):
        highlight_key("uploads/m1/original")


def test_objects_plans() -> None:
    purge = plan_objects_change("m1", "purge")
    assert purge.delete_prefixes == ("uploads/m1/", "media/m1/", "highlights/m1/")
    assert purge.move_prefixes == ()
    move = plan_objects_change("m1", "move_to_highlights")
    assert move.move_prefixes == (("media/m1/", "highlights/m1/"),)
    assert move.delete_prefixes == ()
