"""tools/bench_rd_x265.py keeps each clip's points in its folder: a folder holding another clip is refused."""
from __future__ import annotations

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
