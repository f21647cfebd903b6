"""compress.numerics: the float16 rounding and channel axes every quantizer shares."""
from __future__ import annotations

import pytest
import torch

from compress.numerics import ceil_fp16, fp16_ste, normalize_axis, round_fp16


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


def test_fp16_ste_rounds_forward_and_passes_the_gradient() -> None:
    v = torch.tensor([1e-9, 0.1, 3.14159, 1e6], requires_grad=True)
    out = fp16_ste(v)
    assert torch.equal(out.detach(), v.detach().clamp(2.0**-24, 65504).half().float())
    out.sum().backward()
    assert torch.equal(v.grad, torch.ones(4))


def test_normalize_axis() -> None:
    assert normalize_axis(None, 3) is None and normalize_axis(-1, 3) == 2 and normalize_axis(1, 2) == 1
    for bad in (3, -4, True, 1.0):
        with pytest.raises(ValueError, match="axis"):
            normalize_axis(bad, 3)
