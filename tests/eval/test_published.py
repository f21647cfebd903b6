"""Tests for eval.published: the transcribed HiNeRV figures match the shared CSVs."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from eval.published import PSNR_TYPE, available, average_curve, load_published, published_info

ANCHORS = Path(__file__).resolve().parents[3] / "shared" / "anchors"
FILES = {"hinerv-uvg": "hinerv_uvg_orig_perseq.csv", "hinerv-uvg-new": "hinerv_uvg_new_perseq.csv",
         "hinerv-mcljcv": "hinerv_mcljcv_orig_perseq.csv"}


def test_available_and_unknown():
    assert set(available()) == set(FILES)
    with pytest.raises(LookupError, match="hinerv-uvg"):
        load_published("nerv")


@pytest.mark.parametrize("name,count", [("hinerv-uvg", 7), ("hinerv-uvg-new", 7), ("hinerv-mcljcv", 30)])
def test_shape_labels_and_published_average(name, count):
    data = load_published(name)
    assert len(data) == count
    for d in data.values():
        assert set(d) == {"bpp", "psnr_rgb", "ms_ssim"} and all(len(v) == 5 for v in d.values())
        assert d["bpp"] == sorted(d["bpp"])
    info = published_info(name)
    assert info["psnr_type"] == PSNR_TYPE == "psnr-rgb" and "RGB" in info["psnr_note"]
    bpp, psnr = average_curve(data)
    assert bpp == pytest.approx(info["published_average"]["bpp"], abs=1e-12)
    assert psnr == pytest.approx(info["published_average"]["psnr_rgb"], abs=1e-9)


def test_uvg_average_matches_design_numbers():
    bpp, psnr = average_curve(load_published("hinerv-uvg-new"))
    # docs/design.md §3: 0.0150→34.80, 0.0299→36.24, 0.0583→37.51, 0.1159→38.72, 0.2271→39.81 dB
    assert bpp == pytest.approx([0.0150, 0.0299, 0.0583, 0.1159, 0.2271], abs=6e-5)
    assert psnr == pytest.approx([34.80, 36.24, 37.51, 38.72, 39.81], abs=6e-3)


@pytest.mark.skipif(not ANCHORS.is_dir(), reason="shared/anchors not present")
@pytest.mark.parametrize("name", sorted(FILES))
def test_matches_shared_csv(name):
    data = load_published(name)
    with open(ANCHORS / FILES[name]) as f:
        rows = [r for r in csv.DictReader(f) if r["sequence"] != "Average"]
    assert len(rows) == 5 * len(data)
    for r in rows:
        i = int(r["rate_point"]) - 1
        d = data[r["sequence"]]
        assert (d["bpp"][i], d["psnr_rgb"][i], d["ms_ssim"][i]) == (
            float(r["bpp"]), float(r["psnr_rgb"]), float(r["ms_ssim"]))


def test_load_returns_a_copy():
    a = load_published("hinerv-uvg")
    a["Beauty"]["bpp"][0] = -1
    assert load_published("hinerv-uvg")["Beauty"]["bpp"][0] > 0
