"""``htsgd``: heavy-tailed noise on the iterates (Wan, Barsbey, Zaidi, Şimşekli: implicit compressibility of
networks trained with heavy-tailed SGD), then the prunable rows pruned before coding.

After every optimizer step of the chosen stages, each eligible weight moves by θ ← θ + σ·η^{1/α}·S with η the
step's learning rate and S a symmetric α-stable draw, one scalar per output row (a Linear's row, a depthwise
filter) added to the whole row. Eligible: the blocks' MLP and depthwise weights and the encodings' projections;
not the grids, the stem, the head or biases. Heavy-tailed row noise makes the rows' norms heavy-tailed, so a few
rows carry most of a layer's energy. On entering the prune stage each layer's smallest-norm rows are pruned
(zeroed by a mask, kept zero in the fine-tune) while the pruned share of the layer's energy stays within
``energy``: the prunable fraction, reported in ``--json`` and ``hinerv info``.

Control arm: ``noise=gaussian`` is the α = 2 law (a Gaussian, N(0, 2)) at the same σ: the paper's calibration
found the Gaussian's prunable fraction well below α = 1.75's for one draw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from compress.hooks import PLUGINS, HookContext, Plugin
from compress.prune import named_tensors, restrict_

__all__ = ["HTSGDOptions", "HeavyTailedSGD", "eligible", "prunable_rows", "symmetric_stable"]


def symmetric_stable(alpha: float, shape: tuple[int, ...], generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard symmetric α-stable draws (β = 0, scale 1) by Chambers–Mallows–Stuck, float64.

    α = 2 is N(0, 2); α = 1 the Cauchy law. Tails: P(|X| > x) ~ C·x^-α for α < 2.
    """
    if not 0 < alpha <= 2:
        raise ValueError(f"symmetric_stable: alpha must be in (0, 2], got {alpha!r}")
    v = (torch.rand(shape, generator=generator, dtype=torch.float64) - 0.5) * math.pi  # U(-π/2, π/2)
    w = -torch.log1p(-torch.rand(shape, generator=generator, dtype=torch.float64))  # Exp(1)
    if alpha == 1:
        x = torch.tan(v)
    else:
        x = (torch.sin(alpha * v) / torch.cos(v) ** (1 / alpha)
             * (torch.cos((1 - alpha) * v) / w) ** ((1 - alpha) / alpha))
    return x.to(device)


def eligible(name: str, param: torch.Tensor) -> bool:
    """The weights that take the noise: matrices and filters of the blocks and projections (rows along dim 0)."""
    if not name.endswith(".weight") or param.ndim < 2:
        return False
    return not (name.startswith(("stem.", "head.")) or ".encoding.grids." in name or name.startswith("grid."))


def prunable_rows(weight: torch.Tensor, energy: float) -> torch.Tensor:
    """Bool (rows,): the smallest-norm rows whose squared norms add up to at most ``energy`` of the total."""
    sq = weight.detach().reshape(weight.shape[0], -1).double().pow(2).sum(1)
    order = torch.argsort(sq, stable=True)
    within = torch.cumsum(sq[order], 0) <= energy * sq.sum()
    out = torch.zeros_like(within)
    out[order[within]] = True
    return out


@dataclass(frozen=True)
class HTSGDOptions:
    alpha: float = field(default=1.75, metadata={"help": "tail index of the stable noise, in (0, 2]"})
    sigma: float = field(default=0.003, metadata={"help": "noise scale σ of σ·η^(1/α)·S"})
    noise: Literal["stable", "gaussian"] = field(
        default="stable", metadata={"help": "gaussian: the control arm, α = 2 at the same σ"})
    stages: Literal["train", "all"] = field(default="train", metadata={"help": "the stages with noise"})
    energy: float = field(default=0.1, metadata={"help": "per layer, the share of energy the pruned rows may hold"})
    prune: bool = field(default=True, metadata={"help": "prune the prunable rows on entering the prune stage"})

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 2:
            raise ValueError(f"alpha must be in (0, 2], got {self.alpha}")
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        if not 0 <= self.energy < 1:
            raise ValueError(f"energy must be in [0, 1), got {self.energy}")

    @property
    def tail(self) -> float:
        return 2.0 if self.noise == "gaussian" else self.alpha


@PLUGINS.register("htsgd")
class HeavyTailedSGD(Plugin):
    """Heavy-tailed (α-stable) noise on the weights after each step; the rows it makes prunable are pruned."""

    Options = HTSGDOptions

    def __init__(self, options: HTSGDOptions | None = None) -> None:
        super().__init__(options)
        self.steps = 0  # noisy steps taken (the noise stream is seeded by the trainer's per-epoch seed)
        self.pruned: dict[str, tuple[int, int]] = {}  # layer -> (rows pruned, rows)

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        if self.options.sigma == 0 or (self.options.stages == "train" and ctx.stage != "train"):
            return
        tail = self.options.tail
        amplitude = self.options.sigma * ctx.lr ** (1 / tail)
        with torch.no_grad():
            for name, _, _, param in named_tensors(model):
                if eligible(name, param):
                    s = symmetric_stable(tail, (param.shape[0],), device=param.device).to(param.dtype)
                    param.add_(amplitude * s.view(-1, *([1] * (param.ndim - 1))))
        self.steps += 1

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        if stage != "prune" or not self.options.prune:
            return model
        self.pruned = {}
        with torch.no_grad():
            for name, module, param_name, param in list(named_tensors(model)):
                if not eligible(name, param):
                    continue
                rows = prunable_rows(getattr(module, param_name), self.options.energy)
                restrict_(module, param_name, (~rows).view(-1, *([1] * (param.ndim - 1))))
                self.pruned[name] = (int(rows.sum()), int(rows.numel()))
        return model

    def summary(self, model: nn.Module) -> dict[str, Any]:
        rows = sum(n for _, n in self.pruned.values())
        pruned = sum(p for p, _ in self.pruned.values())
        return {"noisy_steps": self.steps, "tail_index": self.options.tail,
                "prunable_fraction": pruned / rows if rows else 0.0, "rows_pruned": pruned, "rows": rows}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "pruned": {k: list(v) for k, v in self.pruned.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.pruned = {k: (int(v[0]), int(v[1])) for k, v in state["pruned"].items()}
