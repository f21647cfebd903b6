"""SBS: Single-path Bit Sharing mixed-precision search with pruning (TPAMI 2023), for any ``nn.Module``.

Each selected tensor gets an ``SBSQuant`` parametrization (stacked on a prune ``Mask`` if any) with a learnable
clipping range ``v``, one learnable threshold per width step and one pruning threshold. For the default
candidates (2, 4, 8) and the paper's grid (the mid-tread grid is analogous, see Grids)::

    z  = ½(clip(w/v, -1, 1) + 1)                    in [0, 1];   D(z, s) = s·round(z/s),  s_b = 1/(2**b - 1)
    z₂ = D(z, s₂);  ε₄ = D(z - z₂, s₄);  z₄ = z₂ + ε₄;  ε₈ = D(z - z₄, s₈)   (nested: b | b' for each step)
    g₄ = 1(e₄ > α₄),  g₈ = 1(e₈ > α₈),  e_b = rms(z - z_prev) / s_prev   (the error the finer grid could fix, in
                                                                          steps of the coarser grid: 0 .. 0.5)
    ẑ  = z₂ + g₄(ε₄ + g₈·ε₈);   Q(w) = v(2ẑ - 1)
    g_c = 1(mean|w_c| / v > α_p)  per group of ``group_size`` channels along the tensor's axis (the 0-bit choice;
                                  with one v per channel, ``SBSConfig.v_per_channel``, the largest v)

The residuals are computed in integer units (``k_b = r·k_prev + round(z/s_b - r·k_prev)``, r = s_prev/s_b), which
equals direct quantization at each width. Gates are hard in the forward and use the derivative of
``sigmoid((e - α)/τ)`` in the backward; rounding uses a straight-through estimator, so ``v`` gets the LSQ/PACT-like
gradient ``(Q(w) - w)/v`` inside the range and ``±1`` outside.

Exactness: the forward value is ``m·S`` in float32 with integer symbols ``m`` and an fp16 scale ``S``; for the
paper grid ``m = 2k - (2**b - 1)`` (odd integers, ``|m| <= 2**b - 1``) and ``S = fp16(v / (2**b - 1))``; for the
mid-tread grid ``m = k`` and ``S = fp16(v / 2**(b-1))``. So ``export_sbs`` gives ``QuantizedTensor``s whose
``dequantize()`` equals the eval forward bit for bit.

Grids (``SBSConfig.grid``):
    ``"paper"``: the paper's 2**b-level grid ``v(2k/(2**b - 1) - 1)``, without a zero level.
    ``"midtread"`` (default; a deviation from the paper): symmetric grid with a zero level, step ``v·2**-(b-1)``,
    symbols ``m = clamp(round(w/step), ±(2**(b-1) - 1))`` (the range of ``compress.quantize``), nested for any
    increasing candidates (the 8-bit grid contains the 4-bit grid contains the 2-bit grid {-v/2, 0, v/2}); ``v``
    starts at ``max|w|·2**(B-1)/(2**(B-1) - 1)`` (B the widest candidate) so the finest grid reaches max|w|.
    Why the default: in ``tools/bench_sbs_toy.py`` (Fourier MLP, 2 seeds × 4 λ, search + freeze + QAT) mid-tread
    beat the paper grid by +0.37 dB mean PSNR at matched entropy-coded size (+0.16/+0.58 per seed) and +0.18 dB at
    matched nominal bits (-0.02/+0.37): at the same widths it codes 5-20% smaller (the zero level is the mode of
    the weights and coincides with pruned groups). Small and noisy, but never worse by more than 0.02 dB.

Pipeline: ``sbs_`` -> search with ``sbs_loss`` (or ``SBSHook``) -> ``freeze_gates_`` -> QAT -> ``export_sbs``.
The rate term, the objective and the training hook are in ``compress.sbs_rate``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils import parametrize

from compress.entropy_quant import symbol_bits
from compress.prune import FilterFn, find_parametrization, input_of, named_tensors, remember_param_order
from bitstream.tensors import QuantizedTensor
from compress.numerics import FP16_MAX, normalize_axis, round_fp16
from compress.quantize import AxisFn, FakeQuant, QuantConfig, default_axis, export_quantized

__all__ = [
    "GRIDS",
    "SBSConfig",
    "SBSQuant",
    "chosen_widths",
    "export_sbs",
    "freeze_gates_",
    "not_sbs_filter",
    "sbs_",
    "sbs_tensors",
]

GRIDS = ("paper", "midtread")
RATES = ("coded", "nominal")
LAPLACE_SCALE_MIN = 0.05  # symbols: the rate model's scale never collapses onto a point mass
V_SPEED = 10.0  # v = exp(V_SPEED * log_v): Adam moves v by ~V_SPEED·lr relative per step (see SBSQuant)
GATE_SPEED = 0.1  # thresholds α = GATE_SPEED · α_raw: Adam moves them by ~GATE_SPEED·lr per step (see SBSQuant)


@dataclass(frozen=True)
class SBSConfig:
    """SBS search space and initialisation (docs/design.md §5)."""

    candidates: tuple[int, ...] = (2, 4, 8)  # bit widths, increasing; paper grid: each divides the next
    group_size: int = 4  # channels per pruning group along the tensor's axis (axis None: the whole tensor)
    grid: str = "midtread"  # "midtread" (zero level, step v·2**-(b-1)) or "paper" (no zero level); see GRIDS
    prune: bool = True  # learn per-group pruning gates (the 0-bit choice)
    init_threshold: float = 0.01  # initial α_b in steps of the coarser grid (0..0.5); small = gates start open
    init_prune_threshold: float = 0.0  # initial α_p in units of v (0 = only all-zero groups are pruned)
    rate: str = "coded"  # R of the search: "coded" (entropy-coded size estimate) or "nominal" (params x bits)
    temperature: float = 0.1  # τ of the bit-gate sigmoid surrogate (in steps of the coarser grid)
    prune_temperature: float = 0.1  # τ of the pruning-gate sigmoid surrogate (in units of v)
    v_per_channel: bool = False  # one v per channel along the tensor's axis (one fp16 scale each in the file);
    #   False: one v per tensor, as in the paper (see SBSQuant)
    version: int = 1  # bump when the meaning of a field changes

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"SBSConfig.grid: expected one of {GRIDS}, got {self.grid!r}")
        c = self.candidates
        hi = 15 if self.grid == "paper" else 16  # paper symbols need b + 1 <= 16 bits
        if (not isinstance(c, tuple) or not c
                or any(isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= hi for b in c)):
            raise ValueError(f"SBSConfig.candidates: expected a non-empty tuple of ints in [2, {hi}], got {c!r}")
        if any(b >= b2 for b, b2 in zip(c, c[1:])):
            raise ValueError(f"SBSConfig.candidates: expected strictly increasing widths, got {c!r}")
        if self.grid == "paper" and any(b2 % b for b, b2 in zip(c, c[1:])):
            raise ValueError(
                f"SBSConfig.candidates: the paper grid nests only when each width divides the next "
                f"(e.g. (2, 4, 8)), got {c!r}; use grid='midtread' for other sets"
            )
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
            raise ValueError(f"SBSConfig.group_size: expected an int >= 1, got {self.group_size!r}")
        for name in ("prune", "v_per_channel"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SBSConfig.{name}: expected a bool, got {getattr(self, name)!r}")
        for name, lo, strict in (("init_threshold", 0.0, False), ("init_prune_threshold", 0.0, False),
                                 ("temperature", 0.0, True), ("prune_temperature", 0.0, True)):
            x = getattr(self, name)
            ok = not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)
            if not ok or x < lo or (strict and x == lo):
                raise ValueError(f"SBSConfig.{name}: expected a finite number {'>' if strict else '>='} {lo}, "
                                 f"got {x!r}")
        if self.rate not in RATES:
            raise ValueError(f"SBSConfig.rate: expected one of {RATES}, got {self.rate!r}")
        if self.version != 1:
            raise ValueError(f"SBSConfig.version: expected 1, got {self.version!r}")


def _units(bits: int, grid: str) -> int:
    """Steps per unit of the normalised weight: paper 2**b - 1 (z in [0, 1]), mid-tread 2**(b-1) (u in [-1, 1])."""
    return (1 << bits) - 1 if grid == "paper" else 1 << (bits - 1)


def _ste_gate(stat: torch.Tensor, alpha: torch.Tensor, tau: float) -> torch.Tensor:
    """Hard ``1(stat > alpha)`` forward, derivative of ``sigmoid((stat - alpha)/tau)`` backward."""
    hard = (stat > alpha).to(stat.dtype)
    soft = torch.sigmoid((stat - alpha) / tau)
    return hard + (soft - soft.detach())


class _State(NamedTuple):
    level: int  # index of the chosen candidate (hard)
    ks: list[torch.Tensor]  # integer levels k_b per candidate up to what was needed (float32, exact); frozen: only
    #   the chosen width's entry is computed (the others are placeholders)
    ts: list[torch.Tensor]  # the same in the grids' units before rounding, with gradients
    gates: list[torch.Tensor]  # cumulative gates G_i = g_1···g_i (STE), i >= 1; empty when frozen
    keep: torch.Tensor  # (n_groups,) STE keep gates (1 = kept)
    keep_hard: torch.Tensor  # (n_groups,) bool


class CodedSegment(NamedTuple):
    """One tensor's symbols at one width, flattened, for ``coded_bits``."""

    y: torch.Tensor  # symbols about their centre, STE (gradients through the weights and v)
    k: torch.Tensor  # integer levels in [-units, units] (detached)
    kept: torch.Tensor  # bool: not pruned (hard)
    keep: torch.Tensor  # float: the keep gates' STE value (1 / 0, surrogate gradients)
    centre: float  # k - centre is the symbol about 0 (paper grid: units / 2)
    units: int


def coded_bits(segments: list[list[CodedSegment]]) -> list[list[torch.Tensor]]:
    """Estimated entropy-coded bits of the kept symbols of each segment (one list per tensor), in one pass.

    Value: each symbol's self-information under the empirical distribution of its segment's kept symbols (what
    an adaptive or histogram model codes to; within 0.5% of the bitstream's payload in the tests). Gradient: that
    of the symbol's cost under a zero-centred discrete Laplace fitted to the segment, through the STE symbols,
    so it pulls weights toward zero and ``v`` toward coarser steps. Pruned groups count as free (their zeros cost
    a fraction of a bit each). Computed for all segments at once: small models are per-op overhead bound.
    """
    flat = [s for per_tensor in segments for s in per_tensor]
    if not flat:
        return [[] for _ in segments]
    device = flat[0].y.device
    lengths = torch.tensor([s.y.numel() for s in flat], device=device)
    seg = torch.repeat_interleave(torch.arange(len(flat), device=device), lengths)
    y = torch.cat([s.y for s in flat])
    kept = torch.cat([s.kept for s in flat])
    keep = torch.cat([s.keep for s in flat])
    with torch.no_grad():
        k = torch.cat([s.k for s in flat])
        centre = torch.tensor([s.centre for s in flat], device=device)
        bins = torch.tensor([2 * s.units + 1 for s in flat], device=device)
        first = torch.cumsum(bins, 0) - bins  # each segment's histogram: bins [first, first + 2·units]
        units = torch.tensor([s.units for s in flat], device=device)
        w = kept.to(y.dtype)
        n = torch.zeros(len(flat), device=device).index_add(0, seg, w).clamp_min(1)
        mean_abs = torch.zeros(len(flat), device=device).index_add(0, seg, (k - centre[seg]).abs() * w) / n
        scale = mean_abs.clamp_min(LAPLACE_SCALE_MIN)  # Laplace MLE about 0
        index = (first + units)[seg] + k.long()
        counts = torch.bincount(index, weights=w, minlength=int(bins.sum()))
        info = torch.where(kept, torch.log2(n[seg] / counts[index].clamp_min(1)), 0.0)  # -log2 p, empirical
    surrogate = symbol_bits("laplace", y, torch.zeros((), device=device), scale[seg])
    bits = (info + (surrogate - surrogate.detach())) * keep
    per_segment = torch.zeros(len(flat), dtype=torch.float64, device=device).index_add(0, seg, bits.double())
    out, i = [], 0
    for per_tensor in segments:
        out.append(list(per_segment[i:i + len(per_tensor)].unbind()))
        i += len(per_tensor)
    return out


class SBSQuant(nn.Module):
    """Parametrization: SBS bit-sharing quantization with learnable width gates and channel-group pruning.

    Args:
        shape: the parametrized tensor's shape.
        axis: channel axis of the pruning groups (>= 0), or None (the whole tensor is one group).
        candidates, grid, group_size, prune, init_threshold, init_prune_threshold, temperature,
        prune_temperature, v_per_channel: see ``SBSConfig``.
        v_init: initial clipping range v: a number, or one per channel along ``axis`` with ``v_per_channel``.

    Learnable: ``log_v`` (0-D, or (C,) along ``axis`` with ``v_per_channel``; ``v = exp(V_SPEED·log_v)``),
    ``alpha_raw`` (one threshold per width step) and ``alpha_p_raw`` (0-D): the thresholds ``alpha`` and
    ``alpha_p`` over ``GATE_SPEED``. Buffers: ``frozen_bits`` (0 while searching, else the fixed width) and
    ``frozen_keep`` (the fixed group mask). v is stored as a sped-up logarithm, as ``compress.entropy_quant``
    stores its steps, so that it moves by the same relative amount per step whatever its scale, fast enough for
    the rate term to trade step size within one search stage. The thresholds are stored slowed down instead: Adam
    moves a parameter by ~lr per step whatever its gradient's size, and the distortion's gradient on a threshold
    is mostly noise, so at the encoder's lr (1e-2) a plainly stored threshold can walk ~lr·√steps ≈ 0.4 in a
    1,800-step search, its whole range (searches stored so ended with 40-49% zeros whatever λ on carphone). Slowed
    down 10x, the noise's walk shrinks 10x while a steady rate gradient still crosses the range within a search.
    """

    def __init__(self, shape: tuple[int, ...], axis: int | None, candidates: tuple[int, ...] = (2, 4, 8),
                 grid: str = "midtread", group_size: int = 4, prune: bool = True,
                 v_init: float | torch.Tensor = 1.0, init_threshold: float = 0.01, init_prune_threshold: float = 0.0,
                 temperature: float = 0.1, prune_temperature: float = 0.1, rate: str = "coded",
                 v_per_channel: bool = False) -> None:
        super().__init__()
        SBSConfig(candidates=tuple(candidates), grid=grid, group_size=group_size, prune=prune,
                  v_per_channel=v_per_channel)  # validates
        self.shape, self.axis = tuple(shape), normalize_axis(axis, len(shape))
        self.candidates, self.grid, self.group_size, self.prune = tuple(candidates), grid, group_size, prune
        self.temperature, self.prune_temperature = float(temperature), float(prune_temperature)
        if rate not in RATES:
            raise ValueError(f"SBSQuant: rate: expected one of {RATES}, got {rate!r}")
        self.rate_kind = rate
        channels = 1 if self.axis is None else self.shape[self.axis]
        v_shape = (channels,) if v_per_channel and self.axis is not None else ()
        v0 = torch.as_tensor(v_init, dtype=torch.float64)
        if v0.ndim == 0:
            v0 = v0.expand(v_shape)
        if tuple(v0.shape) != v_shape or not bool((v0 > 0).all()) or not bool(torch.isfinite(v0).all()):
            raise ValueError(f"SBSQuant: v_init: expected a finite v > 0 of shape {v_shape} (or a number), got "
                             f"shape {tuple(v0.shape)}")
        self.log_v = nn.Parameter((torch.log(v0) / V_SPEED).float().clone())
        self.alpha_raw = nn.Parameter(torch.full((len(candidates) - 1,), float(init_threshold) / GATE_SPEED))
        self.alpha_p_raw = nn.Parameter(torch.tensor(float(init_prune_threshold) / GATE_SPEED), requires_grad=prune)
        gsize = channels if self.axis is None else group_size
        self.n_groups = max(1, math.ceil(channels / gsize))
        group_of = torch.arange(channels) // gsize  # (C,)
        per_channel = math.prod(self.shape) // channels if channels else 0
        self.register_buffer("group_of", group_of, persistent=False)
        self.register_buffer("group_numel", torch.bincount(group_of, minlength=self.n_groups) * per_channel,
                             persistent=False)  # (n_groups,) int64: elements per group
        self.register_buffer("frozen_bits", torch.zeros((), dtype=torch.int64))
        self.register_buffer("frozen_keep", torch.ones(self.n_groups, dtype=torch.bool))
        self._rate_cache: tuple | None = None  # (input, versions, rate) of the last forward

    # ---- shared pieces -------------------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return int(self.frozen_bits) != 0

    @property
    def alpha(self) -> torch.Tensor:
        """The width gates' thresholds (steps of the coarser grid), with gradient to ``alpha_raw``."""
        return self.alpha_raw * GATE_SPEED

    @property
    def alpha_p(self) -> torch.Tensor:
        """The pruning threshold (units of v), with gradient to ``alpha_p_raw``."""
        return self.alpha_p_raw * GATE_SPEED

    @torch.no_grad()
    def set_thresholds(self, alpha: float | list[float] | None = None, alpha_p: float | None = None) -> None:
        """Set the thresholds in their own units (``alpha``: one value for all width steps, or one per step)."""
        if alpha is not None:
            self.alpha_raw.copy_(torch.as_tensor(alpha, dtype=torch.float32) / GATE_SPEED)
        if alpha_p is not None:
            self.alpha_p_raw.fill_(float(alpha_p) / GATE_SPEED)

    def _v(self) -> torch.Tensor:
        """v: 0-D, or (C,) with ``v_per_channel``."""
        return torch.exp(self.log_v * V_SPEED).clamp(1e-12, FP16_MAX)

    @property
    def scale_axis(self) -> int | None:
        """The axis the scales run along (None: one scale for the tensor)."""
        return self.axis if self.log_v.ndim else None

    def _broadcast(self, v: torch.Tensor, ndim: int) -> torch.Tensor:
        """v (or a scale) broadcastable against the tensor."""
        if v.ndim == 0:
            return v
        shape = [1] * ndim
        shape[self.axis] = -1
        return v.reshape(shape)

    def _normalise(self, x: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
        u = (x.float() / self._broadcast(self._v() if v is None else v, x.ndim)).clamp(-1.0, 1.0)
        return (u + 1.0) * 0.5 if self.grid == "paper" else u

    def _target(self, u: torch.Tensor, bits: int) -> torch.Tensor:
        """``u`` in steps of the ``bits`` grid (clamped to the mid-tread symbol range)."""
        units = _units(bits, self.grid)
        t = u * units
        return t if self.grid == "paper" else t.clamp(-(units - 1), units - 1)

    def _channelwise(self, t: torch.Tensor) -> torch.Tensor:
        """(C, rest) view with channels first (C = 1 for axis None)."""
        return t.reshape(1, -1) if self.axis is None else t.movedim(self.axis, 0).reshape(t.shape[self.axis], -1)

    def _expand(self, per_group: torch.Tensor, ndim: int) -> torch.Tensor:
        """(n_groups,) -> broadcastable against the tensor."""
        if self.axis is None:
            return per_group.reshape([1] * ndim)
        shape = [1] * ndim
        shape[self.axis] = -1
        return per_group[self.group_of].reshape(shape)

    def _state(self, x: torch.Tensor, u: torch.Tensor) -> _State:
        if tuple(x.shape) != self.shape:
            raise ValueError(f"SBSQuant: expected a tensor of shape {self.shape}, got {tuple(x.shape)}")
        c = self.candidates
        if self.frozen:
            level = c.index(int(self.frozen_bits))
            keep_hard = self.frozen_keep
            keep = keep_hard.to(torch.float32)
        else:
            level = len(c) - 1
            if self.prune:
                # in units of the tensor's range (per-channel v: the widest channel's), so that a small group
                # stays small next to the others whatever its own v
                v_range = self._v().detach().amax()
                a = self._channelwise(x.float()).abs().sum(dim=1)  # (C,)
                stat = torch.zeros(self.n_groups, device=x.device).index_add(0, self.group_of, a)
                stat = stat / self.group_numel.clamp_min(1) / v_range  # mean |w| / v per group
                keep = _ste_gate(stat, self.alpha_p, self.prune_temperature)
                keep_hard = keep.detach() > 0.5
            else:
                keep = torch.ones(self.n_groups, device=x.device)
                keep_hard = keep > 0.5
        ks: list[torch.Tensor] = []
        ts: list[torch.Tensor] = []
        gates: list[torch.Tensor] = []
        if self.frozen:  # one width: its levels directly (equal to the nested ones but for exact ties)
            t = self._target(u, c[level])
            return _State(level, [t] * level + [torch.round(t.detach())], [t] * (level + 1), gates, keep, keep_hard)
        # the width gates' statistics see v as a constant, like the pruning statistic: else the rate term closes a
        # gate by growing v until the residuals vanish: v ran away until whole tensors rounded to zero (measured on
        # carphone, even without the symbols' rate gradient: 8.8 KB at 30.7 dB for a 16.3 KB target)
        u_stat = self._normalise(x, self._v().detach())
        prev_units = 0
        for i, b in enumerate(c[: level + 1]):
            units = _units(b, self.grid)
            t = self._target(u, b)  # with grad through v and the weights (for the coded rate's surrogate)
            if i == 0:
                k = torch.round(t.detach())
            else:
                r = units // prev_units
                base = ks[-1] * r
                k = base + torch.round(t.detach() - base)
                if not self.frozen:
                    t_stat = self._target(u_stat, b)
                    e = ((t_stat / r - ks[-1]).square().mean() + 1e-12).sqrt()  # rms(z - z_prev) / s_prev
                    g = _ste_gate(e, self.alpha[i - 1], self.temperature)
                    gates.append(g if not gates else gates[-1] * g)
            ks.append(k)
            ts.append(t)
            prev_units = units
        if not self.frozen:
            level = 0
            for g in gates:
                if g.detach() < 0.5:
                    break
                level += 1
        return _State(level, ks, ts, gates, keep, keep_hard)

    def _scale(self, bits: int) -> torch.Tensor:
        """fp16-representable float32 scale S with value = m·S: 0-D, or (C,) with ``v_per_channel``."""
        return round_fp16((self._v().detach() / _units(bits, self.grid)).clamp(max=FP16_MAX))

    def _symbols(self, k: torch.Tensor, bits: int) -> torch.Tensor:
        return 2.0 * k - _units(bits, self.grid) if self.grid == "paper" else k

    # ---- parametrization -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self._normalise(x)
        st = self._state(x, u)
        bits = self.candidates[st.level]
        with torch.no_grad():
            m = self._symbols(st.ks[st.level], bits)
            value = torch.where(self._expand(st.keep_hard, x.ndim), m * self._broadcast(self._scale(bits), x.ndim), 0.0)
        # Surrogate with the gradients: STE through rounding, gate surrogates weighting the residuals.
        units = [_units(b, self.grid) for b in self.candidates]
        if self.frozen:
            zhat = u + (st.ks[st.level] / units[st.level] - u).detach()
        else:
            zhat = u + (st.ks[0] / units[0] - u).detach()
            for i, g in enumerate(st.gates, start=1):
                zhat = zhat + g * (st.ks[i] / units[i] - st.ks[i - 1] / units[i - 1]).detach()
        y = self._broadcast(self._v(), x.ndim) * (2.0 * zhat - 1.0 if self.grid == "paper" else zhat)
        y = y * self._expand(st.keep, x.ndim)
        self._rate_cache = (x, self._cache_key(x), st)  # rate_bits after a forward reuses the gates
        return (value + (y - y.detach())).to(x.dtype)  # value exactly, surrogate gradients

    # ---- search results ------------------------------------------------------------------------------------
    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """Bits of this tensor at its chosen width, per ``SBSConfig.rate`` (float64; hard forward, surrogate
        gradients). ``compress.sbs_rate.rate_bits`` computes the same for all tensors at once."""
        st = self.current_state(x)
        per_width = None if self.rate_kind == "nominal" else coded_bits([self.coded_segments(st, x.ndim)])[0]
        return self.combine_rate(st, per_width)

    def current_state(self, x: torch.Tensor) -> _State:
        """The gates and levels of the last forward when nothing changed since (same input tensor and versions,
        same grad mode), so ``loss + λ·log(rate_bits(model))`` costs no second pass and shares the forward's
        graph; else computed afresh."""
        cache = self._rate_cache
        if cache is not None and cache[0] is x and cache[1] == self._cache_key(x):
            return cache[2]
        return self._state(x, self._normalise(x))

    def combine_rate(self, st: _State, coded: list[torch.Tensor] | None = None) -> torch.Tensor:
        """R at the chosen width, as R_0 + Σ_i G_i (R_i - R_{i-1}) so the gates' surrogates see what a width
        step costs. ``coded``: the coded bits at each width of ``coded_segments`` (None: the nominal rate)."""
        if coded is None:
            kept = (st.keep.double() * self.group_numel).sum()
            per_width = [kept * b for b in self.candidates]
        elif self.frozen:
            return coded[0]
        else:
            per_width = coded
        if self.frozen:
            return per_width[st.level]
        bits = per_width[0]
        for i, g in enumerate(st.gates, start=1):
            bits = bits + g.double() * (per_width[i] - per_width[i - 1])
        return bits

    def coded_segments(self, st: _State, ndim: int) -> list[CodedSegment]:
        """The symbols whose coded bits the rate needs: the chosen width's when frozen, else every width's."""
        keep = self._expand(st.keep, ndim)
        kept = self._expand(st.keep_hard, ndim)
        out = []
        for i in ([st.level] if self.frozen else range(len(st.ks))):
            t, k = st.ts[i], st.ks[i]
            units = _units(self.candidates[i], self.grid)
            y = t + (k - t).detach()  # the symbol in grid units, gradient through t
            # paper: odd symbols m = 2k - units, in units of 2 a unit-spaced grid about 0
            centre = units / 2 if self.grid == "paper" else 0.0
            out.append(CodedSegment((y - centre).reshape(-1), k.reshape(-1), kept.expand_as(k).reshape(-1),
                                    keep.expand_as(k).reshape(-1), centre, units))
        return out

    def _cache_key(self, x: torch.Tensor) -> tuple:
        return (x._version, torch.is_grad_enabled(), self.log_v._version, self.alpha_raw._version,
                self.alpha_p_raw._version,
                self.frozen_bits._version, self.frozen_keep._version)

    def __getstate__(self) -> dict:  # deepcopy/pickle: never carry the cached graph
        state = self.__dict__.copy()
        state["_rate_cache"] = None
        return state

    @torch.no_grad()
    def choice(self, x: torch.Tensor) -> tuple[int, torch.Tensor]:
        """(chosen width, (n_groups,) bool keep mask), hard."""
        st = self._state(x, self._normalise(x))
        return self.candidates[st.level], st.keep_hard.clone()

    @torch.no_grad()
    def freeze(self, x: torch.Tensor) -> None:
        """Fix the current width and group mask; α and α_p stop training (QAT with fixed widths follows)."""
        bits, keep = self.choice(x)
        self.frozen_bits.fill_(bits)
        self.frozen_keep.copy_(keep)
        self.alpha_raw.requires_grad_(False)
        self.alpha_p_raw.requires_grad_(False)

    @torch.no_grad()
    def export(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(int32 symbols, float32 fp16-representable scales: (1,), or (C,) along ``scale_axis``; QuantizedTensor bits)."""
        u = self._normalise(x)
        st = self._state(x, u)
        bits = self.candidates[st.level]
        m = torch.where(self._expand(st.keep_hard, x.ndim), self._symbols(st.ks[st.level], bits), 0.0)
        qbits = bits + 1 if self.grid == "paper" else bits  # |m| <= 2**(qbits-1) - 1 (compress.quantize)
        return m.to(torch.int32), self._scale(bits).reshape(-1), qbits

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if prefix + "v" in state_dict and prefix + "log_v" not in state_dict:  # a checkpoint with a plain v
            v = state_dict.pop(prefix + "v")
            state_dict[prefix + "log_v"] = torch.log(v.abs().clamp_min(1e-12)) / V_SPEED
        for name in ("alpha", "alpha_p"):  # a checkpoint with plain thresholds
            if prefix + name in state_dict and prefix + name + "_raw" not in state_dict:
                state_dict[prefix + name + "_raw"] = state_dict.pop(prefix + name) / GATE_SPEED
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.frozen and int(self.frozen_bits) not in self.candidates:
            raise ValueError(f"SBSQuant: expected frozen_bits in {self.candidates} (or 0), got {int(self.frozen_bits)}")
        if self.frozen:  # a resumed QAT stage must build the same optimizer as the interrupted one
            self.alpha_raw.requires_grad_(False)
            self.alpha_p_raw.requires_grad_(False)

    def extra_repr(self) -> str:
        return (f"shape={self.shape}, axis={self.axis}, candidates={self.candidates}, grid={self.grid!r}, "
                f"groups={self.n_groups}, v_per_channel={self.log_v.ndim > 0}, frozen_bits={int(self.frozen_bits)}")


def sbs_tensors(model: nn.Module):
    """Yield ``(full_name, module, param_name, sbs, pre_value)`` for every SBS-quantized tensor (model order)."""
    for full, module, param_name, _ in named_tensors(model):
        found = find_parametrization(module, param_name, SBSQuant)
        if found is not None:
            yield full, module, param_name, found[1], input_of(full, module, param_name, found[0])


def not_sbs_filter(base: FilterFn | None = None) -> FilterFn:
    """A ``FilterFn`` selecting the tensors without an SBSQuant (and accepted by ``base``, if given)."""
    def keep(module_name: str, module: nn.Module, param_name: str, param: torch.Tensor) -> bool:
        if find_parametrization(module, param_name, SBSQuant) is not None:
            return False
        return base is None or base(module_name, module, param_name, param)
    return keep


def _init_v(x: torch.Tensor, config: SBSConfig, axis: int | None) -> float | torch.Tensor:
    """max|w| (per channel along ``axis`` with ``config.v_per_channel``); 1 where all weights are zero."""
    x = x.detach()
    if config.v_per_channel and axis is not None and x.numel():
        amax = x.abs().movedim(axis, 0).reshape(x.shape[axis], -1).amax(dim=1).double()
    else:
        amax = torch.tensor(float(x.abs().max()) if x.numel() else 0.0, dtype=torch.float64)
    if not bool(torch.isfinite(amax).all()):
        raise ValueError("expected finite values, got NaN or inf")
    if config.grid == "midtread":  # the finest grid's largest level v(1 - 2**-(b-1)) reaches max|w|
        units = _units(config.candidates[-1], "midtread")
        amax = amax * (units / (units - 1))
    amax = torch.where(amax == 0, 1.0, amax)
    return float(amax) if amax.ndim == 0 else amax


def sbs_(model: nn.Module, config: SBSConfig, filter_fn: FilterFn | None = None,
         axis_fn: AxisFn | None = None) -> list[str]:
    """Register ``SBSQuant`` on the selected parameters of ``model`` (in place) for the SBS search.

    Stacks on a prune ``Mask`` (``v`` starts at the masked tensor's max |w|; mid-tread: scaled so the finest grid
    reaches it). Call several times with disjoint ``filter_fn`` for per-layer choices (e.g. a fixed 8-bit head:
    ``SBSConfig(candidates=(8,), prune=False)``).

    Args:
        model: any module; modified in place.
        config: the search space.
        filter_fn: ``filter_fn(module_name, module, param_name, param) -> bool``; default every parameter (grids,
            convolutions incl. depthwise, linear layers, biases).
        axis_fn: ``axis_fn(full_name, param) -> int | None``: the channel axis of the pruning groups; default
            ``compress.quantize.default_axis`` (0 for ndim >= 2, the whole tensor for 1-D/0-D).

    Returns:
        The full names of the SBS-quantized tensors.

    Raises:
        ValueError: a selected tensor already has an SBSQuant or a FakeQuant, a bad axis, non-finite values.
    """
    if not isinstance(config, SBSConfig):
        raise TypeError(f"sbs_: expected an SBSConfig, got {type(config).__name__}")
    plan = []
    for full, module, param_name, param in named_tensors(model, filter_fn):
        if parametrize.is_parametrized(module, param_name):
            plist = module.parametrizations[param_name]
            bad = [type(p).__name__ for p in plist if isinstance(p, (SBSQuant, FakeQuant))]
            if bad:
                raise ValueError(f"sbs_: {full!r} already has {bad}; expected an unquantized tensor")
        try:
            axis = normalize_axis((axis_fn or default_axis)(full, param), param.ndim)
            v = _init_v(getattr(module, param_name), config, axis)
        except ValueError as e:
            raise ValueError(f"sbs_: {full!r} (shape {tuple(param.shape)}): {e}") from None
        plan.append((full, module, param_name, param, axis, v))
    for _, module, param_name, param, axis, v in plan:
        remember_param_order(module)
        q = SBSQuant(tuple(param.shape), axis, config.candidates, config.grid, config.group_size, config.prune, v,
                     config.init_threshold, config.init_prune_threshold, config.temperature,
                     config.prune_temperature, config.rate, config.v_per_channel).to(param.device)
        parametrize.register_parametrization(module, param_name, q)
    return [full for full, *_ in plan]


@torch.no_grad()
def freeze_gates_(model: nn.Module) -> dict[str, tuple[int, float]]:
    """Fix every SBS tensor's chosen width and group mask (in place); training continues as QAT.

    Returns:
        ``chosen_widths(model)`` after freezing.
    """
    for _, _, _, q, x in sbs_tensors(model):
        q.freeze(x)
    return chosen_widths(model)


@torch.no_grad()
def chosen_widths(model: nn.Module) -> dict[str, tuple[int, float]]:
    """``{name: (bits, pruned fraction of the elements)}``; bits 0 when the whole tensor is pruned."""
    out: dict[str, tuple[int, float]] = {}
    for full, _, _, q, x in sbs_tensors(model):
        bits, keep = q.choice(x)
        pruned = float(q.group_numel[~keep].sum()) / max(1, x.numel())
        out[full] = (bits if bool(keep.any()) and x.numel() else 0, pruned if x.numel() else 1.0)
    return out


@torch.no_grad()
def export_sbs(model: nn.Module, fallback: QuantConfig | None = None, axis_fn: AxisFn | None = None,
               filter_fn: FilterFn | None = None) -> list[QuantizedTensor]:
    """Export the SBS tensors as ``QuantizedTensor``s (one fp16 scale each, or one per channel with ``v_per_channel``);
    ``dequantize()`` equals the eval forward.

    Pruned groups have symbols 0; ``bits`` is b + 1 for the paper grid (odd symbols up to ±(2**b - 1)) and b for
    the mid-tread grid, so ``load_dequantized_`` and the bitstream accept them.

    Args:
        fallback: if given, the other tensors selected by ``filter_fn`` are exported with
            ``export_quantized(model, fallback, axis_fn, ...)``; the result is then in ``named_tensors`` order.
        axis_fn, filter_fn: for the fallback tensors only.
    """
    out: dict[str, QuantizedTensor] = {}
    for full, _, _, q, x in sbs_tensors(model):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"export_sbs: {full!r}: expected finite values, got NaN or inf")
        m, s, qbits = q.export(x)
        out[full] = QuantizedTensor(name=full, shape=tuple(x.shape), symbols=m.cpu().numpy(),
                            scales=s.cpu().to(torch.float16).numpy(), axis=q.scale_axis, bits=qbits)
    if fallback is None:
        return list(out.values())
    for qt in export_quantized(model, fallback, axis_fn, not_sbs_filter(filter_fn)):
        out[qt.name] = qt
    order = [full for full, *_ in named_tensors(model)]
    return [out[n] for n in order if n in out]
