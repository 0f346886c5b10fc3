"""Blurhash previews: their CPU cost on a 12 MP photo and a 1080x1920 frame, beside the transcode.

Run from the repository root: `.venv/bin/python -m bench.blurhash [--repeat 20]`. The baseline,
measured in the same run, is the whole image job (`transcode_media` of the same photo, which
includes its blurhash) and the conversion of the frame to a Pillow image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageOps

from connectors.blurhash_preview import frame_blurhash, image_blurhash
from connectors.transcoder import transcode_media
from tests.connectors.media_factory import make_image, make_video


def cpu_ms(job: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and max CPU milliseconds (this process) of `repeat` runs of `job`."""
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        job()
        runs.append((time.process_time() - start) * 1000)
    return statistics.median(runs), max(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        photo = make_image(d / "photo.jpg", 4000, 3000, texture=True)
        clip = make_video(d / "clip.mp4", 1080, 1920, seconds=0.2, fps=10, audio=False)
        with Image.open(photo) as img:
            base = (ImageOps.exif_transpose(img) or img).convert("RGB")
        with av.open(str(clip)) as container:
            frame = next(container.decode(video=0))
        rows = [
            ("blurhash of the 4000x3000 photo (decoded)", lambda: image_blurhash(base)),
            ("blurhash of a 1080x1920 frame", lambda: frame_blurhash(frame)),
            ("baseline: the 1080x1920 frame to a Pillow image", lambda: frame.to_image()),
            ("baseline: transcode_media of the photo", lambda: transcode_media(photo, d / "out")),
        ]
        print(f"load average {os.getloadavg()[0]:.1f}; CPU ms, {args.repeat} runs each")
        for name, job in rows:
            median, worst = cpu_ms(job, args.repeat)
            print(f"{name:52s} median {median:8.2f}  max {worst:8.2f}")


if __name__ == "__main__":
    main()
