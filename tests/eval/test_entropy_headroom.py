"""tools/entropy_headroom.py prices a file's symbols under other coders: each price must be what that coder would
spend, so that a 'no headroom' reading can be believed."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from bitstream.entropy import empirical_entropy_bits
from codec.clips import make_clip
from codec.encoder import EncodeOptions, encode


@pytest.fixture(scope="module")
def tool(tool_script):
    return tool_script("entropy_headroom")


def laplace_sample(rng, scale: float, shape) -> np.ndarray:
    return np.round(rng.laplace(0.0, scale, shape)).astype(np.int64)


def test_one_laplace_prices_laplace_symbols_at_their_entropy(tool):
    s = laplace_sample(np.random.default_rng(0), 6.0, 20_000)
    bits = tool.laplace_bits(s)
    floor = empirical_entropy_bits(s)
    assert floor <= bits <= 1.01 * floor  # a fitted model of the right family: within 1% of the histogram's
    assert tool.laplace_bits(s * 4) > bits + 1.9 * s.size  # four times the spread: two bits a symbol more


def test_rows_of_different_spreads_pay_for_a_model_each_and_rows_alike_do_not(tool):
    rng = np.random.default_rng(1)
    mixed = np.concatenate([laplace_sample(rng, 0.3, (8, 200)), laplace_sample(rng, 40.0, (8, 200))])
    alike = laplace_sample(rng, 5.0, (16, 200))
    side = tool.MODEL_SIDE_BITS
    assert tool.row_bits(mixed) < 0.8 * (tool.laplace_bits(mixed) + side)
    assert tool.row_bits(alike) > tool.laplace_bits(alike) + side


def test_dpcm_finds_the_axis_a_grid_is_smooth_along(tool):
    rng = np.random.default_rng(2)
    walk = np.cumsum(laplace_sample(rng, 1.0, (6, 64, 8)), axis=1)  # a random walk along axis 1 (height)
    bits, axis = tool.dpcm_bits(walk)
    assert axis == 1 and bits < 0.7 * tool.laplace_bits(walk)
    noise = laplace_sample(rng, 3.0, (6, 64, 8))
    assert tool.dpcm_bits(noise)[0] > tool.laplace_bits(noise)  # differences of noise spread wider
    assert tool.dpcm_bits(np.zeros((1, 1), np.int64)) == (math.inf, None)  # no axis to predict along


def test_headroom_counts_a_coder_only_where_it_wins_and_leaves_constant_tensors_out(tool):
    rng = np.random.default_rng(3)
    walk = np.cumsum(laplace_sample(rng, 1.0, (64, 16)), axis=0)
    weight = laplace_sample(rng, 4.0, (16, 24))
    named = [("grid.grids.0", walk, 1000.0), ("fc.weight", weight, 2000.0), ("dead.weight", np.zeros((4, 4)), 0.0)]
    t = tool.headroom(named)
    assert t["symbols"] == walk.size + weight.size and t["file"] == 3000.0
    one = tool.laplace_bits(walk) + tool.laplace_bits(weight) + 2 * tool.MODEL_SIDE_BITS
    assert t["tensor"] == pytest.approx(one)
    assert t["rows"] <= t["tensor"] and t["histogram"] < t["tensor"]
    # the grid is coded by differences, the weight (not a grid) never is
    assert t["dpcm"] == pytest.approx(tool.dpcm_bits(walk)[0] + tool.laplace_bits(weight) + tool.MODEL_SIDE_BITS)


def test_a_real_file_is_read_with_its_names_and_payloads(tool, tmp_path, capsys, monkeypatch):
    clip = tmp_path / "clip.y4m"
    make_clip(clip, frames=4, crop=(40, 32, 64, 48))
    out = tmp_path / "clip.bin"
    encode(clip, out, EncodeOptions(preset="s", epochs=2, prune_epochs=1, qat_epochs=1, batch_size=2),
           progress=False, log=lambda *_: None)
    named = tool.file_tensors(out)
    assert named[0][0] == "grid.grids.0" and all(isinstance(n, str) and n for n, _, _ in named)
    assert 0 < sum(bits for _, _, bits in named) <= 8 * out.stat().st_size
    monkeypatch.setattr(sys, "argv", ["entropy_headroom", str(out)])
    assert tool.main() == 0
    assert "one Laplace a tensor" in capsys.readouterr().out
