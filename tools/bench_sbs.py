#!/usr/bin/env python3
"""Benchmark (not a test): SBS vs uniform quantization on carphone at matched file sizes.

    python tools/bench_sbs.py --preset s --epochs 150 --jobs 2 --out runs/bench_sbs

Uniform QAT at 8, 6 and 4 bits, then SBS steered (``--target-bpp``) to the rates the uniform points reached, so
each SBS point sits at a matched file size, plus SBS at the default λ with no target (what ``--quant sbs`` does
alone) and at LOW_FRACTION of the 4-bit point's rate (so that the SBS curve overlaps the uniform one further
down: SBS at the 4-bit size is already ~2 dB above it on carphone). Prints bytes, PSNR-YUV, each SBS file's
width histogram and pruned fraction, and the BD-rate of SBS against the uniform curve (pchip and Akima, at least
3 points on each front). Resumable: points are sweep jobs.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.info import describe_file  # noqa: E402
from codec.encoder import EncodeOptions  # noqa: E402
from compress.sbs_rate import RATE_TERMS as SBS_RATE_TERMS  # noqa: E402
from eval.bdrate import records_bd_rate  # noqa: E402
from eval.sweep import carphone_input, load_records, plan, run_jobs  # noqa: E402

LOW_FRACTION = 0.7  # the lowest SBS point's target, as a fraction of the uniform 4-bit point's rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="s")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="runs/bench_sbs")
    ap.add_argument("--steps", choices=("tensor", "channel"), default="tensor",
                    help="SBS points: one clipping range v per tensor (the paper) or per channel")
    ap.add_argument("--sbs-rate", choices=SBS_RATE_TERMS, default=EncodeOptions.sbs_rate,
                    help="SBS points: the rate term, λ·bpp or λ·log(R + S) (the paper's)")
    ap.add_argument("--sbs-prune", action=argparse.BooleanOptionalAction, default=EncodeOptions.sbs_prune,
                    help="SBS points: learn pruning gates in the search")
    args = ap.parse_args()
    out = Path(args.out)
    seqs = [carphone_input(out, args.frames)]
    base = dict(preset=args.preset, epochs=args.epochs)
    uniform = [(f"u{b}", dataclasses.asdict(EncodeOptions(**base, bits=b))) for b in (8, 6, 4)]
    ujobs = plan(seqs, out, uniform, {}, name="uniform")
    run_jobs(ujobs, args.jobs)
    urecs = sorted(load_records(ujobs)["carphone"]["uniform"], key=lambda r: r["bpp"])
    sbase = dict(base, quant="sbs", steps=args.steps, sbs_rate=args.sbs_rate, sbs_prune=args.sbs_prune)
    sbs = [(f"sbs{i}", dataclasses.asdict(EncodeOptions(**sbase, target_bpp=round(r["bpp"], 5))))
           for i, r in enumerate(urecs)]
    sbs.append(("sbs-default", dataclasses.asdict(EncodeOptions(**sbase))))
    low = round(LOW_FRACTION * urecs[0]["bpp"], 5)
    sbs.append(("sbs-low", dataclasses.asdict(EncodeOptions(**sbase, target_bpp=low))))
    sjobs = plan(seqs, out, sbs, {}, name="sbs")
    run_jobs(sjobs, args.jobs)
    srecs = sorted(load_records(sjobs)["carphone"]["sbs"], key=lambda r: r["bpp"])
    print(f"\n{'point':<11} {'bytes':>7} {'bpp':>8} {'PSNR-YUV':>9}  widths (tensors per bits) / pruned")
    for r in urecs + srecs:
        desc = describe_file(out / "points" / "carphone" / r["codec"] / f"{r['point']}.bin")
        hist = collections.Counter(t["bits"] for t in desc["tensors"])
        zeros = sum(t["zero_fraction"] * t["numel"] for t in desc["tensors"]) / max(1, sum(t["numel"] for t in desc["tensors"]))
        print(f"{r['point']:<11} {r['bytes']:>7,} {r['bpp']:>8.4f} {r['psnr-yuv']:>9.2f}  "
              f"{dict(sorted(hist.items()))} / {100 * zeros:.1f}% zeros")
    print(f"BD-rate of SBS vs uniform {{8,6,4}}-bit curve (PSNR-YUV): "
          f"{records_bd_rate(urecs, srecs, min_points=3).summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
