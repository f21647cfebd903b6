"""SBS rate term R, the objective L + λ·log(R + S) (or L + λ·(R + S)·unit, see ``rate_term``), λ tuning, and the
training hook.

For an INR the weights are the bitstream, so R is the size of the SBS-quantized tensors, written through the
width gates so that their surrogates see what each width step costs::

    R = Σ_l R_l(b₀) + Σ_i G_i·(R_l(b_i) - R_l(b_{i-1}))        G_i = g_1···g_i (the cumulative width gates)

``SBSConfig.rate`` picks R_l(b):
    ``"coded"`` (default): the entropy-coded bits of the kept symbols at width b: their empirical
        self-information in value (within 0.5% of the bitstream's payload in tests/compress/test_sbs.py), the
        gradient of a fitted discrete Laplace through the STE symbols (it reaches ``v`` and the weights).
        docs/design.md §5 asks for "the coded bits"; measured on carphone against uniform quantization in the
        closing notes of issue 4.
    ``"nominal"``: the paper's count, kept elements × b (before entropy coding, which writes fewer bits).
Side information and non-SBS tensors are excluded from R; the objective adds them back as S, the file's other bits
(see ``sbs_loss``). The value is exact for the hard gates; the gradient reaches the thresholds and the weights
through the gates' sigmoid surrogates (the gates' statistics take v as a constant), and v through the symbols.

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

from compress.hooks import HookContext, TrainingHook
from compress.prune import FilterFn
from compress.quantize import AxisFn
from compress.rate_control import steer
from compress.sbs import GATE_SPEED, V_SPEED, SBSConfig, coded_bits, freeze_gates_, sbs_, sbs_tensors

__all__ = ["RATE_TERMS", "SBSHook", "bisect_lambda", "rate_bits", "rate_term", "reopenable_", "rescale_v_", "sbs_loss",
           "tensor_bits"]

ALPHA_MAX = 0.5  # the width gates' statistic e_b lies in [0, ½] (steps of the coarser grid)
ALPHA_P_MAX = 1.0  # the pruning statistic mean|w|/v lies in [0, 1] but for clipped weights
SIDE_EVERY = 50  # steps between two measurements of the side information (it drifts slowly)
RATE_TERMS = ("log", "linear")  # λ·log(R + S) (the paper) or λ·(R + S)·unit (see rate_term)


def tensor_rates(model: nn.Module) -> list[torch.Tensor]:
    """Each SBS tensor's bits at its chosen width (0-D float64 each, model order), the coded ones estimated for
    all tensors in one pass."""
    found = [(q, q.current_state(x), x.ndim) for _, _, _, q, x in sbs_tensors(model)]
    coded = iter(coded_bits([q.coded_segments(st, ndim) for q, st, ndim in found if q.rate_kind == "coded"]))
    return [q.combine_rate(st, next(coded) if q.rate_kind == "coded" else None) for q, st, _ in found]


def rate_bits(model: nn.Module) -> torch.Tensor:
    """Bits the SBS tensors of ``model`` will take at their chosen widths, coded or nominal (0-D float64).

    Exact for the hard gates (nominal: the count from ``chosen_widths``); differentiable through the gate
    surrogates while the gates are not frozen (coded: also through the symbols). 0 without SBS tensors.
    """
    rates = tensor_rates(model)
    return torch.stack(rates).sum() if rates else torch.zeros((), dtype=torch.float64)


@torch.no_grad()
def reopenable_(model: nn.Module) -> None:
    """Clamp the gate thresholds to the range of their statistics (width gates: [0, ½] steps of the coarser grid;
    pruning: [0, 1] in units of v). A threshold beyond it closes its gate so deeply that the sigmoid surrogate
    has no gradient left, and a gate the rate term closed early in the search could never reopen (measured:
    SBS files landed at half their --target-size)."""
    for _, _, _, q, _ in sbs_tensors(model):
        q.alpha_raw.clamp_(0.0, ALPHA_MAX / GATE_SPEED)
        q.alpha_p_raw.clamp_(0.0, ALPHA_P_MAX / GATE_SPEED)


@torch.no_grad()
def rescale_v_(model: nn.Module, factor: float) -> None:
    """Multiply every SBS tensor's v, so its steps, by ``factor`` at the same widths and masks: coarser (> 1)
    or finer (< 1) symbols of the same weights, for last-mile rate control (``rate_control.fit_to_size``)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"rescale_v_: expected a finite factor > 0, got {factor!r}")
    for _, _, _, q, _ in sbs_tensors(model):
        q.log_v.add_(math.log(factor) / V_SPEED)


@torch.no_grad()
def tensor_bits(model: nn.Module) -> list[float]:
    """Each SBS tensor's bits at its chosen width, in model order."""
    return [float(r) for r in tensor_rates(model)]


def _check_term(term: str, unit: float, where: str) -> None:
    if term not in RATE_TERMS:
        raise ValueError(f"{where}: expected a rate term in {RATE_TERMS}, got {term!r}")
    if not (math.isfinite(unit) and unit > 0):
        raise ValueError(f"{where}: unit: expected a finite number > 0, got {unit!r}")


def rate_term(bits: torch.Tensor, lam: float, term: str = "log", unit: float = 1.0) -> torch.Tensor:
    """The objective's rate term for the file's bits R + S: ``λ·log(R + S)`` or ``λ·(R + S)·unit`` (float64).

    ``"log"`` is the paper's. Its price of a bit, λ/(R + S), rises as the rate falls. With a distortion that is
    itself a logarithm (the codec's losses are log-MSEs; a power-law log D = a - c·log R has the marginal gain
    c/R) both sides of the trade scale as 1/R: only the side bits S hold the rate at its equilibrium, with a
    restoring pull S/(R + S) times the linear term's (about 1/8 on carphone), so a search drifts and cascades
    (measured on carphone: R halved within 100 steps as whole tensors were pruned). ``"linear"`` charges a
    fixed price per bit (``unit``: e.g. 1/pixels for λ per bpp, as ``--quant entropy``). The sum is clamped to
    >= 1 bit.
    """
    _check_term(term, unit, "rate_term")
    bits = bits.clamp_min(1.0)
    return lam * (torch.log(bits) if term == "log" else bits * unit)


def sbs_loss(distortion: torch.Tensor, model: nn.Module, lam: float, side_bits: float = 0.0, term: str = "log",
             unit: float = 1.0) -> torch.Tensor:
    """``distortion + lam * log(R + side_bits)`` with R = ``rate_bits(model)``, in distortion's dtype (``term``,
    ``unit``: see ``rate_term``; ``"linear"`` is ``distortion + lam * (R + side_bits) * unit``).

    ``side_bits``: the file's other bits (headers, scales, tensors outside SBS). With the coded rate R can reach 0
    (a v large enough rounds every symbol to zero) and log R pays the same for every halving, so the search could
    run to nothing (measured on carphone, λ 0.1, while v also took the gates' gradient: 655 bytes at 17.3 dB); the
    file's size is bounded below and is what the user pays for. It does not rule a collapse out: a large enough
    λ still wins over the distortion (the encoder caps its target controller). The sum is clamped to >= 1 bit.
    """
    if not (math.isfinite(side_bits) and side_bits >= 0):
        raise ValueError(f"sbs_loss: side_bits: expected a finite number >= 0, got {side_bits!r}")
    return distortion + rate_term(rate_bits(model) + side_bits, lam, term, unit).to(distortion.dtype)


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


class SBSHook(TrainingHook):
    """Attach SBS at ``stage``, add λ·log(R + side) during it, optionally steer λ to a target, freeze at its end.

    Args:
        config: the search space; default ``SBSConfig()``.
        lam: λ of ``L + λ·log(R + side)`` (initial value when ``target_bits`` is set); see ``sbs_loss``.
        term, unit: the rate term, ``"log"`` (above, the paper's) or ``"linear"`` (``L + λ·(R + side)·unit``);
            see ``rate_term``.
        stage: the search stage (``transform_model`` attaches SBS when it is entered; ``on_stage_end`` freezes).
        target_bits: if given, after each step ``λ ← λ·((R + side)/target)**gain`` (clamped to ``lam_bounds``):
            a multiplicative integral controller on the file size R + ``side_bits``. For a bpp target pass
            ``bpp × width × height × frames``.
        gain: controller gain.
        lam_bounds: (min, max) of λ.
        freeze: freeze the gates at the end of ``stage`` (training then continues as QAT with fixed widths).
        side_bits: ``side_bits(model) -> float``: the file's bits besides R (headers, names, scales, tensors
            outside SBS), for the objective and the controller; measured every ``SIDE_EVERY`` steps. Default 0.
        rate_after: a later stage (QAT) that keeps the rate term with the widths frozen. With the coded rate the
            term still moves ``v`` and the weights there; without it QAT refines ``v`` for distortion alone and
            the file grows past what the search chose.
        filter_fn, axis_fn: passed to ``sbs_``.
    """

    def __init__(self, config: SBSConfig | None = None, lam: float = 0.01, stage: str = "prune",
                 target_bits: float | None = None, gain: float = 0.05, lam_bounds: tuple[float, float] = (1e-6, 1e3),
                 freeze: bool = True, filter_fn: FilterFn | None = None, axis_fn: AxisFn | None = None,
                 rate_after: str | None = None, side_bits: Callable[[nn.Module], float] | None = None,
                 term: str = "log", unit: float = 1.0) -> None:
        self.config = SBSConfig() if config is None else config
        if not isinstance(self.config, SBSConfig):
            raise TypeError(f"SBSHook: expected an SBSConfig, got {type(self.config).__name__}")
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ValueError(f"SBSHook: lam: expected a finite number >= 0, got {lam!r}")
        if target_bits is not None and not target_bits > 0:
            raise ValueError(f"SBSHook: target_bits: expected None or > 0, got {target_bits!r}")
        _check_term(term, unit, "SBSHook")
        self.term, self.unit = term, float(unit)
        if not 0 < lam_bounds[0] <= lam_bounds[1]:
            raise ValueError(f"SBSHook: lam_bounds: expected 0 < min <= max, got {lam_bounds!r}")
        self.lam, self.stage, self.target_bits, self.gain = float(lam), stage, target_bits, float(gain)
        self.lam_bounds, self.freeze = (float(lam_bounds[0]), float(lam_bounds[1])), freeze
        self.filter_fn, self.axis_fn, self.rate_after = filter_fn, axis_fn, rate_after
        self.side_bits_fn, self.side_bits = side_bits, 0.0
        self.steps, self.frozen, self.last_bits = 0, False, None

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        if stage == self.stage and next(iter(sbs_tensors(model)), None) is None:
            sbs_(model, self.config, self.filter_fn, self.axis_fn)
        return model

    def _rate_on(self, ctx: HookContext | None) -> bool:
        """Whether the rate term is in the loss now: the search, and ``rate_after`` once frozen."""
        if ctx is None:
            return False
        return ctx.stage == self.stage and not self.frozen or ctx.stage == self.rate_after and self.frozen

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        if not self._rate_on(ctx) or self.lam == 0:
            return None
        r = rate_bits(model)
        self.last_bits = float(r.detach())
        # see sbs_loss; λ per log unit of distortion whatever the loss (HookContext.loss_scale)
        return ctx.loss_scale * rate_term(r + self.side_bits, self.lam, self.term, self.unit).float()

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        if not self._rate_on(ctx):
            return
        self.steps += 1
        if not self.frozen:
            reopenable_(model)
        if self.side_bits_fn is not None and self.steps % SIDE_EVERY == 1:
            self.side_bits = float(self.side_bits_fn(model))
        if self.target_bits is not None and self.last_bits is not None:
            self.lam = steer(self.lam, self.last_bits + self.side_bits, self.target_bits, self.gain, self.lam_bounds)

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        if stage == self.stage and self.freeze:
            freeze_gates_(model)
            self.frozen = True

    def state_dict(self) -> dict[str, Any]:
        return {"lam": self.lam, "steps": self.steps, "frozen": self.frozen, "last_bits": self.last_bits,
                "side_bits": self.side_bits}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"lam", "steps", "frozen", "last_bits"} - set(state)
        if missing:
            raise ValueError(f"SBSHook.load_state_dict: expected keys lam, steps, frozen, last_bits; missing "
                             f"{sorted(missing)}")
        self.lam, self.steps = float(state["lam"]), int(state["steps"])
        self.frozen, self.last_bits = bool(state["frozen"]), state["last_bits"]
        self.side_bits = float(state.get("side_bits", 0.0))  # absent in checkpoints of earlier versions
