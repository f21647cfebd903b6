#!/usr/bin/env python3
"""Benchmark (not a test): rate-distortion training (``--quant entropy``) vs uniform quantization on carphone.

    python tools/bench_rd.py --preset m --epochs 120 --lambdas 2,5,12,30 --jobs 2 --out runs/bench_rd

Same model size and epochs for every point: uniform QAT at 8, 6 and 4 bits (the 3 points of the anchor curve),
and ``--quant entropy`` at each λ. Prints bytes, bpp, PSNR-YUV, bits per parameter, the rate the training
estimated against the written size, and the BD-rate (PSNR-YUV, pchip and Akima) of entropy vs uniform.
Resumable: every point is a sweep job whose record is kept.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.encoder import EncodeOptions  # noqa: E402
from eval.bdrate import records_bd_rate  # noqa: E402
from eval.sweep import carphone_input, load_records, plan, run_jobs  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="m")
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--bits", default="8,6,4", help="uniform widths (the anchor curve)")
    ap.add_argument("--lambdas", default="2,5,12,30", help="entropy rate weights (per bpp)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="runs/bench_rd")
    args = ap.parse_args()
    out = Path(args.out)
    seqs = [carphone_input(out, args.frames)]
    base = dict(preset=args.preset, epochs=args.epochs)
    uniform = [(f"u{int(b)}", dataclasses.asdict(EncodeOptions(**base, bits=int(b)))) for b in _floats(args.bits)]
    entropy = [(f"lam{lam:g}", dataclasses.asdict(EncodeOptions(**base, quant="entropy", lam=lam)))
               for lam in _floats(args.lambdas)]
    jobs = plan(seqs, out, uniform, {}, name="uniform") + plan(seqs, out, entropy, {}, name="entropy")
    run_jobs(jobs, args.jobs)
    recs = load_records(jobs)["carphone"]
    urecs = sorted(recs.get("uniform", []), key=lambda r: r["bpp"])
    erecs = sorted(recs.get("entropy", []), key=lambda r: r["bpp"])
    print(f"\n{'point':<8} {'bytes':>7} {'bpp':>8} {'PSNR-YUV':>9} {'bits/param':>10} {'estimate':>9}")
    for r in urecs + erecs:
        est = r.get("estimated_bytes")
        est_txt = f"{100 * (est / r['bytes'] - 1):+.2f}%" if est else "-"
        print(f"{r['point']:<8} {r['bytes']:>7,} {r['bpp']:>8.4f} {r['psnr-yuv']:>9.2f} "
              f"{8 * r['bytes'] / r['params']:>10.3f} {est_txt:>9}")
    if len(urecs) >= 2 and len(erecs) >= 2:
        print(f"BD-rate of entropy vs uniform (PSNR-YUV): {records_bd_rate(urecs, erecs, min_points=2).summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
