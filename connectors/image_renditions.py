"""Image renditions with Pillow: EXIF orientation applied, sRGB, metadata stripped."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from connectors.blurhash_preview import image_blurhash
from connectors.media_files import JPEG_QUALITY, ProducedRendition, TranscodeError, produced
from processors.media import RenditionSpec

log = logging.getLogger(__name__)


def transcode_image(
    source: Path, specs: list[RenditionSpec], out_dir: Path
) -> tuple[list[ProducedRendition], str]:
    """Write every spec of the image at `source` as a JPEG `{name}.{ext}` in `out_dir`; the
    renditions and the image's blurhash."""
    from PIL import Image, ImageOps

    try:
        with Image.open(source) as img:
            img.seek(0)  # the first frame of an animated GIF or WebP
            if img.format == "JPEG":
                _draft(img, specs)
            base = _to_srgb(ImageOps.exif_transpose(img) or img)
            made = []
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
                made.append(produced(spec, path, out.width, out.height))
            return made, image_blurhash(base)
    except TranscodeError:
        raise
    except Exception as exc:
        raise TranscodeError(f"corrupt image: {exc}") from exc


def _draft(img: Any, specs: list[RenditionSpec]) -> None:
    # JPEG can decode at 1/2, 1/4 or 1/8 scale (DCT scaling): ask for the largest rendition,
    # in the stored (not yet EXIF-rotated) orientation, which saves most of a big photo's decode.
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
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"))
            if converted is not None:
                img = converted
        except Exception:  # a broken profile is not worth failing the upload
            log.debug("ignoring an unusable ICC profile", exc_info=True)
    return img
