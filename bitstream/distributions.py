"""The parametric entropy models, defined once for the coder and for rate-aware training.

A tensor's symbols are coded with a quantized Laplace or Gaussian over their support (``bitstream/FORMAT.md``
§4): P(q) = F(q + ½) − F(q − ½), with F the distribution's CDF at ``loc``/``scale`` in symbol units. The coder
(numpy, ``bitstream.entropy``) and the training that estimates the coded rate (torch, ``compress.entropy_quant``)
both compute that probability with :func:`log_interval_prob`, and share the bounds below, so the rate trained for
is the rate written. The function takes numpy arrays or torch tensors alike; torch is imported only when a tensor
comes in (this package never imports it otherwise).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["DISTRIBUTIONS", "LOG_PROB_FLOOR", "PROB_FLOOR", "SCALE_MIN", "SYMBOL_MAX", "log_interval_prob"]

DISTRIBUTIONS = ("laplace", "gaussian")  # the parametric models a tensor can be coded with
SYMBOL_MAX = 32767  # symbols lie in [-SYMBOL_MAX, SYMBOL_MAX]
SCALE_MIN = 2.0**-8  # the smallest model scale the encoder writes (the decoder accepts any positive fp16)
PROB_FLOOR = 2.0**-24  # the range coder's 24-bit precision: no symbol costs more than 24 bits
LOG_PROB_FLOOR = math.log(PROB_FLOOR)
_LOG_HALF = math.log(0.5)


class _Numpy:
    exp, log, expm1, abs, where = np.exp, np.log, np.expm1, np.abs, np.where

    @staticmethod
    def clamp_min(x: Any, v: float) -> Any:
        return np.maximum(x, v)

    @staticmethod
    def clamp_max(x: Any, v: float) -> Any:
        return np.minimum(x, v)

    @staticmethod
    def log_ndtr(x: Any) -> Any:
        from scipy.special import log_ndtr

        return log_ndtr(x)


class _Torch:
    def __init__(self) -> None:
        import torch

        self.exp, self.log, self.expm1, self.abs, self.where = torch.exp, torch.log, torch.expm1, torch.abs, torch.where
        self.log_ndtr = torch.special.log_ndtr

    @staticmethod
    def clamp_min(x: Any, v: float) -> Any:
        return x.clamp_min(v)

    @staticmethod
    def clamp_max(x: Any, v: float) -> Any:
        return x.clamp_max(v)


def _ops(x: Any) -> Any:
    return _Numpy if isinstance(x, (np.ndarray, np.generic, float, int)) else _Torch()


def log_interval_prob(kind: str, lo: Any, hi: Any) -> Any:
    """log P(lo < X < hi) for the standard ``kind`` distribution and standardised bounds lo < hi (arrays of one
    kind: numpy or torch), computed on the tail side, so a bin far out in a tail keeps its precision."""
    xp = _ops(lo)
    if kind == "laplace":
        # upper tail T(z) = ½e^(−z) for z >= 0. Both bounds >= 0: T(lo) − T(hi); both <= 0: mirror; else 1 − T − T.
        log_gap = xp.log(-xp.expm1(-xp.clamp_min(hi - lo, 1e-12)))
        right = _LOG_HALF - xp.clamp_min(lo, 0.0) + log_gap
        left = _LOG_HALF + xp.clamp_max(hi, 0.0) + log_gap
        mid = xp.log(xp.clamp_min(1 - 0.5 * xp.exp(-xp.abs(lo)) - 0.5 * xp.exp(-xp.abs(hi)), 1e-30))
        return xp.where(lo >= 0, right, xp.where(hi <= 0, left, mid))
    if kind == "gaussian":  # Φ(hi) − Φ(lo) = Φ(−lo) − Φ(−hi): use the side where the smaller tail is
        flip = (lo + hi) > 0
        a = xp.where(flip, -hi, lo)
        b = xp.where(flip, -lo, hi)
        la, lb = xp.log_ndtr(a), xp.log_ndtr(b)
        return lb + xp.log(-xp.expm1(xp.clamp_max(la - lb, -1e-12)))
    raise ValueError(f"expected a distribution in {DISTRIBUTIONS}, got {kind!r}")
