"""Tests for eval.results: CompressAI-layout JSON round trip."""
from __future__ import annotations

import json
import math

import pytest

from eval.metrics import Metrics
from eval.results import STANDARD_KEYS, RDResults, read_results, write_results


def _metrics(p: float) -> Metrics:
    return Metrics(psnr_y=p + 1, psnr_u=p + 2, psnr_v=p + 3, psnr_yuv=p, psnr_rgb=p - 4, ms_ssim=0.95,
                   per_frame_psnr_yuv=[p, p])


def test_round_trip_and_layout(tmp_path):
    rd = RDResults("hinerv-s", "carphone, preset s")
    rd.add_point(bpp=0.06, metrics=_metrics(33.0), encoding_time=12.5, decoding_time=0.4)
    rd.add_point(bpp=0.03, metrics=_metrics(31.0), encoding_time=10.0, decoding_time=0.3, params=15000)
    path = tmp_path / "r.json"
    write_results(path, rd)
    raw = json.loads(path.read_text())
    assert set(raw) == {"name", "description", "results"}
    assert set(STANDARD_KEYS) <= set(raw["results"])
    assert raw["results"]["psnr-yuv"] == [33.0, 31.0] and raw["results"]["params"] == [None, 15000]
    back = read_results(path)
    assert back.name == "hinerv-s" and back.results == rd.results
    s = back.sorted_by_bpp()
    assert s.results["bpp"] == [0.03, 0.06] and s.results["psnr-rgb"] == [27.0, 29.0]


def test_nan_written_as_null_and_extra_keys(tmp_path):
    rd = RDResults("x", extra={"dataset": "UVG"})
    rd.add_point(bpp=0.1, **{"psnr-yuv": math.nan})
    path = tmp_path / "r.json"
    write_results(path, rd)
    raw = json.loads(path.read_text())
    assert raw["results"]["psnr-yuv"] == [None] and raw["dataset"] == "UVG"
    assert read_results(path).extra == {"dataset": "UVG"}


def test_rejects_malformed(tmp_path):
    with pytest.raises(ValueError, match="bpp"):
        RDResults.from_dict({"name": "x", "results": {"psnr-yuv": [1.0]}})
    with pytest.raises(ValueError, match="psnr"):
        RDResults.from_dict({"name": "x", "results": {"bpp": [0.1, 0.2], "psnr-yuv": [1.0]}})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        read_results(bad)


def test_reads_compressai_style_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"name": "bmshj2018-factorized", "description": "Inference (ans)",
                                "results": {"psnr-rgb": [28.1, 30.2], "ms-ssim": [0.93, 0.95],
                                            "bpp": [0.12, 0.2], "encoding_time": [0.01, 0.01],
                                            "decoding_time": [0.02, 0.02]}}))
    rd = read_results(path)
    assert rd.results["psnr-rgb"] == [28.1, 30.2] and len(rd) == 2
