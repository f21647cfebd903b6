"""Issue #19's done-when as numbers: whether the validation bench's table against x265 meets it.

``tools/bench_rd_x265.py`` prints per clip the BD-rate (PSNR-YUV, pchip) and the PSNR-Y gap at equal rate
(BD-PSNR); this module reads those rows and says, criterion by criterion, whether the gap is closed: the check
half's mean BD-rate at most +20%, the reference clip (carphone) below 0%, and PSNR-Y within 2 dB of x265's on
every check clip. A clip without a BD-rate (its curve does not overlap x265's in PSNR, or has under four points on
its rate-distortion front) leaves the mean unshown and the criterion unmet: a mean over the other clips would
flatter the codec.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping

__all__ = ["GapCriteria", "Verdict", "judge"]


@dataclass(frozen=True)
class GapCriteria:
    """The thresholds (#19: check mean <= +20%, carphone < 0%, PSNR-Y gap >= -2 dB on every check clip)."""

    check_mean_bd_rate: float = 20.0  # %: the check clips' mean BD-rate at most this
    reference_clip: str = "carphone"
    reference_bd_rate: float = 0.0  # %: the reference clip's BD-rate below this
    check_psnr_y_gap: float = -2.0  # dB: every check clip's PSNR-Y at equal rate at least this far from x265's


@dataclass(frozen=True)
class Verdict:
    """One criterion: what it asks, what the table shows, whether that meets it."""

    criterion: str
    shown: str
    met: bool

    def line(self) -> str:
        return f"{'met' if self.met else 'not met'}: {self.criterion}: {self.shown}"


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def judge(rows: Iterable[Mapping], criteria: GapCriteria = GapCriteria()) -> list[Verdict]:
    """The verdict on each criterion for the bench's rows (``clip``, ``split``, ``bd_rate`` in %, ``d_psnr_y``
    in dB; NaN or None where the bench could not compute one: no overlap, or under four points on a curve's
    front). A criterion with no clip to judge, or a clip without its figure, is not met."""
    rows = list(rows)
    check = [r for r in rows if r.get("split") == "check"]
    out = []

    rates = [r["bd_rate"] for r in check if _finite(r.get("bd_rate"))]
    missing = [r["clip"] for r in check if not _finite(r.get("bd_rate"))]
    ask = f"check clips' mean BD-rate <= {criteria.check_mean_bd_rate:+g}%"
    if not check:
        out.append(Verdict(ask, "no check clip in the table", False))
    elif missing:
        partial = f"{statistics.fmean(rates):+.1f}% over {len(rates)} of {len(check)}" if rates else "none"
        out.append(Verdict(ask, f"{partial}; no BD-rate for {', '.join(missing)}", False))
    else:
        mean = statistics.fmean(rates)
        clips = f"{len(rates)} clip" + ("s" if len(rates) > 1 else "")
        out.append(Verdict(ask, f"{mean:+.1f}% over {clips}", mean <= criteria.check_mean_bd_rate))

    ref = [r for r in rows if r.get("clip") == criteria.reference_clip]
    ask = f"{criteria.reference_clip} BD-rate < {criteria.reference_bd_rate:g}%"
    if not ref or not _finite(ref[0].get("bd_rate")):
        out.append(Verdict(ask, "not in the table" if not ref else "no BD-rate", False))
    else:
        value = ref[0]["bd_rate"]
        out.append(Verdict(ask, f"{value:+.1f}%", value < criteria.reference_bd_rate))

    ask = f"every check clip's PSNR-Y at equal rate >= {criteria.check_psnr_y_gap:+g} dB from x265's"
    gaps = [(r["clip"], r.get("d_psnr_y")) for r in check]
    if not gaps:
        out.append(Verdict(ask, "no check clip in the table", False))
    else:
        shown = ", ".join(f"{clip} {gap:+.1f} dB" if _finite(gap) else f"{clip} no figure" for clip, gap in gaps)
        met = all(_finite(gap) and gap >= criteria.check_psnr_y_gap for _, gap in gaps)
        out.append(Verdict(ask, shown, met))
    return out
