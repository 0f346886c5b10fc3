"""Blurhash previews: a short string a client paints as a blurred placeholder before the media."""

from __future__ import annotations

from typing import Any

# Four columns of detail by three rows: the usual choice for photos (blurha.sh), 28 characters.
COMPONENTS_X, COMPONENTS_Y = 4, 3
# The hash keeps only a dozen low-frequency components, which a thumbnail this small still holds;
# taking it of the full image would cost far more for the same picture.
PREVIEW_SIZE = 32


def preview_size(width: int, height: int) -> tuple[int, int]:
    """The size, at most PREVIEW_SIZE on the longer side, of the thumbnail the hash is taken of."""
    scale = PREVIEW_SIZE / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


def blurhash_of_rgb(data: bytes, width: int, height: int) -> str:
    """The blurhash of packed 8-bit sRGB pixels (`width * height * 3` bytes, row by row)."""
    import blurhash

    if len(data) != width * height * 3:
        raise ValueError(f"{len(data)} bytes are not {width}x{height} RGB pixels")
    row = width * 3
    rows = [[data[at : at + 3] for at in range(y * row, (y + 1) * row, 3)] for y in range(height)]
    return str(blurhash.encode(rows, COMPONENTS_X, COMPONENTS_Y))


def image_blurhash(image: Any) -> str:
    """The blurhash of a Pillow image (any size, RGB), taken of a thumbnail of it."""
    from PIL import Image

    size = preview_size(*image.size)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    # reducing_gap: an integer-factor reduce first (Pillow's fast path), then the box filter.
    small = rgb.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    return blurhash_of_rgb(small.tobytes(), *size)


def frame_blurhash(frame: Any) -> str:
    """The blurhash of a decoded PyAV video frame, scaled down by libswscale first."""
    width, height = preview_size(frame.width, frame.height)
    small = frame.reformat(width, height, format="rgb24")
    # A frame's rows may be padded: take `width * 3` bytes of each line.
    plane = small.planes[0]
    stride, data = plane.line_size, bytes(plane)
    packed = b"".join(data[y * stride : y * stride + width * 3] for y in range(height))
    return blurhash_of_rgb(packed, width, height)
