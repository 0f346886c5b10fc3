"""Blurhash previews of real media: they decode (with the same library) to the source's colours."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import blurhash
import numpy as np
import pytest
from PIL import Image

from connectors.blurhash_preview import blurhash_of_rgb, image_blurhash, preview_size
from connectors.media_jobs import process_upload
from connectors.memory_store import InMemoryObjectStore
from connectors.transcoder import transcode_media
from connectors.upload import upload_original
from schemas.events import MediaUploaded
from tests.connectors.media_factory import make_image, make_video

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CLOSE = 12  # per channel, 0-255: the hash keeps 12 components quantised, not pixels


def decoded(hash_: str, width: int = 32, height: int = 32) -> np.ndarray:
    """The blurhash painted at `width` x `height`, as an sRGB array."""
    return np.asarray(blurhash.decode(hash_, width, height), dtype=np.float64)


def average(srgb: np.ndarray) -> np.ndarray:
    """The average colour as blurhash means it: of linear light, given back in sRGB 0-255
    (a plain mean of sRGB values is darker wherever bright and dark parts mix)."""
    v = srgb / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    mean = linear.mean(axis=(0, 1))
    out = np.where(mean <= 0.0031308, mean * 12.92, 1.055 * mean ** (1 / 2.4) - 0.055)
    return np.asarray(out * 255.0)


def mean_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return average(np.asarray(img.convert("RGB"), dtype=np.float64))


def test_an_image_gets_a_4x3_blurhash_of_its_colours(tmp_path: Path) -> None:
    photo = make_image(tmp_path / "photo.jpg", 1600, 1200)
    result = transcode_media(photo, tmp_path / "out")
    assert result.blurhash is not None
    assert len(result.blurhash) == 4 + 2 * 4 * 3  # the header, then 12 components
    assert blurhash.components(result.blurhash) == (4, 3)
    painted = decoded(result.blurhash)
    assert np.abs(average(painted) - mean_rgb(photo)).max() < CLOSE
    # The factory's red top-left quarter is where the preview is red too.
    top_left, bottom_right = painted[:6, :6].mean(axis=(0, 1)), painted[-6:, -6:].mean(axis=(0, 1))
    assert top_left[0] > top_left[1] + 60 and top_left[0] > bottom_right[0] - 40


def test_the_image_blurhash_is_of_the_upright_picture(tmp_path: Path) -> None:
    # Stored 800x600 with orientation 6: shown turned clockwise, the red corner top right.
    rotated = make_image(tmp_path / "rotated.jpg", 800, 600, orientation=6)
    result = transcode_media(rotated, tmp_path / "out")
    assert result.blurhash is not None
    painted = decoded(result.blurhash, 24, 32)
    top_right, top_left = painted[:6, -5:].mean(axis=(0, 1)), painted[:6, :5].mean(axis=(0, 1))
    assert top_right[0] - top_right[1] > top_left[0] - top_left[1] + 40


@pytest.mark.parametrize(("width", "height"), [(320, 240), (240, 320)])
def test_a_video_gets_the_blurhash_of_its_poster_frame(
    tmp_path: Path, width: int, height: int
) -> None:
    clip = make_video(tmp_path / "clip.mp4", width, height, seconds=1.0, fps=10)
    result = transcode_media(clip, tmp_path / "out")
    assert result.blurhash is not None and blurhash.components(result.blurhash) == (4, 3)
    poster = next(r for r in result.renditions if r.spec.name == "poster")
    painted = decoded(result.blurhash)
    assert np.abs(average(painted) - mean_rgb(poster.path)).max() < CLOSE
    # The factory's video is dark blue with a red corner: the preview is bluish, not grey.
    colour = average(painted)
    assert colour[2] > colour[1] + 30


def test_a_rotated_video_gets_the_blurhash_of_its_upright_poster(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "sideways.mp4", 320, 240, seconds=1.0, rotation=-90)
    result = transcode_media(clip, tmp_path / "out")
    assert result.blurhash is not None
    poster = next(r for r in result.renditions if r.spec.name == "poster")
    with Image.open(poster.path) as img:
        assert img.height > img.width  # shown upright: portrait
    upright = image_blurhash(Image.open(poster.path))
    # The same picture, from the decoded frame or from its JPEG: the same colours.
    frame_paint, file_paint = decoded(result.blurhash), decoded(upright)
    assert np.abs(frame_paint - file_paint).mean() < CLOSE


def test_process_upload_reports_the_blurhash(tmp_path: Path) -> None:
    store = InMemoryObjectStore()
    photo = make_image(tmp_path / "photo.png", 640, 480, fmt="PNG")
    fields = upload_original(store, photo, "alice", "img-bh", at=NOW)
    done = process_upload(store, MediaUploaded(**fields), tmp_path / "work", NOW)
    assert done.error is None and done.blurhash is not None
    assert np.abs(average(decoded(done.blurhash)) - mean_rgb(photo)).max() < CLOSE


def test_bad_media_gets_no_blurhash(tmp_path: Path) -> None:
    store = InMemoryObjectStore()
    store.put_bytes("uploads/junk/original", b"\xff\xd8\xff" + bytes(4000), "image/jpeg")
    upload = MediaUploaded(
        media_id="junk",
        author_id="alice",
        object_key="uploads/junk/original",
        content_type="image/jpeg",
        at=NOW,
    )
    done = process_upload(store, upload, tmp_path / "work", NOW)
    assert done.error and done.blurhash is None


def test_preview_size_keeps_the_aspect_within_32_pixels() -> None:
    assert preview_size(4000, 3000) == (32, 24)
    assert preview_size(1080, 1920) == (18, 32)
    assert preview_size(5000, 10) == (32, 1)


def test_pixels_that_are_not_the_size_given_are_refused() -> None:
    with pytest.raises(ValueError, match="not 4x4 RGB pixels"):
        blurhash_of_rgb(bytes(47), 4, 4)
