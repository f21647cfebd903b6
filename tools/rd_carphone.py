#!/usr/bin/env python3
"""Benchmark (not a test): encode carphone (all 120 frames) at several presets; print bpp / PSNR-YUV / time.

    python tools/rd_carphone.py --presets xs,s,m --epochs 300 --out runs/rd_carphone

Each point is a real `hinerv encode` (checkpointed: rerun the same command to resume an interrupted sweep)
and is measured on the decoded file. The reference line is x265 veryslow on the same clip (DESIGN.md §6).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.clips import make_clip  # noqa: E402
from codec.encoder import EncodeOptions, encode  # noqa: E402

X265_VERYSLOW = [(0.243, 43.21), (0.124, 40.15), (0.0656, 37.15), (0.0365, 34.34), (0.0208, 31.69)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="xs,s,m,l")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--bits", type=int, default=6)
    ap.add_argument("--out", default="runs/rd_carphone")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "carphone.y4m"
    if not clip.exists():
        make_clip(clip, frames=args.frames)
    rows = []
    for preset in args.presets.split(","):
        report_path = out / f"{preset}.json"
        if report_path.exists():
            rows.append(json.loads(report_path.read_text()))
            continue
        opts = EncodeOptions(preset=preset, epochs=args.epochs, bits=args.bits)
        t0 = time.monotonic()
        report = encode(clip, out / f"{preset}.bin", opts, resume=True, progress=not args.quiet,
                        log=lambda m: print(m, file=sys.stderr))
        row = report.to_dict() | {"preset": preset, "wall_seconds": time.monotonic() - t0}
        report_path.write_text(json.dumps(row, indent=2))
        rows.append(row)
    print(f"{'preset':<7} {'params':>8} {'bytes':>8} {'bpp':>8} {'PSNR-YUV':>9} {'PSNR-Y':>7} {'MS-SSIM':>8} {'enc s':>7}")
    for r in rows:
        print(f"{r['preset']:<7} {r['params']:>8,} {r['bytes']:>8,} {r['bpp']:>8.4f} {r['psnr_yuv']:>9.2f} "
              f"{r['psnr_y']:>7.2f} {r['ms_ssim'] or 0:>8.4f} {r['encode_seconds']:>7.0f}")
    print("x265 veryslow (DESIGN.md §6): " + ", ".join(f"{b} bpp {p} dB" for b, p in X265_VERYSLOW))
    return 0


if __name__ == "__main__":
    sys.exit(main())
