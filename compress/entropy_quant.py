"""Entropy-aware quantization: learned step sizes, parametric entropy models, and the rate in the loss.

Works on any ``nn.Module`` (NVRC-style rate-distortion training). Every selected tensor gets an
``EntropyQuant`` parametrization holding its learned numbers:

* ``log_step``: the quantization step Δ = exp(log_step), one per tensor (or per channel, ``per_channel``); the
  symbols are ``q = round(w / Δ)``;
* ``loc``, ``log_scale``: a quantized Laplace (or Gaussian) over the symbols, P(q) = F(q + ½) − F(q − ½) with
  F the CDF of loc/scale in *symbol units* -- exactly the model the range coder uses when the tensor is written.

Modes of the forward pass (the decoder always sees the ``hard`` values):

* ``noise`` (the differentiable proxy): ŵ = w + Δ·u, u ~ U(−½, ½); the rate uses y = w/Δ + u'. With a
  ``temperature`` T > 0 (the ``softround`` plugin anneals it) the proxy soft-rounds first, as C3 trains its
  latents: ŵ = Δ·s_T(s_T(w/Δ) + u), the rate on s_T(w/Δ) + u' (:func:`soft_round`; T → 0 is hard rounding);
* ``ste``: ŵ = Δ̂·round(w/Δ̂) with straight-through gradients (Δ̂: Δ as the file stores it, an 8-bit
  minifloat of ``bitstream.compact``);
* ``hard`` (eval mode, whatever the mode): the exact values the bitstream decodes to, ``q * Δ̂`` in float32.

The rate of a tensor is Σ −log₂ P(q) bits; :func:`rate_bits` sums it over the model and is what the loss
``L = D + λ·R/pixels`` uses (:class:`EntropyHook`). :func:`export_entropy` writes the symbols, the step and the
(loc, scale) of the learned model as the file stores them (``bitstream.compact``'s grids: format version 4),
which the bitstream codes with that very model (no refit), so the rate estimated in training matches the written
payload (the side information is counted exactly by :func:`bitstream.packed.encode_packed` and its stand-in
layout; a small tensor that raw bits or another model store smaller is stored so, and counted so).

Example::

    entropy_quant_(model)                       # all parameters; noise proxy
    loss = distortion + lam * rate_bits(model) / pixels
    set_mode_(model, "ste")                     # fine-tune with hard rounding
    qtensors = export_entropy(model)            # QuantizedTensor list with .entropy = (kind, loc, scale)
"""
from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from bitstream.distributions import DISTRIBUTIONS, LOG_PROB_FLOOR, SCALE_MIN, SYMBOL_MAX, log_interval_prob
from bitstream.tensors import QuantizedTensor, nominal_bits
from bitstream.compact import SCALE_EXP_MIN, STEP_EXP_MIN
from compress.numerics import normalize_axis, round_loc, round_minifloat, ste
from compress.prune import FilterFn, find_parametrization, input_of, named_tensors, remember_param_order
from compress.quantize import AxisFn, FakeQuant, default_axis

__all__ = [
    "DISTRIBUTIONS",
    "MODES",
    "EntropyQuant",
    "EntropyQuantConfig",
    "entropy_quant_",
    "entropy_tensors",
    "export_entropy",
    "hard_rate_bits",
    "hard_tensor_bits",
    "rate_bits",
    "rescale_steps_",
    "set_mode_",
    "set_temperature_",
    "soft_round",
    "symbol_bits",
    "tensor_rate_bits",
]

MODES = ("noise", "ste")
# Each quantizer's (log step, loc, log scale) is stored divided by this. Adam moves a parameter by about lr per
# step whatever its gradient, so the stored form lets the steps travel PARAM_SPEED times faster than the weights:
# several octaves within a rate stage of a few hundred steps (measured: with 1, 90 steps at lr 1e-2 left the
# steps where they started and lambda made no difference).
PARAM_SPEED = 10.0


@dataclass(frozen=True)
class EntropyQuantConfig:
    """Initialisation and the entropy model family."""

    init_bits: int = 8  # the initial step is max|w| / (2**(init_bits-1) - 1), as a uniform quantizer of that width
    distribution: str = "laplace"  # 'laplace' or 'gaussian'
    per_channel: bool = False  # one learned step per channel (along axis_fn's axis) instead of per tensor
    version: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.init_bits, bool) or not isinstance(self.init_bits, int) or not 2 <= self.init_bits <= 16:
            raise ValueError(f"EntropyQuantConfig.init_bits: expected an int in [2, 16], got {self.init_bits!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"EntropyQuantConfig.distribution: expected one of {DISTRIBUTIONS}, "
                             f"got {self.distribution!r}")
        if self.version != 1:
            raise ValueError(f"EntropyQuantConfig.version: expected 1, got {self.version!r}")


def stored_steps(steps: torch.Tensor) -> torch.Tensor:
    """Steps as the file stores them (``bitstream.compact``: 8-bit minifloats from 2^-14 to 3.875), gradient
    straight through."""
    return ste(steps, round_minifloat(steps.detach(), STEP_EXP_MIN))


def stored_scales(scales: torch.Tensor) -> torch.Tensor:
    """Entropy-model scales as the file stores them (8-bit minifloats from 1/16 to 3968 symbols), gradient through."""
    return ste(scales, round_minifloat(scales.detach(), SCALE_EXP_MIN))


def stored_locs(locs: torch.Tensor) -> torch.Tensor:
    """Entropy-model locs as the file stores them (quarters of a symbol within ±512), gradient through."""
    return ste(locs, round_loc(locs.detach()))


def soft_round(y: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Agustsson & Theis's soft rounding: ⌊y⌋ + ½ + tanh(r/T) / (2·tanh(1/(2T))) with r = y − ⌊y⌋ − ½.

    Continuous and monotone in y, equal to y at every integer; the identity as T → ∞ and rounding as T → 0, so
    annealing T moves a noise proxy's forward pass towards the hard rounding the file holds (its slope near the
    integers falls with T). ``temperature`` > 0: a number, or a tensor that broadcasts against ``y``.
    """
    base = torch.floor(y) + 0.5
    return base + 0.5 * torch.tanh((y - base) / temperature) / torch.tanh(0.5 / torch.as_tensor(temperature))


_OPEN = 50.0  # a standardised bound this far out holds all the tail mass (e^-50, Φ(-50) ~ 0)


def symbol_bits(kind: str, y: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                first: torch.Tensor | None = None, last: torch.Tensor | None = None) -> torch.Tensor:
    """Bits of each (possibly fractional) symbol ``y`` under the quantized ``kind`` with ``loc``/``scale``.

    −log₂(F(y + ½) − F(y − ½)), floored at the coder's 2^-24 probability (24 bits at most). ``first``/``last``
    (bool masks): symbols at the bottom/top of the coded support, whose bins also take the tail beyond it, as
    constriction's quantized distributions do.
    """
    lo = (y - 0.5 - loc) / scale
    hi = (y + 0.5 - loc) / scale
    if first is not None:
        lo = torch.where(first, torch.full_like(lo, -_OPEN).minimum(lo.detach()), lo)
    if last is not None:
        hi = torch.where(last, torch.full_like(hi, _OPEN).maximum(hi.detach()), hi)
    return -log_interval_prob(kind, lo, hi).clamp_min(LOG_PROB_FLOOR) / math.log(2.0)


class EntropyQuant(nn.Module):
    """Parametrization: learned-step quantization of one tensor with a learned entropy model of its symbols.

    Args:
        x: the tensor's initial value (sets the initial step and entropy scale).
        config: initial width and distribution.
    """

    def __init__(self, x: torch.Tensor, config: EntropyQuantConfig, axis: int | None = None) -> None:
        super().__init__()
        x = x.detach().float()
        if not bool(torch.isfinite(x).all()):
            raise ValueError("EntropyQuant: expected finite values, got NaN or inf")
        qmax = 2 ** (config.init_bits - 1) - 1
        amax = float(x.abs().max()) if x.numel() else 0.0
        step = amax / qmax if amax > 0 else 1e-3
        spread = float((x - x.median()).abs().mean()) / step if x.numel() else 1.0
        self.kind = config.distribution
        self.mode = "noise"
        self.temperature = 0.0  # noise mode: soft-round at this T first (0: the plain noise proxy); set by a hook
        self.axis = axis
        # (log Δ, loc, log scale) / PARAM_SPEED: one learned 3-vector (see PARAM_SPEED)
        self.raw = nn.Parameter(torch.tensor([math.log(step), 0.0, math.log(max(spread, 0.1))]) / PARAM_SPEED)
        if axis is not None:  # per-channel log-step offsets, from each channel's range like a uniform quantizer's
            dims = tuple(d for d in range(x.ndim) if d != axis)
            ch = x.abs().amax(dim=dims) if dims else x.abs()
            offset = torch.log(torch.where(ch > 0, ch / qmax, torch.full_like(ch, step)) / step)
            self.raw_channel = nn.Parameter(offset / PARAM_SPEED)

    @property
    def log_step(self) -> torch.Tensor:
        """log Δ: a 0-D tensor, or one per channel (along ``axis``)."""
        base = self.raw[0] * PARAM_SPEED
        return base if self.axis is None else base + self.raw_channel * PARAM_SPEED

    def _along(self, v: torch.Tensor, ndim: int) -> torch.Tensor:
        """Per-channel ``v`` shaped to broadcast against the tensor; a 0-D ``v`` as it is."""
        if self.axis is None:
            return v
        shape = [1] * ndim
        shape[self.axis] = -1
        return v.reshape(shape)

    @property
    def loc(self) -> torch.Tensor:
        return self.raw[1] * PARAM_SPEED

    @property
    def log_scale(self) -> torch.Tensor:
        return self.raw[2] * PARAM_SPEED

    # -- the numbers the bitstream stores

    def stored_step(self) -> torch.Tensor:
        """The step as the file stores it (gradient straight through to ``log_step``)."""
        return stored_steps(self.log_step.exp())

    def stored_model(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The entropy model (loc, scale) as the file stores it, gradient straight through."""
        return stored_locs(self.loc), stored_scales(self.log_scale.exp())

    @torch.no_grad()
    def symbols(self, x: torch.Tensor) -> torch.Tensor:
        """The integer symbols (as float32) the bitstream stores for ``x``."""
        return torch.round(x.float() / self._along(self.stored_step(), x.ndim)).clamp_(-SYMBOL_MAX, SYMBOL_MAX)

    # -- forward and rate

    def _latent(self, x: torch.Tensor, hard: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, step): y the symbols-to-be (noisy, STE-rounded or exact), value = y * step."""
        if hard or self.mode == "ste":
            step = self._along(self.stored_step(), x.ndim)
            y = x.float() / step
            q = torch.round(y).clamp(-SYMBOL_MAX, SYMBOL_MAX)
            return y + (q - y).detach(), step
        step = self._along(self.log_step.exp(), x.ndim)
        y, noise = x.float() / step, torch.rand_like(x, dtype=torch.float32) - 0.5
        if self.temperature > 0:
            return soft_round(soft_round(y, self.temperature) + noise, self.temperature), step
        return y + noise, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # exactly the decoder's q * step in float32
            step = self._along(self.stored_step(), x.ndim)
            return (self.symbols(x) * step.detach() + (x - x.detach())).to(x.dtype)
        y, step = self._latent(x, hard=False)
        return (y * step).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"kind={self.kind}, mode={self.mode}, axis={self.axis}, "
                f"step={float(self.raw[0].detach().mul(PARAM_SPEED).exp()):.3g}, loc={float(self.loc.detach()):.3g}, "
                f"scale={float(self.log_scale.detach().exp()):.3g}")


# model -> (its modules when indexed, its entropy-quantized tensors): the rate is computed twice a training step,
# and walking the model's parameters for its quantizers took 2/3 of that (~7 ms a call at 10k parameters)
_Entry = tuple[str, EntropyQuant, nn.Module, str, int]  # full name, quantizer, module, parameter name, position
_INDEX: weakref.WeakKeyDictionary[nn.Module, tuple[list[nn.Module], list[_Entry]]] = weakref.WeakKeyDictionary()


def _quantized(model: nn.Module) -> list[_Entry]:
    """``(full_name, quantizer, module, param_name, position)`` of every entropy-quantized tensor, in model order.

    Kept while the model's modules are the same objects in the same order: registering or removing a
    parametrization, or replacing a module, changes them (the kept list holds them, so no id is reused).
    """
    modules = list(model.modules())
    kept = _INDEX.get(model)
    if kept is not None and len(kept[0]) == len(modules) and all(a is b for a, b in zip(kept[0], modules)):
        return kept[1]
    found = []
    for full, module, param_name, _ in named_tensors(model):
        hit = find_parametrization(module, param_name, EntropyQuant)
        if hit is not None:
            found.append((full, hit[1], module, param_name, hit[0]))
    _INDEX[model] = (modules, found)
    return found


def entropy_tensors(model: nn.Module) -> Iterator[tuple[str, EntropyQuant, torch.Tensor]]:
    """Yield ``(full_name, quantizer, pre_value)`` for every entropy-quantized tensor, in model order."""
    for full, q, module, param_name, position in _quantized(model):
        yield full, q, input_of(full, module, param_name, position)


def entropy_quant_(model: nn.Module, config: EntropyQuantConfig | None = None,
                   filter_fn: FilterFn | None = None, axis_fn: AxisFn | None = None) -> list[str]:
    """Register ``EntropyQuant`` on the selected parameters (default: all) of ``model``, in place.

    Stacks on a prune ``Mask``. The quantizers' own parameters (step, loc, scale) become parameters of the model,
    so an optimizer built afterwards trains them, and ``state_dict`` carries them (checkpoints, resume).

    Returns:
        The full names of the quantized tensors.

    Raises:
        ValueError: a selected tensor already has a quantizer, or non-finite values.
    """
    config = config or EntropyQuantConfig()
    plan = []
    for full, module, param_name, _ in named_tensors(model, filter_fn):
        if parametrize.is_parametrized(module, param_name):
            plist = module.parametrizations[param_name]
            if any(isinstance(p, (EntropyQuant, FakeQuant)) for p in plist):
                raise ValueError(f"entropy_quant_: {full!r} is already quantized")
        plan.append((full, module, param_name))
    for full, module, param_name in plan:
        value = getattr(module, param_name)
        axis = (axis_fn or default_axis)(full, value) if config.per_channel else None
        try:
            axis = normalize_axis(axis, value.ndim)
            q = EntropyQuant(value, config, axis)
        except ValueError as e:
            raise ValueError(f"entropy_quant_: {full!r}: {e}") from None
        remember_param_order(module)
        parametrize.register_parametrization(module, param_name, q.to(getattr(module, param_name).device))
    return [full for full, *_ in plan]


def set_mode_(model: nn.Module, mode: str) -> None:
    """Switch every EntropyQuant of ``model`` to ``mode`` ('noise' or 'ste')."""
    if mode not in MODES:
        raise ValueError(f"set_mode_: expected one of {MODES}, got {mode!r}")
    for _, q, _ in entropy_tensors(model):
        q.mode = mode


def set_temperature_(model: nn.Module, temperature: float) -> None:
    """Soft-round every EntropyQuant's noise proxy of ``model`` at ``temperature`` (0: the plain proxy)."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"set_temperature_: expected a finite temperature >= 0, got {temperature!r}")
    for _, q, _ in entropy_tensors(model):
        q.temperature = float(temperature)


@functools.lru_cache(maxsize=8)
def _layout(shapes: tuple[tuple[tuple[int, ...], int | None], ...], device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the concatenated tensors (shape, step axis): each element's tensor, each element's step row, and
    each step row's tensor (cached: the shapes never change)."""
    seg, rows, row_tensor, offset = [], [], [], 0
    for i, (shape, axis) in enumerate(shapes):
        n = math.prod(shape)
        seg.append(torch.full((n,), i, dtype=torch.long))
        if axis is None:
            rows.append(torch.full((n,), offset, dtype=torch.long))
            count = 1
        else:
            count, inner = shape[axis], math.prod(shape[axis + 1:])
            rows.append(torch.arange(n).div(inner, rounding_mode="floor") % count + offset)
        row_tensor.append(torch.full((count,), i, dtype=torch.long))
        offset += count
    return tuple(torch.cat(v).to(device) for v in (seg, rows, row_tensor))  # type: ignore[return-value]


def tensor_rate_bits(model: nn.Module, hard: bool | None = None) -> torch.Tensor:
    """Bits of each entropy-quantized tensor's symbols under its learned model, shape (tensors,), differentiable.

    ``hard`` None follows each quantizer's mode (the noise proxy with a fresh draw, or the STE symbols); True
    uses the exact symbols the bitstream will hold and the steps and model parameters it stores. Computed
    for all tensors at once (a handful of ops, whatever the number of tensors: small models are op-overhead
    bound).
    """
    found = [(q, x) for _, q, x in entropy_tensors(model)]
    if not found:
        return torch.zeros(0)
    qs = [q for q, _ in found]
    device = found[0][1].device
    seg, rows, row_tensor = _layout(tuple((tuple(x.shape), q.axis) for q, x in found), device)
    x = torch.cat([x.reshape(-1).float() for _, x in found])
    log_step, loc, log_scale = (torch.stack([q.raw for q in qs]) * PARAM_SPEED).unbind(1)
    if any(q.axis is not None for q in qs):  # one per tensor or per channel
        log_steps = torch.cat([q.log_step.reshape(-1) for q in qs])
    else:
        log_steps = log_step
    hard_flags = [hard if hard is not None else q.mode == "ste" for q in qs]
    is_hard = torch.tensor(hard_flags, device=device)
    scale = log_scale.exp().clamp_min(SCALE_MIN)
    per_tensor = torch.stack([torch.where(is_hard, stored_locs(loc), loc),
                              torch.where(is_hard, stored_scales(scale), scale)], 1)
    mu, sc = per_tensor.index_select(0, seg).unbind(1)  # one gather for the per-element model parameters
    steps = log_steps.exp()
    steps = torch.where(is_hard.index_select(0, row_tensor), stored_steps(steps), steps)
    step = steps.index_select(0, rows)
    y = x / step
    q = torch.round(y).clamp(-SYMBOL_MAX, SYMBOL_MAX)
    rounded = y + (q - y).detach()
    first = last = None
    if not all(hard_flags):
        noisy = _soft_rounded(y, [0.0 if h else quant.temperature for h, quant in zip(hard_flags, qs)], seg)
        noisy = noisy + (torch.rand_like(y) - 0.5)
    if all(hard_flags):
        y = rounded
    elif any(hard_flags):
        y = torch.where(is_hard.index_select(0, seg), rounded, noisy)
    else:
        y = noisy
    if any(hard_flags):  # the coded support of each tensor is [min q, max q]: its end bins take the tails
        h = is_hard.index_select(0, seg)
        big = torch.full((len(found),), float(SYMBOL_MAX + 1), device=device)
        q_lo = big.scatter_reduce(0, seg, q, "amin", include_self=False)
        q_hi = (-big).scatter_reduce(0, seg, q, "amax", include_self=False)
        first, last = h & (q == q_lo.index_select(0, seg)), h & (q == q_hi.index_select(0, seg))
    kinds = {q.kind for q in qs}
    if len(kinds) == 1:
        bits = symbol_bits(kinds.pop(), y, mu, sc, first, last)
        return torch.zeros(len(found), device=device).index_add(0, seg, bits)
    out = torch.zeros(len(found), device=device)
    for kind in sorted(kinds):
        pick = torch.tensor([q.kind == kind for q in qs], device=device).index_select(0, seg)
        sub = None if first is None else (first[pick], last[pick])
        bits = symbol_bits(kind, y[pick], mu[pick], sc[pick], *(sub or (None, None)))
        out = out.index_add(0, seg[pick], bits)
    return out


def _soft_rounded(y: torch.Tensor, temperatures: list[float], seg: torch.Tensor) -> torch.Tensor:
    """``y`` soft-rounded at each element's tensor's temperature (0: left as it is)."""
    if not any(t > 0 for t in temperatures):
        return y
    t = torch.tensor(temperatures, device=y.device, dtype=y.dtype).index_select(0, seg)
    return torch.where(t > 0, soft_round(y, t.clamp_min(1e-6)), y)


def rate_bits(model: nn.Module, hard: bool | None = None) -> torch.Tensor:
    """Σ over the entropy-quantized tensors of their bits (payload only, no side information); differentiable."""
    return tensor_rate_bits(model, hard).sum()


@torch.no_grad()
def hard_rate_bits(model: nn.Module) -> float:
    """The payload bits the bitstream's coder will spend on the current symbols, by the learned models."""
    return float(rate_bits(model, hard=True))


@torch.no_grad()
def export_entropy(model: nn.Module) -> list[QuantizedTensor]:
    """The entropy-quantized tensors as ``QuantizedTensor``s, with their learned coding model in ``entropy``.

    ``dequantize()`` of each equals the eval-mode forward bit for bit; symbols lie in ±32767.
    """
    out = []
    for full, q, x in entropy_tensors(model):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"export_entropy: {full!r}: expected finite values, got NaN or inf")
        sym = q.symbols(x).to(torch.int32).cpu().numpy()
        loc, scale = (float(v) for v in q.stored_model())
        step = q.stored_step().reshape(-1).cpu().to(torch.float16).numpy()
        out.append(QuantizedTensor(name=full, shape=tuple(x.shape), symbols=sym, scales=step, axis=q.axis,
                           bits=nominal_bits(int(np.abs(sym).max()) if sym.size else 0),
                           entropy=(q.kind, loc, scale)))
    return out


@torch.no_grad()
def hard_tensor_bits(model: nn.Module) -> list[float]:
    """Per entropy-quantized tensor (model order), the payload bits of its exact symbols under its model."""
    return tensor_rate_bits(model, hard=True).tolist()


@torch.no_grad()
def rescale_steps_(model: nn.Module, factor: float) -> None:
    """Multiply every step by ``factor`` (and the entropy models' loc and scale by 1/factor, so they describe
    the new symbols): a coarser (> 1) or finer (< 1) quantization of the same weights, for last-mile rate
    control after training."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"rescale_steps_: expected a finite factor > 0, got {factor!r}")
    for _, q, _ in entropy_tensors(model):
        q.raw[0].add_(math.log(factor) / PARAM_SPEED)
        q.raw[1].div_(factor)
        q.raw[2].sub_(math.log(factor) / PARAM_SPEED)
