"""Context records: SI/TI (ITU-T P.910) and motion from the pixels, the iLog fields from the sidecars, coverage,
the rate at a fixed quality and its Spearman correlation."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from eval import context


def test_si_and_ti_on_synthetic_clips_with_known_values() -> None:
    flat = np.full((3, 20, 24), 77, dtype=np.uint8)
    assert context.spatial_information(flat) == 0 and context.temporal_information(flat) == 0
    checker = (np.indices((20, 24)).sum(0) % 2 * 255).astype(np.uint8)
    clip = np.stack([np.zeros((20, 24), np.uint8), checker])  # the difference is 0 or 255, half each: std 127.5
    assert context.temporal_information(clip) == pytest.approx(127.5)
    ramp = np.tile(np.arange(24, dtype=np.float64) * 3, (20, 1))  # |∇| = 8 * 3 everywhere inside: std 0
    assert context.spatial_information(ramp[None]) == pytest.approx(0, abs=1e-9)
    assert context.sobel_magnitude(ramp).mean() == pytest.approx(24)


def test_si_equals_a_direct_computation_and_takes_the_max_over_frames() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 30, 40)).astype(np.uint8)
    frames[2] //= 4  # less texture: not the max
    direct = []
    for f in frames.astype(np.float64):
        mag = np.hypot(ndimage.sobel(f, axis=1), ndimage.sobel(f, axis=0))[1:-1, 1:-1]
        direct.append(mag.std())
    assert context.spatial_information(frames) == pytest.approx(max(direct))
    ti = max((frames[n].astype(float) - frames[n - 1]).std() for n in range(1, 4))
    assert context.temporal_information(frames) == pytest.approx(ti)


def test_motion_finds_a_known_shift() -> None:
    rng = np.random.default_rng(1)
    base = ndimage.gaussian_filter(rng.normal(size=(96, 128)), 1.5) * 60 + 128
    frames = np.stack([base, np.roll(base, (2, -3), axis=(0, 1))])
    vectors = context.block_motion(frames[0], frames[1])
    inner = vectors.reshape(6, 8, 2)[1:-1, 1:-1].reshape(-1, 2)  # blocks clear of the wrapped border
    assert (inner == [-2, 3]).all()
    assert context.mean_motion(frames) == pytest.approx(np.hypot(2, 3), rel=0.15)
    assert context.mean_motion(frames[:1]) == 0


def test_subjective_fields_come_from_the_sidecars_and_unknown_stays_unknown(tmp_path) -> None:
    sidecars = context.load_sidecars()
    carphone = context.subjective("carphone_pristine", sidecars)
    assert carphone["where"] == "vehicle" and carphone["who"] == "face" and carphone["subjective_source"]
    assert context.subjective("Beauty", sidecars)["where"] == context.UNKNOWN  # the sidecar does not say
    unknown = context.subjective("videoSRC07", sidecars)
    assert all(unknown[f] == context.UNKNOWN for f in context.SUBJECTIVE) and unknown["subjective_source"] is None
    (tmp_path / "bad.json").write_text(json.dumps({"sequences": {"x": {"mood": "happy"}}}))
    with pytest.raises(ValueError, match="not iLog fields"):
        context.load_sidecars(tmp_path)


def _ctx(what, where, who="none", when="daylight", si=50.0, ti=10.0, motion=1.0):
    return dict(what=what, where=where, who=who, when=when, si=si, ti=ti, motion=motion)


def test_coverage_counts_cells_lists_the_empty_ones_and_measures_entropy() -> None:
    contexts = {"a": _ctx("sport", "outdoor"), "b": _ctx("sport", "outdoor"), "c": _ctx("people", "indoor")}
    vocab = {"what": ["sport", "people"], "where": ["outdoor", "indoor"], "who": ["none"], "when": ["daylight"]}
    cov = context.coverage(contexts, vocab)
    assert sorted(c["sequences"] for c in cov["cells"]) == [1, 2] and cov["grid_cells"] == 4
    assert sorted(map(tuple, cov["empty_cells"])) == [("people", "outdoor", "none", "daylight"),
                                                      ("sport", "indoor", "none", "daylight")]
    p = np.array([2 / 3, 1 / 3])
    assert cov["entropy_bits"] == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-4)
    assert cov["normalised_entropy"] == pytest.approx(cov["entropy_bits"] / 2, abs=1e-4)


def test_rate_at_quality_interpolates_in_range_and_never_extrapolates() -> None:
    recs = [{"bpp": 0.1, "psnr-yuv": 30.0}, {"bpp": 0.4, "psnr-yuv": 34.0}]
    assert context.rate_at_quality(recs, 32.0) == pytest.approx(0.2)  # geometric midpoint
    assert context.rate_at_quality(recs, 35.0) is None and context.rate_at_quality(recs, 29.0) is None


def test_spearman_of_si_with_the_rate_needed() -> None:
    contexts = {s: _ctx("x", "y", si=si) for s, si in (("a", 10.0), ("b", 20.0), ("c", 30.0), ("d", 40.0))}
    records = {s: {"hinerv": [{"bpp": 0.05 * (k + 1), "psnr-yuv": 30.0}, {"bpp": 0.2 * (k + 1), "psnr-yuv": 36.0}]}
               for k, s in enumerate(contexts)}
    rows = {r["field"]: r for r in context.spearman(contexts, records, 33.0)}
    assert rows["si"]["rho"] == pytest.approx(1.0) and rows["si"]["n"] == 4
    assert rows["ti"]["rho"] is None  # constant TI: no correlation to speak of


def test_coverage_of_a_manifest_from_the_sidecars_alone() -> None:
    uvg = context.manifest_coverage("uvg")
    assert uvg["sequences"] == 7 and sum(c["sequences"] for c in uvg["cells"]) == 7
    assert uvg["unknown"]["what"] == 0 and uvg["unknown"]["who"] == 2  # Bosphorus, YachtRide: nobody said
    assert len(uvg["cells"]) + len(uvg["empty_cells"]) >= uvg["grid_cells"] and uvg["entropy_bits"] > 2
    mcl = context.manifest_coverage("mcl-jcv")  # no sidecar fills it: one cell of unknowns, no diversity measured
    assert mcl["cells"] == [{"cell": ["unknown"] * 4, "sequences": 30}] and mcl["entropy_bits"] == 0
    assert "7 sequences" in context.format_coverage(uvg)
