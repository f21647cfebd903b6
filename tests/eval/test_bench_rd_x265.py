"""tools/bench_rd_x265.py keeps each clip's points in its folder: a folder holding another clip is refused, and the
x265 points kept are extended, never reused for QPs they lack."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from eval.datasets.validation import rgb_to_video


@pytest.fixture(scope="module")
def bench(tool_script):
    return tool_script("bench_rd_x265")


def clip(frames: int, seed: int = 0):
    return rgb_to_video(np.random.default_rng(seed).integers(0, 256, (frames, 16, 24, 3), dtype=np.uint8))


def test_the_clip_is_written_once_and_kept(bench, tmp_path):
    path = bench.kept_clip(tmp_path, clip(3))
    assert path == tmp_path / "clip.y4m" and path.exists()
    stamp = path.stat().st_mtime_ns
    assert bench.kept_clip(tmp_path, clip(3)) == path and path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("other", [clip(2), clip(3, seed=1)], ids=["frames", "content"])
def test_a_folder_holding_another_clip_is_refused(bench, tmp_path, other):
    bench.kept_clip(tmp_path, clip(3))
    with pytest.raises(SystemExit, match="holds another clip"):
        bench.kept_clip(tmp_path, other)


def test_the_kept_anchors_serve_the_qps_asked_and_only_the_missing_ones_are_encoded(bench, tmp_path, monkeypatch):
    encoded = []

    def ladder(video, codec, qps, msssim):
        encoded.append(list(qps))
        return [(SimpleNamespace(qp=q, bpp=1.0 / q, bytes=1000 - q),
                 SimpleNamespace(psnr_y=q + 0.1, psnr_u=q + 0.2, psnr_v=q + 0.3, psnr_yuv=q + 0.4)) for q in qps]

    monkeypatch.setattr(bench, "run_anchor_ladder", ladder)
    video = clip(2)
    assert [p["qp"] for p in bench.anchor_points(video, tmp_path, [32])] == [32]
    points = bench.anchor_points(video, tmp_path, [42, 27, 32])  # 32 is kept: 27 and 42 are encoded
    assert encoded == [[32], [42, 27]]
    assert [p["qp"] for p in points] == [42, 27, 32] and points[0]["psnr_yuv"] == pytest.approx(42.4)
    assert bench.anchor_points(video, tmp_path, [27, 32, 42]) == sorted(points, key=lambda p: p["qp"])
    assert encoded == [[32], [42, 27]]  # all kept now: nothing encoded again
