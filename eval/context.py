"""``python -m eval.context CLIP... [--out DIR]`` or ``--sweep RUNDIR``: a context record per sequence, and the
sweep's results joined to it.

Objective fields, computed from the pixels (luma, native bit depth):

* **SI** and **TI** (ITU-T P.910): the maximum over frames of the spatial standard deviation of the Sobel gradient
  magnitude of the frame (SI), and of the difference to the previous frame (TI);
* **motion**: the mean magnitude (luma pixels per frame) of the block motion between consecutive frames, found by
  full search (16x16 blocks, ±8 pixels, on luma shrunk to at most 480 pixels wide, scaled back; at most 32 pairs
  of frames, evenly spaced);
* resolution, frames, fps, bit depth, chroma format.

Subjective fields after the iLog context ontology (*what*: content class; *where*: indoor/outdoor and the scene;
*who*: people or faces; *when*: lighting) come from an editable sidecar per dataset
(``eval/data/context/*.json``), matched by sequence name; a field the sidecar does not fill is ``"unknown"``: it
is never guessed.

``--manifest uvg`` prints the coverage of a test set from the sidecars alone. ``--sweep RUNDIR`` writes ``RUNDIR/context/<sequence>.json`` for every sequence of a sweep (the report shows them)
and ``RUNDIR/context.md``: per-context RD and BD-rate tables (each field's values; SI and TI as low/mid/high
terciles of the sweep), the coverage of the context cells (sequences per cell, the empty cells, the entropy of the
distribution) and the Spearman correlation of SI and TI with the rate each codec needs for a fixed PSNR-YUV.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SIDECARS = Path(__file__).resolve().parent / "data" / "context"
SUBJECTIVE = ("what", "where", "scene", "who", "when")  # the iLog fields a sidecar may fill
CELL_FIELDS = ("what", "where", "who", "when")  # the coverage grid (scene is free text)
UNKNOWN = "unknown"
MOTION_BLOCK, MOTION_RANGE, MOTION_WIDTH, MOTION_PAIRS = 16, 8, 480, 32


# --------------------------------------------------------------------------------------------- objective


def sobel_magnitude(frame: np.ndarray) -> np.ndarray:
    """|∇| of one frame with the 3x3 Sobel kernels, on the pixels whose 3x3 neighbourhood is inside (P.910)."""
    f = np.asarray(frame, dtype=np.float64)
    gx = (f[:-2, 2:] + 2 * f[1:-1, 2:] + f[2:, 2:]) - (f[:-2, :-2] + 2 * f[1:-1, :-2] + f[2:, :-2])
    gy = (f[2:, :-2] + 2 * f[2:, 1:-1] + f[2:, 2:]) - (f[:-2, :-2] + 2 * f[:-2, 1:-1] + f[:-2, 2:])
    return np.hypot(gx, gy)


def spatial_information(luma: np.ndarray) -> float:
    """SI: max over frames of std(Sobel(F_n)); ``luma`` (T, H, W)."""
    return max(float(sobel_magnitude(f).std()) for f in luma) if luma.shape[1] > 2 and luma.shape[2] > 2 else 0.0


def temporal_information(luma: np.ndarray) -> float:
    """TI: max over frames n >= 1 of std(F_n − F_{n−1}); 0 for a single frame."""
    return max((float((luma[n].astype(np.float64) - luma[n - 1]).std()) for n in range(1, len(luma))), default=0.0)


def block_motion(prev: np.ndarray, cur: np.ndarray, block: int = MOTION_BLOCK, radius: int = MOTION_RANGE
                 ) -> np.ndarray:
    """Per block of ``cur``, the displacement (dy, dx) into ``prev`` with the least sum of absolute differences
    (full search within ±radius; ties: the smallest displacement). Returns (blocks, 2)."""
    prev, cur = prev.astype(np.float32), cur.astype(np.float32)
    h, w = cur.shape
    ys, xs = range(0, h - block + 1, block), range(0, w - block + 1, block)
    pad = np.pad(prev, radius, mode="edge")
    best = np.full((len(ys), len(xs)), np.inf, dtype=np.float32)
    vectors = np.zeros((len(ys), len(xs), 2))
    crop = cur[:len(ys) * block, :len(xs) * block].reshape(len(ys), block, len(xs), block)
    offsets = sorted(itertools.product(range(-radius, radius + 1), repeat=2), key=lambda d: (abs(d[0]) + abs(d[1]), d))
    for dy, dx in offsets:
        ref = pad[radius + dy:radius + dy + len(ys) * block, radius + dx:radius + dx + len(xs) * block]
        sad = np.abs(crop - ref.reshape(crop.shape)).sum(axis=(1, 3))
        better = sad < best
        best[better] = sad[better]
        vectors[better] = (dy, dx)
    return vectors.reshape(-1, 2)


def mean_motion(luma: np.ndarray, max_width: int = MOTION_WIDTH) -> float:
    """Mean block-motion magnitude over consecutive frames, in full-resolution luma pixels per frame."""
    if len(luma) < 2:
        return 0.0
    factor = max(1, math.ceil(luma.shape[2] / max_width))
    small = luma.astype(np.float32)
    if factor > 1:
        h, w = (luma.shape[1] // factor) * factor, (luma.shape[2] // factor) * factor
        small = small[:, :h, :w].reshape(len(luma), h // factor, factor, w // factor, factor).mean(axis=(2, 4))
    if min(small.shape[1:]) < MOTION_BLOCK:
        return 0.0
    pairs = np.unique(np.linspace(1, len(small) - 1, min(MOTION_PAIRS, len(small) - 1)).round().astype(int))
    mags = [np.hypot(*block_motion(small[n - 1], small[n]).T).mean() for n in pairs]
    return float(np.mean(mags)) * factor


# --------------------------------------------------------------------------------------------- subjective


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def load_sidecars(folder: Path = SIDECARS) -> dict[str, tuple[str, dict[str, str]]]:
    """Sequence key -> (sidecar file name, its fields), from every sidecar in ``folder``."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for name, fields in data.get("sequences", {}).items():
            unknown = set(fields) - set(SUBJECTIVE)
            if unknown:
                raise ValueError(f"{path.name}: {name}: fields {sorted(unknown)} are not iLog fields {SUBJECTIVE}")
            out[_key(name)] = (path.name, fields)
    return out


def vocabulary(folder: Path = SIDECARS) -> dict[str, list[str]]:
    """The values each cell field may take, as the sidecars declare them (the coverage grid's axes)."""
    vocab: dict[str, list[str]] = {f: [] for f in CELL_FIELDS}
    for path in sorted(folder.glob("*.json")):
        for field_name, values in json.loads(path.read_text(encoding="utf-8")).get("vocabulary", {}).items():
            if field_name in vocab:
                vocab[field_name] += [v for v in values if v not in vocab[field_name]]
    return vocab


def subjective(name: str, sidecars: dict[str, tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The iLog fields of a sequence (matched by name, then by the name without a trailing _suffix)."""
    key = _key(name)
    found = sidecars.get(key) or sidecars.get(_key(re.sub(r"_(pristine|\d+.*)$", "", name)))
    fields = found[1] if found else {}
    return {**{f: fields.get(f, UNKNOWN) for f in SUBJECTIVE}, "subjective_source": found[0] if found else None}


# --------------------------------------------------------------------------------------------- records


def context_record(name: str, video: Any, sidecars: dict | None = None) -> dict[str, Any]:
    """The context record of one sequence (``video``: a codec.video.Video)."""
    fmt = video.format
    luma = video.planes[0]
    return {"sequence": name, "width": fmt.width, "height": fmt.height, "frames": video.num_frames,
            "fps": round(fmt.fps, 4), "bit_depth": fmt.bit_depth, "chroma": fmt.chroma,
            "si": round(spatial_information(luma), 3), "ti": round(temporal_information(luma), 3),
            "motion": round(mean_motion(luma), 3),
            **subjective(name, load_sidecars() if sidecars is None else sidecars)}


def write_context(sequences: dict[str, dict[str, Any]], out: Path) -> dict[str, dict[str, Any]]:
    """A record per sequence ({name: {"path", "frames"}}) written to ``out/context/<name>.json``."""
    from codec.fileio import atomic_write_bytes
    from codec.video import read_video

    sidecars = load_sidecars()
    records = {}
    for name, src in sequences.items():
        rec = context_record(name, read_video(src["path"], frames=src.get("frames")), sidecars)
        (out / "context").mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "context" / f"{name}.json", (json.dumps(rec, indent=2) + "\n").encode())
        records[name] = rec
    return records


# --------------------------------------------------------------------------------------------- joins


def terciles(values: dict[str, float]) -> dict[str, str]:
    """low / mid / high by the terciles of the values given (one sequence: mid)."""
    if len(values) < 2:
        return {k: "mid" for k in values}
    lo, hi = np.quantile(list(values.values()), [1 / 3, 2 / 3])
    return {k: "low" if v < lo else "high" if v > hi else "mid" for k, v in values.items()}


def groups(contexts: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """field -> value -> sequences, for the cell fields and SI/TI terciles."""
    out: dict[str, dict[str, list[str]]] = {}
    for f in CELL_FIELDS:
        for seq, c in contexts.items():
            out.setdefault(f, {}).setdefault(c.get(f, UNKNOWN), []).append(seq)
    for f in ("si", "ti"):
        for seq, level in terciles({s: c[f] for s, c in contexts.items()}).items():
            out.setdefault(f, {}).setdefault(level, []).append(seq)
    return out


def coverage(contexts: dict[str, dict[str, Any]], vocab: dict[str, list[str]]) -> dict[str, Any]:
    """Sequences per cell of the context grid (the cell fields), the empty cells of the declared vocabulary, and the
    Shannon entropy of the sequences over the occupied cells (bits; normalised by log2 of the number of cells)."""
    cells = Counter(tuple(c.get(f, UNKNOWN) for f in CELL_FIELDS) for c in contexts.values())
    axes = [vocab.get(f) or sorted({c.get(f, UNKNOWN) for c in contexts.values()}) for f in CELL_FIELDS]
    grid = list(itertools.product(*axes))
    n = sum(cells.values())
    p = np.array([v / n for v in cells.values()]) if n else np.zeros(0)
    entropy = max(0.0, float(-(p * np.log2(p)).sum())) if n else 0.0
    return {"fields": list(CELL_FIELDS), "cells": [{"cell": list(k), "sequences": v} for k, v in cells.items()],
            "grid_cells": len(grid), "empty_cells": [list(g) for g in grid if g not in cells],
            "entropy_bits": round(entropy, 4),
            "normalised_entropy": round(entropy / math.log2(len(grid)), 4) if len(grid) > 1 else None}


def rate_at_quality(records: Sequence[dict], psnr: float, metric: str = "psnr-yuv") -> float | None:
    """bpp a codec needs for ``psnr`` on one sequence: log-rate interpolated between its two measured points around
    it (None outside its measured range: never extrapolated)."""
    pts = sorted((r[metric], r["bpp"]) for r in records if r.get(metric) is not None and r.get("bpp"))
    for (q0, r0), (q1, r1) in zip(pts, pts[1:]):
        if q0 <= psnr <= q1 and q1 > q0:
            w = (psnr - q0) / (q1 - q0)
            return float(math.exp((1 - w) * math.log(r0) + w * math.log(r1)))
    return None


def spearman(contexts: dict[str, dict], records: dict[str, dict[str, list[dict]]], psnr: float) -> list[dict]:
    """Per codec and objective field, Spearman's rho of the field with the rate needed for ``psnr``."""
    from scipy.stats import spearmanr

    codecs = list(dict.fromkeys(c for cs in records.values() for c in cs))
    out = []
    for codec in codecs:
        rates = {s: rate_at_quality(cs.get(codec, []), psnr) for s, cs in records.items() if s in contexts}
        have = [s for s, r in rates.items() if r is not None]
        for f in ("si", "ti", "motion"):
            row = {"codec": codec, "field": f, "psnr": psnr, "n": len(have), "rho": None, "p": None}
            xs = [contexts[s][f] for s in have]
            if len(have) >= 3 and len(set(xs)) > 1 and len({rates[s] for s in have}) > 1:
                rho, p = spearmanr([contexts[s][f] for s in have], [rates[s] for s in have])
                if math.isfinite(rho):
                    row.update(rho=round(float(rho), 4), p=round(float(p), 4))
            out.append(row)
    return out


def context_tables(rundir: Path, contexts: dict[str, dict], psnr: float | None = None) -> str:
    """The Markdown of the joins: per-context RD and BD-rate tables, coverage, Spearman."""
    from eval.runs import load_run
    from eval.sweep import average_records, bd_rows, curve

    run = load_run(rundir)
    records = {s: cs for s, cs in run.records.items() if s in contexts}
    per_seq = {s: {c: curve(c, recs) for c, recs in cs.items()} for s, cs in records.items()}
    bd = bd_rows(per_seq, run.anchors, metrics=("psnr-yuv",)) if run.anchors else []
    lines = [f"# Context of {rundir.name}", "", f"{len(contexts)} sequence(s). SI/TI: ITU-T P.910 on luma; "
             "subjective fields from eval/data/context (unknown: not in a sidecar).", "",
             "| sequence | size | frames | SI | TI | motion | what | where | scene | who | when |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, c in contexts.items():
        lines.append(f"| {s} | {c['width']}x{c['height']} | {c['frames']} | {c['si']:.1f} | {c['ti']:.1f} | "
                     f"{c['motion']:.2f} | {c['what']} | {c['where']} | {c['scene']} | {c['who']} | {c['when']} |")
    for field_name, values in groups(contexts).items():
        lines += ["", f"## By {field_name}", "", "| value | sequences | codec | points (bpp @ PSNR-YUV) | "
                  f"mean BD-rate vs {run.anchors[0] if run.anchors else 'anchor'} |", "|---|---|---|---|---|"]
        for value, seqs in sorted(values.items()):
            for codec in run.codecs:
                have = {s: records[s][codec] for s in seqs if codec in records.get(s, {})}
                if not have:
                    continue
                avg, _ = average_records(have)
                pts = ", ".join(f"{r['bpp']:.4f} @ {r['psnr-yuv']:.2f}" for r in avg
                                if r.get("bpp") is not None and r.get("psnr-yuv") is not None)
                vals = [r.bd_rate_pchip for r in bd if r.test == codec and r.sequence in seqs
                        and r.anchor == run.anchors[0] and math.isfinite(r.bd_rate_pchip)]
                mean = f"{np.mean(vals):+.1f}% (n={len(vals)})" if vals else "n/a"
                lines.append(f"| {value} | {', '.join(seqs)} | {codec} | {pts or 'n/a'} | {mean} |")
    cov = coverage(contexts, vocabulary())
    lines += ["", "## Coverage", "", f"Cells over {', '.join(cov['fields'])}: {len(cov['cells'])} occupied of "
              f"{cov['grid_cells']}; entropy {cov['entropy_bits']:.3f} bits (normalised "
              f"{cov['normalised_entropy'] if cov['normalised_entropy'] is not None else 'n/a'}).", "",
              "| cell | sequences |", "|---|---|"]
    lines += [f"| {' / '.join(c['cell'])} | {c['sequences']} |" for c in cov["cells"]]
    lines += ["", f"Empty cells: {len(cov['empty_cells'])}" + (": " + "; ".join(" / ".join(c) for c in
                                                                              cov["empty_cells"][:40]) if
                                                               cov["empty_cells"] else "")]
    if psnr is None:
        common = [r["psnr-yuv"] for cs in records.values() for rs in cs.values() for r in rs
                  if r.get("psnr-yuv") is not None]
        psnr = float(np.median(common)) if common else 35.0
    lines += ["", f"## Spearman: SI, TI, motion vs the rate for PSNR-YUV {psnr:.2f} dB", "",
              "| codec | field | n | rho | p |", "|---|---|---|---|---|"]
    for row in spearman(contexts, records, psnr):
        rho = "n/a (needs 3 sequences in range)" if row["rho"] is None else f"{row['rho']:+.3f}"
        lines.append(f"| {row['codec']} | {row['field']} | {row['n']} | {rho} | "
                     f"{'' if row['p'] is None else row['p']} |")
    return "\n".join(lines) + "\n"


def manifest_coverage(name: str) -> dict[str, Any]:
    """The coverage of a test set's manifest (``uvg``, ``mcl-jcv``) from the sidecars alone: no files needed."""
    from eval.datasets import get_manifest

    sidecars = load_sidecars()
    contexts = {spec.name: subjective(spec.name, sidecars) for spec in get_manifest(name)}
    return {"manifest": name, "sequences": len(contexts),
            "unknown": {f: sum(c[f] == UNKNOWN for c in contexts.values()) for f in CELL_FIELDS},
            **coverage(contexts, vocabulary())}


def format_coverage(cov: dict[str, Any]) -> str:
    lines = [f"{cov.get('manifest', 'sequences')}: {cov.get('sequences', '?')} sequences; cells over "
             f"{' / '.join(cov['fields'])}: {len(cov['cells'])} occupied of {cov['grid_cells']}, entropy "
             f"{cov['entropy_bits']:.3f} bits (normalised {cov['normalised_entropy']})"]
    if "unknown" in cov:
        lines.append("unknown: " + ", ".join(f"{f} {n}" for f, n in cov["unknown"].items()))
    lines += [f"  {' / '.join(c['cell'])}: {c['sequences']}" for c in cov["cells"]]
    lines.append(f"empty cells: {len(cov['empty_cells'])}")
    return "\n".join(lines)


def context_sweep(rundir: str | Path, psnr: float | None = None) -> Path:
    """Context records of every sequence of a sweep, and ``RUNDIR/context.md``; returns its path."""
    from codec.fileio import atomic_write_bytes

    rundir = Path(rundir)
    path = rundir / "sequences.json"
    if not path.is_file():
        raise FileNotFoundError(2, "no sequences.json (rerun the sweep to write it)", str(path))
    sequences = json.loads(path.read_text(encoding="utf-8"))
    missing = [s for s, src in sequences.items() if not Path(src["path"]).is_file()]
    if missing:
        raise FileNotFoundError(2, f"the sources of {', '.join(missing)} have moved", str(path))
    contexts = write_context(sequences, rundir)
    out = rundir / "context.md"
    atomic_write_bytes(out, context_tables(rundir, contexts, psnr).encode())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.context", description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", metavar="CLIP", help="videos to describe (Y4M or what PyAV reads)")
    parser.add_argument("--out", default=".", help="where context/<name>.json go (default .)")
    parser.add_argument("--frames", type=int, help="first N frames of each clip")
    parser.add_argument("--sweep", metavar="RUNDIR", help="describe a sweep's sequences and join its results")
    parser.add_argument("--psnr", type=float, help="the PSNR-YUV of the Spearman rates (default the median)")
    parser.add_argument("--manifest", help="the coverage of a test set's manifest (uvg, mcl-jcv) from the sidecars")
    args = parser.parse_args(argv)
    try:
        if args.manifest:
            print(format_coverage(manifest_coverage(args.manifest)))
            return 0
        if args.sweep:
            print(f"{context_sweep(args.sweep, args.psnr)}")
            return 0
        if not args.clips:
            parser.error("give CLIP..., --sweep RUNDIR or --manifest NAME")
        seqs = {Path(c).stem: {"path": c, "frames": args.frames} for c in args.clips}
        for name, rec in write_context(seqs, Path(args.out)).items():
            print(f"{name}: SI {rec['si']:.1f}, TI {rec['ti']:.1f}, motion {rec['motion']:.2f} px/frame, "
                  f"{rec['what']}/{rec['where']}/{rec['who']}/{rec['when']}")
        return 0
    except (ValueError, LookupError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2


__all__ = ["context_record", "context_sweep", "coverage", "mean_motion", "rate_at_quality", "spatial_information",
           "spearman", "temporal_information", "write_context"]

if __name__ == "__main__":
    sys.exit(main())
