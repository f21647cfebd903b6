"""The float16 rounding and channel-axis conventions that every quantizer shares.

The bitstream stores steps, scales and entropy-model parameters as float16, so each quantizer rounds them to
float16 in training exactly as the file will hold them. The rounding is done in float32/int32 arithmetic rather
than by casting: ``torch.compile`` (Inductor) may drop a float32 -> float16 -> float32 round trip
(``emulate_precision_casts`` is off by default), which would let a compiled quantizer use values the file cannot
store. Both functions equal ``v.half().float()`` for 0 <= v <= 65504.
"""
from __future__ import annotations

import torch

__all__ = ["FP16_MAX", "FP16_TINY", "ceil_fp16", "fp16_ste", "normalize_axis", "round_fp16"]

FP16_MAX = float(torch.finfo(torch.float16).max)  # 65504
FP16_TINY = 2.0**-24  # the smallest positive fp16 (subnormal)
_FP16_MIN_NORMAL = 2.0**-14


def round_fp16(v: torch.Tensor) -> torch.Tensor:
    """Nearest (ties to even) fp16 value of float32 ``v`` in [0, 65504], as float32."""
    b = v.view(torch.int32)
    b = (b + 0xFFF + ((b >> 13) & 1)) & ~0x1FFF  # keep 10 of float32's 23 mantissa bits, ties to even
    sub = torch.round(v * 2.0**24) * 2.0**-24  # fp16 subnormals: multiples of 2**-24
    return torch.where(v < _FP16_MIN_NORMAL, sub, b.view(torch.float32))


def ceil_fp16(v: torch.Tensor) -> torch.Tensor:
    """The smallest fp16 value >= float32 ``v`` in [0, 65504], as float32."""
    r = round_fp16(v)
    up_normal = (r.view(torch.int32) + (1 << 13)).view(torch.float32)  # next fp16 above a normal r
    up = torch.where(r < _FP16_MIN_NORMAL, r + 2.0**-24, up_normal)
    return torch.where(r < v, up, r)


def fp16_ste(v: torch.Tensor) -> torch.Tensor:
    """``v`` rounded to the nearest positive float16 value (clamped to [2^-24, 65504]), gradient identity."""
    r = round_fp16(v.detach().clamp(FP16_TINY, FP16_MAX))
    return v + (r - v).detach()


def normalize_axis(axis: int | None, ndim: int) -> int | None:
    """``axis`` as a non-negative index into a ``ndim``-D tensor (None stays None: one value for the tensor)."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, int) or not (-ndim <= axis < ndim):
        raise ValueError(f"axis: expected None or an int in [{-ndim}, {ndim - 1}] for a {ndim}-D tensor, got {axis!r}")
    return axis % ndim
