#!/usr/bin/env python3
"""Benchmark (not a test): encode carphone (all 120 frames) at several presets; print bpp / PSNR-YUV / time.

    python tools/rd_carphone.py --presets xxs,xs,s,m --epochs 300 --jobs 2 --out runs/rd_carphone

Each point is a real `hinerv encode`, measured on the decoded file, run through the sweep engine of
`eval.sweep`: rerunning the same command resumes an interrupted sweep, and the folder also gets the x265
veryslow anchor ladder, results JSON, the BD-rate table (`bd_rate.md`) and plots.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.sweep import carphone_input, hinerv_points, load_records, plan, run_sweep  # noqa: E402

X265_VERYSLOW = [(0.243, 43.21), (0.124, 40.15), (0.0656, 37.15), (0.0365, 34.34), (0.0208, 31.69)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="xxs,xs,s,m")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--bits", type=int, default=6)
    ap.add_argument("--jobs", type=int, default=2, help="points encoded in parallel (torch threads = cores // jobs)")
    ap.add_argument("--out", default="runs/rd_carphone")
    args = ap.parse_args()
    out = Path(args.out)
    seqs = [carphone_input(out, args.frames)]
    hinerv = hinerv_points(args.presets.split(","), epochs=args.epochs, bits=args.bits)
    anchors = {"x265": [22, 27, 32, 37, 42]}
    summary = run_sweep(seqs, out, hinerv, anchors, workers=args.jobs, title="carphone")
    records = load_records(plan(seqs, out, hinerv, anchors))["carphone"]
    print(f"\n{'codec':<7} {'point':<6} {'params':>8} {'bytes':>8} {'bpp':>8} {'PSNR-YUV':>9} {'PSNR-Y':>7} "
          f"{'MS-SSIM':>8} {'enc s':>7}")
    for codec in ("hinerv", "x265"):
        for r in sorted(records.get(codec, []), key=lambda r: r["bpp"]):
            params = f"{r['params']:,}" if r.get("params") else "-"
            print(f"{codec:<7} {r['point']:<6} {params:>8} {r['bytes']:>8,} {r['bpp']:>8.4f} {r['psnr-yuv']:>9.2f} "
                  f"{r['psnr-y']:>7.2f} {r['ms-ssim']:>8.4f} {r['encoding_time']:>7.0f}")
    print("x265 veryslow reference (docs/design.md §6): " + ", ".join(f"{b} bpp {p} dB" for b, p in X265_VERYSLOW))
    if "bd_md" in summary.outputs:
        print(f"BD-rate table: {summary.outputs['bd_md']}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
