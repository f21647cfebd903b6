"""Bjøntegaard-delta rate and PSNR with the ``bjontegaard`` package (docs/design.md §6).

BD-rate is the average log-rate difference between two rate-distortion curves over the distortion interval both
cover, as a percentage: negative means the test codec needs less rate than the anchor for the same quality. We
interpolate with ``method="pchip"`` (monotone piecewise cubic, the default reported everywhere) and report Akima
as a check; a large pchip/Akima gap means the curves are too sparse or too wiggly to trust.

The distortion metric must be higher-is-better (PSNR in dB, MS-SSIM or MS-SSIM in dB), and rates positive (bpp,
kbit/s, bytes: any unit, BD-rate is a ratio). Before the package sees a curve we clean it, because ``bjontegaard``
does none of this:

* points are sorted by rate (the package only flips a curve given in fully reversed order);
* non-finite values and non-positive rates are dropped (log-rate is undefined);
* points that are not on the rate-distortion front are dropped: with the distortion metric as the
  interpolation abscissa it must rise strictly with rate, so a point whose quality does not exceed that of a
  cheaper point (duplicates, equal-rate points other than the best, non-monotone outliers) is removed.

Every drop is recorded in the result's ``note``. The answer is NaN, with the reason in ``note``, when

* a cleaned curve has fewer than ``min_points`` (4) points: the Bjøntegaard measure was defined on four points
  fitted by a cubic; with three or fewer points the piecewise interpolants degenerate (two points give a straight
  line) and the number is not comparable to published BD tables;
* the curves' distortion ranges do not overlap: BD-rate integrates over the common interval, which is empty.

``psnr_overlap`` is the length of the common distortion interval divided by the length of the union of the two
ranges (the package's own overlap measure); below 0.75 the note warns that the result extrapolates little but
averages over a narrow band. It applies to whatever distortion metric is passed (PSNR, or MS-SSIM in dB via
:func:`msssim_db`).
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

import bjontegaard as bd
import numpy as np

from codec.fileio import atomic_write_bytes

MIN_POINTS = 4
LOW_OVERLAP = 0.75
MEAN_LABEL = "mean of per-sequence"
AVG_LABEL = "averaged curve"


@dataclass(frozen=True)
class BDResult:
    """BD-rate in percent (negative = test saves rate); NaN with the reason in ``note`` when undefined."""

    bd_rate_pchip: float
    bd_rate_akima: float
    psnr_overlap: float  # fraction of the union distortion range covered by both curves, 0..1
    note: str = ""

    def summary(self) -> str:
        """``pchip -35.5%, Akima -33.3%, overlap 0.77`` (and the note, if any)."""
        text = f"pchip {self.bd_rate_pchip:+.1f}%, Akima {self.bd_rate_akima:+.1f}%, overlap {self.psnr_overlap:.2f}"
        return f"{text} {self.note}".rstrip()


@dataclass(frozen=True)
class BDPsnrResult:
    """BD-PSNR in dB (positive = test has better quality at the same rate); NaN with ``note`` when undefined."""

    bd_psnr_pchip: float
    bd_psnr_akima: float
    rate_overlap: float  # fraction of the union log-rate range covered by both curves, 0..1
    note: str = ""


def msssim_db(ms_ssim: Sequence[float] | np.ndarray) -> np.ndarray:
    """MS-SSIM in dB, ``-10·log10(1 - ms_ssim)``: the usual scale for MS-SSIM BD-rates."""
    x = np.asarray(ms_ssim, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(1.0 - x)


def clean_curve(rates: Sequence[float], dists: Sequence[float],
                label: str = "curve") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sort by rate and keep the rate-distortion front (distortion strictly rising with rate).

    Returns (rates, dists, notes) where notes describe every dropped point.
    """
    r = np.asarray(rates, dtype=np.float64).reshape(-1)
    d = np.asarray(dists, dtype=np.float64).reshape(-1)
    if r.shape != d.shape:
        raise ValueError(f"{label}: {r.size} rates vs {d.size} distortion values")
    notes: list[str] = []
    ok = np.isfinite(r) & np.isfinite(d) & (r > 0)
    if not ok.all():
        notes.append(f"{label}: dropped {int((~ok).sum())} non-finite or non-positive-rate point(s)")
        r, d = r[ok], d[ok]
    order = np.lexsort((-d, r))  # by rate, best quality first among equal rates
    r, d = r[order], d[order]
    keep = np.zeros(r.size, dtype=bool)
    best = -math.inf
    for i in range(r.size):
        if d[i] > best:
            keep[i] = True
            best = d[i]
    if not keep.all():
        dropped = ", ".join(f"({r[i]:.6g}, {d[i]:.6g})" for i in np.flatnonzero(~keep))
        notes.append(f"{label}: dropped point(s) off the rate-distortion front (duplicate or no quality gain "
                     f"over a cheaper point): {dropped}")
    return r[keep], d[keep], notes


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    frac = max(hi - lo, 0.0) / union if union > 0 else 0.0
    return float(frac), float(lo), float(hi)


def _prepare(rate_anchor, dist_anchor, rate_test, dist_test, min_points):
    ra, da, notes = clean_curve(rate_anchor, dist_anchor, "anchor")
    rt, dt, nt = clean_curve(rate_test, dist_test, "test")
    notes += nt
    short = [f"{name} has {n}" for name, n in (("anchor", ra.size), ("test", rt.size)) if n < min_points]
    if short:
        notes.append(f"needs >= {min_points} points per curve but {' and '.join(short)} (BD was defined for 4 "
                     f"points fitted by a cubic; fewer points make the interpolant degenerate)")
        return None, notes
    return (ra, da, rt, dt), notes


def _call(fn, ra, da, rt, dt, method: str) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(ra, da, rt, dt, method=method, require_matching_points=False, min_overlap=0))


def bd_rate(rate_anchor: Sequence[float], dist_anchor: Sequence[float], rate_test: Sequence[float],
            dist_test: Sequence[float], *, min_points: int = MIN_POINTS) -> BDResult:
    """BD-rate of the test curve against the anchor (percent), pchip with Akima as a check."""
    prepared, notes = _prepare(rate_anchor, dist_anchor, rate_test, dist_test, min_points)
    if prepared is None:
        return BDResult(math.nan, math.nan, math.nan, "; ".join(notes))
    ra, da, rt, dt = prepared
    frac, lo, hi = _overlap(da, dt)
    if frac <= 0:
        notes.append(f"distortion ranges do not overlap (anchor {da.min():.4g}..{da.max():.4g}, test "
                     f"{dt.min():.4g}..{dt.max():.4g}): BD-rate integrates over the common range, which is empty")
        return BDResult(math.nan, math.nan, frac, "; ".join(notes))
    if frac < LOW_OVERLAP:
        notes.append(f"low overlap {frac:.2f}: averaged over {lo:.4g}..{hi:.4g} only")
    pchip = _call(bd.bd_rate, ra, da, rt, dt, "pchip")
    akima = _call(bd.bd_rate, ra, da, rt, dt, "akima")
    return BDResult(pchip, akima, frac, "; ".join(notes))


def records_bd_rate(anchor: Sequence[Mapping[str, Any]], test: Sequence[Mapping[str, Any]],
                    metric: str = "psnr-yuv", *, min_points: int = MIN_POINTS) -> BDResult:
    """``bd_rate`` of two lists of point records (dicts with ``bpp`` and ``metric``, as sweeps write them)."""
    return bd_rate([r["bpp"] for r in anchor], [r[metric] for r in anchor],
                   [r["bpp"] for r in test], [r[metric] for r in test], min_points=min_points)


def bd_psnr(rate_anchor: Sequence[float], dist_anchor: Sequence[float], rate_test: Sequence[float],
            dist_test: Sequence[float], *, min_points: int = MIN_POINTS) -> BDPsnrResult:
    """BD-PSNR (average distortion gain in dB over the common log-rate range), pchip with Akima as a check."""
    prepared, notes = _prepare(rate_anchor, dist_anchor, rate_test, dist_test, min_points)
    if prepared is None:
        return BDPsnrResult(math.nan, math.nan, math.nan, "; ".join(notes))
    ra, da, rt, dt = prepared
    frac, _, _ = _overlap(np.log10(ra), np.log10(rt))
    if frac <= 0:
        notes.append(f"rate ranges do not overlap (anchor {ra.min():.4g}..{ra.max():.4g}, test "
                     f"{rt.min():.4g}..{rt.max():.4g})")
        return BDPsnrResult(math.nan, math.nan, frac, "; ".join(notes))
    if frac < LOW_OVERLAP:
        notes.append(f"low rate overlap {frac:.2f}")
    pchip = _call(bd.bd_psnr, ra, da, rt, dt, "pchip")
    akima = _call(bd.bd_psnr, ra, da, rt, dt, "akima")
    return BDPsnrResult(pchip, akima, frac, "; ".join(notes))


@dataclass(frozen=True)
class BDRow:
    """One line of a BD-rate table; ``sequence`` is a sequence name, MEAN_LABEL or AVG_LABEL."""

    metric: str
    anchor: str
    test: str
    sequence: str
    bd_rate_pchip: float
    bd_rate_akima: float
    psnr_overlap: float
    note: str = ""


Curve = tuple[Sequence[float], Sequence[float]]


def average_curve(per_seq: Iterable[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """Mean rate and mean distortion per rate point over sequences; each sequence is sorted by rate first.

    Raises ValueError if the sequences do not all have the same number of points.
    """
    rs, ds = [], []
    for rates, dists in per_seq:
        r = np.asarray(rates, dtype=np.float64)
        d = np.asarray(dists, dtype=np.float64)
        if r.shape != d.shape:
            raise ValueError(f"{r.size} rates vs {d.size} distortion values")
        order = np.argsort(r, kind="stable")
        rs.append(r[order])
        ds.append(d[order])
    if not rs:
        raise ValueError("no sequences to average")
    counts = {r.size for r in rs}
    if len(counts) != 1:
        raise ValueError(f"sequences have different point counts {sorted(counts)}; cannot average per rate point")
    return np.mean(rs, axis=0), np.mean(ds, axis=0)


def bd_table(curves: dict[str, dict[str, Curve]], anchor: str, metric_name: str, *,
             min_points: int = MIN_POINTS) -> list[BDRow]:
    """BD-rates of every codec against ``anchor``: per sequence, their mean, and the averaged curve's.

    Args:
        curves: codec -> sequence -> (rates, distortions). Only sequences present for both the anchor and the
            test codec are used (others are listed in the notes).
        anchor: the anchor codec's key in ``curves``.
        metric_name: label of the distortion metric (e.g. "psnr-rgb"); never mix PSNR kinds in one table.

    The "mean of per-sequence" row averages the finite per-sequence values (the note says how many); the
    "averaged curve" row is the BD-rate between the anchor's and the test's curves averaged per rate point
    over the common sequences (:func:`average_curve`).
    """
    if anchor not in curves:
        raise LookupError(f"anchor {anchor!r} not in curves; known: {', '.join(curves)}")
    rows: list[BDRow] = []
    anchor_seqs = curves[anchor]
    for test, seqs in curves.items():
        if test == anchor:
            continue
        common = [s for s in anchor_seqs if s in seqs]
        missing = sorted(set(anchor_seqs) ^ set(seqs))
        miss_note = f"sequences not in both: {', '.join(missing)}" if missing else ""
        per: list[BDResult] = []
        for s in common:
            ra, da = anchor_seqs[s]
            rt, dt = seqs[s]
            res = bd_rate(ra, da, rt, dt, min_points=min_points)
            per.append(res)
            rows.append(BDRow(metric_name, anchor, test, s, res.bd_rate_pchip, res.bd_rate_akima,
                              res.psnr_overlap, res.note))
        rows.append(_mean_row(metric_name, anchor, test, common, per, miss_note))
        rows.append(_avg_row(metric_name, anchor, test, common, anchor_seqs, seqs, miss_note, min_points))
    return rows


def _mean_row(metric, anchor, test, common, per, miss_note) -> BDRow:
    ok = [r for r in per if math.isfinite(r.bd_rate_pchip)]
    notes = [miss_note] if miss_note else []
    if len(ok) < len(per):
        bad = [s for s, r in zip(common, per) if not math.isfinite(r.bd_rate_pchip)]
        notes.append(f"mean over {len(ok)} of {len(per)} sequences (undefined: {', '.join(bad)})")
    if not ok:
        return BDRow(metric, anchor, test, MEAN_LABEL, math.nan, math.nan, math.nan, "; ".join(notes))
    akima = [r.bd_rate_akima for r in ok if math.isfinite(r.bd_rate_akima)]
    return BDRow(metric, anchor, test, MEAN_LABEL, float(np.mean([r.bd_rate_pchip for r in ok])),
                 float(np.mean(akima)) if akima else math.nan,
                 float(np.mean([r.psnr_overlap for r in ok])), "; ".join(notes))


def _avg_row(metric, anchor, test, common, anchor_seqs, seqs, miss_note, min_points) -> BDRow:
    notes = [miss_note] if miss_note else []
    if not common:
        notes.append("no common sequences")
        return BDRow(metric, anchor, test, AVG_LABEL, math.nan, math.nan, math.nan, "; ".join(notes))
    try:
        ra, da = average_curve(anchor_seqs[s] for s in common)
        rt, dt = average_curve(seqs[s] for s in common)
    except ValueError as e:
        notes.append(f"cannot average: {e}")
        return BDRow(metric, anchor, test, AVG_LABEL, math.nan, math.nan, math.nan, "; ".join(notes))
    res = bd_rate(ra, da, rt, dt, min_points=min_points)
    if res.note:
        notes.append(res.note)
    return BDRow(metric, anchor, test, AVG_LABEL, res.bd_rate_pchip, res.bd_rate_akima, res.psnr_overlap,
                 "; ".join(notes))


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.1f}%"


def to_markdown(rows: Sequence[BDRow]) -> str:
    """Markdown table(s), one per (metric, anchor), in the style of ``anchors/bd_common_anchor.md``."""
    out: list[str] = []
    groups: dict[tuple[str, str], list[BDRow]] = {}
    for r in rows:
        groups.setdefault((r.metric, r.anchor), []).append(r)
    for (metric, anchor), rs in groups.items():
        out.append(f"### anchor = {anchor}, metric = {metric}")
        out.append("| test | sequence | BD-rate pchip | BD-rate akima | overlap | note |")
        out.append("|---|---|---|---|---|---|")
        for r in rs:
            ov = "n/a" if not math.isfinite(r.psnr_overlap) else f"{r.psnr_overlap:.2f}"
            note = r.note.replace("|", "\\|")
            out.append(f"| {r.test} | {r.sequence} | {_pct(r.bd_rate_pchip)} | {_pct(r.bd_rate_akima)} | {ov} | "
                       f"{note} |")
        out.append("")
    return "\n".join(out)


def to_csv(rows: Sequence[BDRow], path) -> None:
    """Write the rows as CSV (one column per :class:`BDRow` field; NaN written as 'nan'), atomically."""
    buf = io.StringIO()
    names = [f.name for f in fields(BDRow)]
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(asdict(r))
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


__all__ = ["AVG_LABEL", "BDPsnrResult", "BDResult", "BDRow", "MEAN_LABEL", "MIN_POINTS", "average_curve", "bd_psnr",
           "bd_rate", "bd_table", "clean_curve", "msssim_db", "to_csv", "to_markdown"]
