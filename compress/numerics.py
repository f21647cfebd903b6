"""The float16 rounding and channel-axis conventions that every quantizer shares.

The bitstream stores steps, scales and entropy-model parameters as float16, so each quantizer rounds them to
float16 in training exactly as the file will hold them. The rounding is done in float32/int32 arithmetic rather
than by casting: ``torch.compile`` (Inductor) may drop a float32 -> float16 -> float32 round trip
(``emulate_precision_casts`` is off by default), which would let a compiled quantizer use values the file cannot
store. Both functions equal ``v.half().float()`` for 0 <= v <= 65504.

Format version 4 stores learned steps and entropy models more coarsely (``bitstream.compact``: 8-bit minifloats,
quarter-symbol locs); ``round_minifloat`` and ``round_loc`` are the torch twins of its rounding, equal to it.
"""
from __future__ import annotations

import torch

from bitstream.compact import LOC_MAX, LOC_UNITS, minifloat_max

__all__ = ["FP16_MAX", "FP16_TINY", "ceil_fp16", "normalize_axis", "round_fp16", "round_loc", "round_minifloat",
           "ste"]

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


def round_minifloat(v: torch.Tensor, exp_min: int) -> torch.Tensor:
    """Nearest (ties to even) value of ``bitstream.compact``'s 8-bit minifloat grid from 2^exp_min, clamped to its
    range; exact in float32 (a 5-bit significand times a power of two)."""
    v = v.clamp(2.0**exp_min, minifloat_max(exp_min))
    mant, exp = torch.frexp(v)
    return torch.round(mant * 32) * torch.exp2(exp.to(v.dtype) - 5)


def round_loc(v: torch.Tensor) -> torch.Tensor:
    """Nearest (ties to even) quarter, clamped to ±LOC_MAX: ``bitstream.compact``'s loc grid."""
    return torch.round(v.clamp(-LOC_MAX, LOC_MAX) * LOC_UNITS) / LOC_UNITS


def ste(v: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """``rounded`` (computed from ``v`` without gradient) in the forward pass, identity gradient to ``v``."""
    return v + (rounded - v).detach()


def normalize_axis(axis: int | None, ndim: int) -> int | None:
    """``axis`` as a non-negative index into a ``ndim``-D tensor (None stays None: one value for the tensor)."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, int) or not (-ndim <= axis < ndim):
        raise ValueError(f"axis: expected None or an int in [{-ndim}, {ndim - 1}] for a {ndim}-D tensor, got {axis!r}")
    return axis % ndim
