"""Tests for eval.bdrate: known BD-rates, cleaning of points, NaN cases, tables."""
from __future__ import annotations

import math

import numpy as np
import pytest

from eval.bdrate import (AVG_LABEL, MEAN_LABEL, average_curve, bd_psnr, bd_rate, bd_table, clean_curve, msssim_db,
                         to_csv, to_markdown)
from eval.published import average_curve as published_average, load_published

RATES = [0.015, 0.03, 0.058, 0.116, 0.227]
PSNR = [34.8, 36.24, 37.51, 38.72, 39.81]


def test_curve_against_itself_is_zero():
    r = bd_rate(RATES, PSNR, RATES, PSNR)
    assert r.bd_rate_pchip == pytest.approx(0.0, abs=1e-9)
    assert r.bd_rate_akima == pytest.approx(0.0, abs=1e-9)
    assert r.psnr_overlap == pytest.approx(1.0) and r.note == ""
    assert bd_psnr(RATES, PSNR, RATES, PSNR).bd_psnr_pchip == pytest.approx(0.0, abs=1e-9)


def test_rates_scaled_by_09_give_minus_10_percent():
    r = bd_rate(RATES, PSNR, [0.9 * x for x in RATES], PSNR)
    assert r.bd_rate_pchip == pytest.approx(-10.0, rel=1e-6)
    assert r.bd_rate_akima == pytest.approx(-10.0, rel=1e-6)


def test_published_average_shifted_up_is_better():
    rates, psnr = published_average(load_published("hinerv-uvg"))
    up = [p + 0.5 for p in psnr]
    r = bd_rate(rates, psnr, rates, up)
    assert r.bd_rate_pchip < -5 and r.bd_rate_akima < -5
    assert 0 < r.psnr_overlap < 1
    assert bd_psnr(rates, psnr, rates, up).bd_psnr_pchip == pytest.approx(0.5, abs=1e-9)


def test_non_overlapping_curves_are_nan_with_note():
    r = bd_rate(RATES, PSNR, RATES, [p + 10 for p in PSNR])
    assert math.isnan(r.bd_rate_pchip) and math.isnan(r.bd_rate_akima)
    assert r.psnr_overlap == 0.0 and "overlap" in r.note


def test_too_few_points_is_nan_with_note():
    r = bd_rate(RATES, PSNR, RATES[:3], PSNR[:3])
    assert math.isnan(r.bd_rate_pchip) and ">= 4 points" in r.note and "test has 3" in r.note


def test_unsorted_points_match_sorted():
    perm = [3, 0, 4, 1, 2]
    test_r = [0.8 * x for x in RATES]
    test_d = [p - 0.1 for p in PSNR]
    a = bd_rate(RATES, PSNR, test_r, test_d)
    b = bd_rate([RATES[i] for i in perm], [PSNR[i] for i in perm], [test_r[i] for i in perm[::-1]],
                [test_d[i] for i in perm[::-1]])
    assert a.bd_rate_pchip == pytest.approx(b.bd_rate_pchip, abs=1e-12)
    assert a.bd_rate_akima == pytest.approx(b.bd_rate_akima, abs=1e-12)


def test_unequal_point_counts():
    dense_r = np.geomspace(0.012, 0.3, 9)
    dense_d = np.interp(np.log(dense_r), np.log(RATES), PSNR)
    r = bd_rate(RATES, PSNR, dense_r * 0.9, dense_d)
    assert math.isfinite(r.bd_rate_pchip) and -15 < r.bd_rate_pchip < -5


def test_duplicates_and_dominated_points_are_dropped():
    r, d, notes = clean_curve(RATES + [RATES[2], 0.1], PSNR + [PSNR[2], 30.0])
    np.testing.assert_array_equal(r, RATES)
    np.testing.assert_array_equal(d, PSNR)
    assert notes and "dropped" in notes[0]
    res = bd_rate(RATES + [RATES[2]], PSNR + [PSNR[2]], RATES, PSNR)
    assert res.bd_rate_pchip == pytest.approx(0.0, abs=1e-9) and "dropped" in res.note


def test_msssim_db():
    np.testing.assert_allclose(msssim_db([0.9, 0.99]), [10.0, 20.0])


def _curves():
    seqs = load_published("hinerv-uvg")
    new = load_published("hinerv-uvg-new")
    return {
        "HiNeRV": {s: (d["bpp"], d["psnr_rgb"]) for s, d in seqs.items()},
        "HiNeRV-new": {s: (d["bpp"], d["psnr_rgb"]) for s, d in new.items()},
        "scaled": {s: ([0.9 * x for x in d["bpp"]], d["psnr_rgb"]) for s, d in seqs.items()},
    }


def test_bd_table_rows_and_aggregates(tmp_path):
    rows = bd_table(_curves(), "HiNeRV", "psnr-rgb")
    assert {r.test for r in rows} == {"HiNeRV-new", "scaled"}
    scaled = {r.sequence: r for r in rows if r.test == "scaled"}
    assert len(scaled) == 7 + 2
    for r in scaled.values():
        assert r.bd_rate_pchip == pytest.approx(-10.0, rel=1e-6)
    new = {r.sequence: r for r in rows if r.test == "HiNeRV-new"}
    per = [r.bd_rate_pchip for s, r in new.items() if s not in (MEAN_LABEL, AVG_LABEL)]
    assert new[MEAN_LABEL].bd_rate_pchip == pytest.approx(np.mean(per))
    # the averaged curve reproduces the shared table's "HiNeRV (repo results/new)" vs HiNeRV: -7.5% (pchip)
    assert new[AVG_LABEL].bd_rate_pchip == pytest.approx(-7.5, abs=0.05)
    assert new[AVG_LABEL].psnr_overlap == pytest.approx(0.92, abs=0.005)
    md = to_markdown(rows)
    assert "| scaled | averaged curve | -10.0% |" in md and "anchor = HiNeRV, metric = psnr-rgb" in md
    path = tmp_path / "bd.csv"
    to_csv(rows, path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("metric,anchor,test,sequence") and len(lines) == len(rows) + 1


def test_bd_table_missing_sequences_and_unequal_counts():
    curves = _curves()
    del curves["scaled"]["Beauty"]
    curves["scaled"]["Jockey"] = (curves["scaled"]["Jockey"][0][:4], curves["scaled"]["Jockey"][1][:4])
    rows = {r.sequence: r for r in bd_table(curves, "HiNeRV", "psnr-rgb") if r.test == "scaled"}
    assert "Beauty" not in rows and "Beauty" in rows[MEAN_LABEL].note
    assert math.isfinite(rows["Jockey"].bd_rate_pchip)
    assert math.isnan(rows[AVG_LABEL].bd_rate_pchip) and "different point counts" in rows[AVG_LABEL].note
    with pytest.raises(LookupError):
        bd_table(curves, "nope", "psnr-rgb")


def test_average_curve_sorts_each_sequence():
    r, d = average_curve([([2, 1], [20, 10]), ([1, 3], [12, 30])])
    np.testing.assert_allclose(r, [1, 2.5])
    np.testing.assert_allclose(d, [11, 25])


def test_records_bd_rate_reads_sweep_records_and_summarises():
    from eval.bdrate import records_bd_rate

    anchor = [{"bpp": b, "psnr-yuv": p} for b, p in ((0.1, 30.0), (0.2, 33.0), (0.4, 36.0))]
    test = [{"bpp": r["bpp"] / 2, "psnr-yuv": r["psnr-yuv"]} for r in anchor]  # same quality at half the rate
    res = records_bd_rate(anchor, test, min_points=3)
    assert res.bd_rate_pchip == pytest.approx(-50.0, abs=0.5)
    assert res.summary().startswith("pchip -50.0%, Akima -50.0%, overlap 1.00")
