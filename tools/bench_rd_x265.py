"""hinerv against x265 veryslow on the validation set (``eval.datasets.validation``), clip by clip, tune and check
halves apart: BD-rate on PSNR-YUV (6:1:1, pchip) and the PSNR-Y and PSNR-YUV gaps at equal rate (BD-PSNR).

Per clip: x265 veryslow at fixed QPs (``--qps``), then one hinerv encode at each x265 point's rate
(``--target-bpp``, capped at ``--max-bpp``), so both curves cover one range. hinerv runs as a user runs it: the CLI
with its defaults plus whatever follows ``--`` (e.g. ``-- --epochs 40 --loss mse``). Every figure is measured on
the decoded files; bpp is the file's size. Points are kept (``OUT/NAME/*.json``): a rerun only adds what is missing,
so another ``--`` set needs another ``--out``. Under the table it says, criterion by criterion, whether #19's
done-when holds (``eval.gap_criteria``).

64 frames by default, the length #19 measured on: 16 frames (``--frames 16 -- --epochs 150``, as many train steps
as 64 at 40) takes about three quarters of the time (the 28 points: 10,566 s against 14,158 s of one thread) and
misjudges the gap (carphone +30% there, -12% on 64 frames; docs/results.md). ``--epochs 40`` keeps the 28 points
to about 4 hours of one core and under-trains the largest models: top points gained 0.7-1.5 dB at the default 300.

    python tools/bench_rd_x265.py --out runs/rd_x265 --jobs 2 -- --epochs 40
    python tools/bench_rd_x265.py --out runs/rd_x265_mse --split tune -- --epochs 40 --loss mse
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codec.fileio import atomic_write_bytes  # noqa: E402
from codec.video import read_video  # noqa: E402
from codec.y4m import write_y4m  # noqa: E402
from eval.anchors import run_anchor_ladder  # noqa: E402
from eval.bdrate import bd_psnr, bd_rate  # noqa: E402
from eval.datasets.validation import SPLITS, validation_clip  # noqa: E402
from eval.gap_criteria import judge  # noqa: E402


def kept_clip(folder: Path, video) -> Path:
    """``folder/clip.y4m``, written on the first run; a folder that holds another clip (another ``--frames``, an
    older clip definition) is refused, since its kept points would be read as this clip's."""
    clip = folder / "clip.y4m"
    if not clip.exists():
        write_y4m(clip, video)
        return clip
    kept = read_video(clip)
    if kept.num_frames != video.num_frames or not all(np.array_equal(a, b) for a, b in zip(kept.planes, video.planes)):
        raise SystemExit(f"{folder} holds another clip ({kept.num_frames} frames; this run's has {video.num_frames}): "
                         f"its kept points are not this run's; give another --out")
    return clip


def anchor_points(video, folder: Path, qps: list[int]) -> list[dict]:
    """x265 veryslow at each QP, in the order asked: kept in ``x265.json``, which a later run with other QPs
    extends (only the QPs it lacks are encoded)."""
    path = folder / "x265.json"
    kept = {p["qp"]: p for p in (json.loads(path.read_text()) if path.exists() else [])}
    missing = [qp for qp in qps if qp not in kept]
    if missing:
        for r, m in run_anchor_ladder(video, "x265", missing, msssim=False):
            kept[r.qp] = {"qp": r.qp, "bpp": r.bpp, "bytes": r.bytes, "psnr_y": m.psnr_y, "psnr_u": m.psnr_u,
                          "psnr_v": m.psnr_v, "psnr_yuv": m.psnr_yuv}
        atomic_write_bytes(path, json.dumps([kept[qp] for qp in sorted(kept)], indent=2).encode())
    return [kept[qp] for qp in qps]


def hinerv_point(clip: Path, folder: Path, bpp: float, extra: list[str], threads: int,
                 bits_per_param: float | None = None, pixels: int = 0) -> dict:
    """One ``hinerv encode --target-bpp`` of the clip (its --json report, kept); with ``bits_per_param``, the model
    sized for the target at that many bits a parameter (``--params``) instead of ``--preset auto``'s."""
    report = folder / f"hinerv_{bpp:.4f}.json"
    if bits_per_param is not None:
        extra = [*extra, "--params", str(int(bpp * pixels / bits_per_param))]
    if not report.exists():
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        r = subprocess.run([sys.executable, "-m", "codec.cli", "encode", str(clip), str(report.with_suffix(".bin")),
                            "-q", "--target-bpp", f"{bpp:.4f}", "--json", str(report), *extra],
                           cwd=ROOT, capture_output=True, text=True, env=env)
        if r.returncode:
            raise SystemExit(f"hinerv encode {clip.name} at {bpp:.4f} bpp failed:\n{r.stderr[-2000:]}")
        print(f"  {folder.name} {bpp:.4f} bpp: {r.stdout.strip().splitlines()[0].split(': ', 1)[1]}", flush=True)
    return json.loads(report.read_text())


def compare(anchor: list[dict], test: list[dict]) -> dict:
    """BD-rate (PSNR-YUV) and BD-PSNR (Y, YUV) of ``test`` against ``anchor``."""
    def curve(points, metric):
        return [p["bpp"] for p in points], [p[metric] for p in points]

    rate = bd_rate(*curve(anchor, "psnr_yuv"), *curve(test, "psnr_yuv"))
    dy = bd_psnr(*curve(anchor, "psnr_y"), *curve(test, "psnr_y"))
    dyuv = bd_psnr(*curve(anchor, "psnr_yuv"), *curve(test, "psnr_yuv"))
    return {"bd_rate": rate.bd_rate_pchip, "bd_note": rate.note, "d_psnr_y": dy.bd_psnr_pchip,
            "d_psnr_yuv": dyuv.bd_psnr_pchip}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "rd_x265")
    ap.add_argument("--split", choices=["tune", "check", "all"], default="all")
    ap.add_argument("--clips", nargs="*", help="these clips instead of a split")
    ap.add_argument("--frames", type=int, default=64, help="frames of each clip (#19 measured on 64)")
    ap.add_argument("--qps", default="27,32,37,42", help="x265 QPs; hinerv targets their rates")
    ap.add_argument("--max-bpp", type=float, default=0.6, help="hinerv targets above this are left out")
    ap.add_argument("--jobs", type=int, default=1, help="hinerv encodes at once (threads split between them)")
    ap.add_argument("--bits-per-param", type=float, default=None,
                    help="size each model for its target at this many bits a parameter (default: --preset auto's)")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="-- then hinerv encode options for every point")
    args = ap.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    names = args.clips or (SPLITS["tune"] + SPLITS["check"] if args.split == "all" else SPLITS[args.split])
    split_of = {n: s for s, ns in SPLITS.items() for n in ns}
    qps = [int(q) for q in args.qps.split(",")]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    work, anchors = [], {}
    for name in names:
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        video = validation_clip(name, args.frames)
        clip = kept_clip(folder, video)
        anchors[name] = anchor_points(video, folder, qps)
        pixels = video.format.width * video.format.height * video.num_frames
        work += [(name, clip, folder, p["bpp"], pixels) for p in anchors[name] if p["bpp"] <= args.max_bpp]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda w: (w[0], hinerv_point(w[1], w[2], w[3], extra, threads, args.bits_per_param,
                                                           w[4])), work))
    rows = []
    for name in names:
        points = sorted((p for n, p in done if n == name), key=lambda p: p["bpp"])
        row = {"clip": name, "split": split_of.get(name, "-"), **compare(anchors[name], points),
               "points": [{k: p[k] for k in ("bpp", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv")} for p in points],
               "x265": anchors[name]}
        rows.append(row)
    (args.out / "table.json").write_text(json.dumps({"extra": extra, "bits_per_param": args.bits_per_param,
                                                     "frames": args.frames, "rows": rows}, indent=2))
    print_table(rows, extra, args)


def print_table(rows: list[dict], extra: list[str], args) -> None:
    sizing = "" if args.bits_per_param is None else f", models of {args.bits_per_param:g} bits a parameter"
    lines = [f"hinerv encode {' '.join(extra) or '(defaults)'} --target-bpp at x265's rates{sizing}, "
             f"{args.frames} frames of 176x144, against x265 veryslow QP {args.qps}", "",
             "| split | clip | BD-rate (PSNR-YUV) | ΔPSNR-Y at equal rate | ΔPSNR-YUV | hinerv Y/U/V dB at its points |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        planes = "; ".join(f"{p['psnr_y']:.1f}/{p['psnr_u']:.1f}/{p['psnr_v']:.1f}" for p in r["points"])
        lines.append(f"| {r['split']} | {r['clip']} | {fmt(r['bd_rate'], '%')} | {fmt(r['d_psnr_y'], ' dB')} | "
                     f"{fmt(r['d_psnr_yuv'], ' dB')} | {planes} |")
    for split in ("tune", "check"):
        clips = [r for r in rows if r["split"] == split]
        vals = [r["bd_rate"] for r in clips if math.isfinite(r["bd_rate"])]
        dy = [r["d_psnr_y"] for r in clips if math.isfinite(r["d_psnr_y"])]
        if vals:
            count = "" if len(vals) == len(clips) else f" ({len(vals)} of {len(clips)} clips)"
            lines.append(f"| {split} | **mean**{count} | {fmt(statistics.fmean(vals), '%')} | "
                         f"{fmt(statistics.fmean(dy), ' dB') if dy else '—'} | | |")
    notes = [f"- {r['clip']}: {r['bd_note']}" for r in rows if r.get("bd_note")]
    lines += ["", "BD-rate notes (overlap, dropped points):", *notes] if notes else []
    lines += ["", "#19's done-when:", *(f"- {v.line()}" for v in judge(rows))]
    text = "\n".join(lines)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


def fmt(value: float, unit: str) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:+.1f}{unit}"


if __name__ == "__main__":
    main()
