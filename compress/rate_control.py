"""Rate control shared by the rate-aware quantizers: steer λ to a target during training, then fit the file's
last few percent by scaling every quantization step after it."""
from __future__ import annotations

import math
from typing import Callable

from torch import nn

__all__ = ["fit_to_size", "steer"]


def steer(lam: float, measured: float, target: float, gain: float, bounds: tuple[float, float]) -> float:
    """One step of the multiplicative integral controller: ``λ·(measured/target)**gain`` within ``bounds``."""
    lam = max(lam, bounds[0]) * (measured / target) ** gain
    return min(max(lam, bounds[0]), bounds[1])


def fit_to_size(model: nn.Module, size: Callable[[nn.Module], int], target: float,
                rescale: Callable[[nn.Module, float], None], rtol: float = 0.02, iters: int = 20,
                max_factor: float = 64.0, grow: bool = True) -> tuple[float, int]:
    """Last-mile rate control: scale every step by one factor so that ``size(model)`` (bytes) lands within
    ``rtol`` of ``target``, by bisection on the factor's log; leaves the model at the best factor found.

    A no-op when the model already fits. Returns ``(factor, bytes)``; the closest size reached if the target
    is out of reach within ``[1/max_factor, max_factor]``. ``rescale(model, factor)`` multiplies the steps
    (``compress.entropy_quant.rescale_steps_``, ``compress.sbs_rate.rescale_v_``). ``grow=False``: only ever
    shrink the file (SBS: finer steps at fixed widths clip, and measured files got smaller, not larger).
    """
    current = size(model)
    if abs(current / target - 1) <= rtol or (not grow and current < target):
        return 1.0, current
    applied = 0.0  # log of the factor now in the model
    lo, hi = -math.log(max_factor), math.log(max_factor)
    best = (abs(current / target - 1), 0.0, current)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        rescale(model, math.exp(mid - applied))
        applied = mid
        current = size(model)
        best = min(best, (abs(current / target - 1), mid, current))
        if abs(current / target - 1) <= rtol:
            break
        lo, hi = (mid, hi) if current > target else (lo, mid)  # coarser steps -> fewer bytes
    rescale(model, math.exp(best[1] - applied))
    return math.exp(best[1]), best[2]
