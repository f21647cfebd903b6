"""SBS rate term: R = Σ kept params × chosen bits, the objective L + λ·log R, λ tuning, and the training hook.

For an INR the weights are the bitstream, so the rate is the nominal size of the SBS-quantized tensors::

    R = Σ_l n_l(g_p) · b_l(g_q)      n_l: elements of the unpruned groups, b_l = b₀ + Σ_i (b_i - b_{i-1}) g_1···g_i

(before entropy coding, which typically writes fewer bits; side information and non-SBS tensors excluded). The
value is exact (hard gates); the gradient reaches the thresholds, ``v`` and the weights through the gates'
sigmoid surrogates.

Example::

    sbs_(model, SBSConfig())
    for step in range(n):                        # search
        loss = sbs_loss(mse(model(x), y), model, lam=0.05)
        ...
    freeze_gates_(model)                         # fixed widths and masks
    ...QAT...
    qtensors = export_sbs(model)
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from compress.hooks import PLUGINS, HookContext, TrainingHook
from compress.prune import FilterFn
from compress.quantize import AxisFn
from compress.sbs import SBSConfig, freeze_gates_, sbs_, sbs_tensors

__all__ = ["SBSHook", "bisect_lambda", "rate_bits", "sbs_loss"]


def rate_bits(model: nn.Module) -> torch.Tensor:
    """Bits the SBS tensors of ``model`` will take: Σ kept elements × chosen width (0-D float64).

    Exact in the forward (equals the count from ``chosen_widths``); differentiable through the gate
    surrogates while the gates are not frozen. 0 when the model has no SBS tensor.
    """
    total: torch.Tensor | None = None
    for _, _, _, q, x in sbs_tensors(model):
        r = q.rate(x)
        total = r if total is None else total + r
    return total if total is not None else torch.zeros((), dtype=torch.float64)


def sbs_loss(distortion: torch.Tensor, model: nn.Module, lam: float) -> torch.Tensor:
    """``distortion + lam * log(R)`` with R = ``rate_bits(model)`` (clamped to >= 1 bit), in distortion's dtype."""
    r = rate_bits(model).clamp_min(1.0)
    return distortion + (lam * torch.log(r)).to(distortion.dtype)


def bisect_lambda(run: Callable[[float], float], target_bits: float, lo: float = 1e-4, hi: float = 10.0,
                  iters: int = 8, rtol: float = 0.02) -> tuple[float, float]:
    """Geometric bisection of λ so that ``run(λ)`` (a search returning its bits; decreasing in λ) meets a target.

    Returns:
        ``(λ, bits)``: the evaluated λ with bits <= target closest to it (or, if none met it, the fewest bits).
        Stops early when within ``rtol`` of the target.
    """
    if not (0 < lo < hi) or not target_bits > 0:
        raise ValueError(f"bisect_lambda: expected 0 < lo < hi and target_bits > 0, got {lo}, {hi}, {target_bits}")
    tried: list[tuple[float, float]] = []
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        bits = float(run(mid))
        tried.append((mid, bits))
        if abs(bits - target_bits) <= rtol * target_bits:
            break
        lo, hi = (mid, hi) if bits > target_bits else (lo, mid)
    under = [t for t in tried if t[1] <= target_bits]
    return max(under, key=lambda t: t[1]) if under else min(tried, key=lambda t: t[1])


@PLUGINS.register("sbs")
class SBSHook(TrainingHook):
    """Attach SBS at ``stage``, add λ·log R during it, optionally steer λ to a target rate, freeze at its end.

    Args:
        config: the search space; default ``SBSConfig()``.
        lam: λ of ``L + λ·log R`` (initial value when ``target_bits`` is set).
        stage: the search stage (``transform_model`` attaches SBS when it is entered; ``on_stage_end`` freezes).
        target_bits: if given, after each step ``λ ← λ·(R/target)**gain`` (clamped to ``lam_bounds``): a
            multiplicative integral controller on the nominal bits R. For a bpp target pass
            ``bpp × width × height × frames`` (minus the bits of the tensors outside SBS).
        gain: controller gain.
        lam_bounds: (min, max) of λ.
        freeze: freeze the gates at the end of ``stage`` (training then continues as QAT with fixed widths).
        filter_fn, axis_fn: passed to ``sbs_``.
    """

    def __init__(self, config: SBSConfig | None = None, lam: float = 0.01, stage: str = "prune",
                 target_bits: float | None = None, gain: float = 0.05, lam_bounds: tuple[float, float] = (1e-6, 1e3),
                 freeze: bool = True, filter_fn: FilterFn | None = None, axis_fn: AxisFn | None = None) -> None:
        self.config = SBSConfig() if config is None else config
        if not isinstance(self.config, SBSConfig):
            raise TypeError(f"SBSHook: expected an SBSConfig, got {type(self.config).__name__}")
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ValueError(f"SBSHook: lam: expected a finite number >= 0, got {lam!r}")
        if target_bits is not None and not target_bits > 0:
            raise ValueError(f"SBSHook: target_bits: expected None or > 0, got {target_bits!r}")
        if not 0 < lam_bounds[0] <= lam_bounds[1]:
            raise ValueError(f"SBSHook: lam_bounds: expected 0 < min <= max, got {lam_bounds!r}")
        self.lam, self.stage, self.target_bits, self.gain = float(lam), stage, target_bits, float(gain)
        self.lam_bounds, self.freeze = (float(lam_bounds[0]), float(lam_bounds[1])), freeze
        self.filter_fn, self.axis_fn = filter_fn, axis_fn
        self.steps, self.frozen, self.last_bits = 0, False, None

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        if stage == self.stage and next(iter(sbs_tensors(model)), None) is None:
            sbs_(model, self.config, self.filter_fn, self.axis_fn)
        return model

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        if ctx is None or ctx.stage != self.stage or self.frozen or self.lam == 0:
            return None
        r = rate_bits(model).clamp_min(1.0)
        self.last_bits = float(r.detach())
        return (self.lam * torch.log(r)).float()

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        if ctx is None or ctx.stage != self.stage or self.frozen:
            return
        self.steps += 1
        if self.target_bits is not None and self.last_bits is not None:
            lam = max(self.lam, self.lam_bounds[0]) * (self.last_bits / self.target_bits) ** self.gain
            self.lam = min(max(lam, self.lam_bounds[0]), self.lam_bounds[1])

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        if stage == self.stage and self.freeze:
            freeze_gates_(model)
            self.frozen = True

    def state_dict(self) -> dict[str, Any]:
        return {"lam": self.lam, "steps": self.steps, "frozen": self.frozen, "last_bits": self.last_bits}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"lam", "steps", "frozen", "last_bits"} - set(state)
        if missing:
            raise ValueError(f"SBSHook.load_state_dict: expected keys lam, steps, frozen, last_bits; missing "
                             f"{sorted(missing)}")
        self.lam, self.steps = float(state["lam"]), int(state["steps"])
        self.frozen, self.last_bits = bool(state["frozen"]), state["last_bits"]
