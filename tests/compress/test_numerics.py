"""compress.numerics: the float16 rounding and channel axes every quantizer shares."""
from __future__ import annotations

import pytest
import torch

from bitstream import compact
from bitstream.compact import SCALE_EXP_MIN, STEP_EXP_MIN
from compress.numerics import ceil_fp16, normalize_axis, round_fp16, round_loc, round_minifloat, ste


def test_fp16_rounding_without_casts_matches_casts() -> None:
    """compute_scales rounds to fp16 in float32/int32 arithmetic (compile-safe); it must equal a real cast."""
    every = torch.arange(0, 0x7BFF + 1, dtype=torch.int16).view(torch.float16).float()  # all finite fp16 >= 0
    nxt = torch.cat([every[1:], every[-1:]])
    mids = (every + nxt) / 2  # exact ties: ties go to even
    around = torch.cat([every.nextafter(torch.tensor(0.0)), every.nextafter(torch.tensor(1e5))])
    rand = torch.rand(200_000) * torch.logspace(-9, 4.8, 200_000)
    v = torch.cat([every, mids, around, rand]).clamp(0, 65504)
    assert torch.equal(round_fp16(v), v.half().float())
    h = v.half().float()
    ref_ceil = torch.where(h < v, h.half().nextafter(torch.tensor(float("inf"), dtype=torch.float16)).float(), h)
    assert torch.equal(ceil_fp16(v), ref_ceil)


def test_normalize_axis() -> None:
    assert normalize_axis(None, 3) is None and normalize_axis(-1, 3) == 2 and normalize_axis(1, 2) == 1
    for bad in (3, -4, True, 1.0):
        with pytest.raises(ValueError, match="axis"):
            normalize_axis(bad, 3)


@pytest.mark.parametrize("exp_min", [STEP_EXP_MIN, SCALE_EXP_MIN])
def test_minifloat_rounding_in_torch_equals_the_bitstreams(exp_min: int) -> None:
    """Training rounds steps and scales to format version 4's grid in float32; the writer checks them with
    bitstream.compact's float64 functions: both must give the same values, ties included."""
    grid = [compact.minifloat_from_code(c, exp_min) for c in range(256)]
    mids = [(a + b) / 2 for a, b in zip(grid, grid[1:])]  # exact ties (representable in float32)
    rand = (torch.rand(100_000) * 2.0 ** (exp_min + 14) * torch.logspace(-6, 0, 100_000)).tolist()
    v = torch.tensor(grid + mids + rand + [0.0, 1e-30, 1e30], dtype=torch.float32)
    ours = round_minifloat(v, exp_min)
    assert ours.dtype == torch.float32
    assert ours.double().numpy().tolist() == compact.round_minifloat(v.double().numpy(), exp_min).tolist()


def test_loc_rounding_in_torch_equals_the_bitstreams() -> None:
    v = torch.cat([torch.arange(-2100, 2100) / 8, torch.randn(10_000) * 100])
    assert round_loc(v).double().numpy().tolist() == compact.round_loc(v.double().numpy()).tolist()


def test_ste_rounds_forward_and_passes_the_gradient() -> None:
    v = torch.tensor([0.3, 0.7], requires_grad=True)
    out = ste(v, round_loc(v.detach()))
    assert out.tolist() == [0.25, 0.75]
    out.sum().backward()
    assert torch.equal(v.grad, torch.ones(2))
