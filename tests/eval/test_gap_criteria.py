"""#19's done-when read from the validation bench's rows."""
from __future__ import annotations

import math

from eval.gap_criteria import GapCriteria, judge


def row(clip: str, split: str, bd: float | None, dy: float | None) -> dict:
    return {"clip": clip, "split": split, "bd_rate": bd, "d_psnr_y": dy}


def verdicts(rows, criteria=GapCriteria()):
    return [(v.met, v.shown) for v in judge(rows, criteria)]


def test_closed_gap_meets_every_criterion():
    rows = [row("carphone", "tune", -3.0, -0.5), row("bikes-a", "tune", 40.0, -4.0),
            row("bikes-b", "check", 10.0, -1.5), row("bunny", "check", 25.0, -2.0)]
    out = judge(rows)
    assert [v.met for v in out] == [True, True, True]
    assert out[0].shown == "+17.5% over 2 clips"
    assert out[2].shown == "bikes-b -1.5 dB, bunny -2.0 dB"
    assert out[0].line().startswith("met: check clips' mean BD-rate <= +20%")


def test_each_threshold_fails_on_its_own():
    rows = [row("carphone", "tune", 0.0, -0.5), row("bikes-b", "check", 21.0, -2.1)]
    out = judge(rows)
    assert [v.met for v in out] == [False, False, False] and out[0].shown == "+21.0% over 1 clip"
    loose = GapCriteria(check_mean_bd_rate=25.0, reference_bd_rate=1.0, check_psnr_y_gap=-3.0)
    assert [v.met for v in judge(rows, loose)] == [True, True, True]


def test_a_check_clip_without_bd_rate_leaves_the_mean_unmet():
    rows = [row("carphone", "tune", -10.0, 0.1), row("bikes-b", "check", 5.0, -1.0),
            row("surveillance", "check", math.nan, -1.0)]
    mean, ref, gaps = judge(rows)
    assert not mean.met and "+5.0% over 1 of 2" in mean.shown and "surveillance" in mean.shown
    assert ref.met
    assert gaps.met  # BD-PSNR over rate exists without a PSNR overlap


def test_missing_figures_are_not_met():
    assert verdicts([row("bikes-a", "tune", 10.0, -1.0)]) == [
        (False, "no check clip in the table"), (False, "not in the table"), (False, "no check clip in the table")]
    rows = [row("carphone", "tune", None, None), row("bunny", "check", None, None)]
    assert verdicts(rows) == [(False, "none; no BD-rate for bunny"), (False, "no BD-rate"), (False, "bunny no figure")]
