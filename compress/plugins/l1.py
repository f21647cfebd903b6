"""``l1``: an L1 penalty on the weights, the smallest complete plugin (options, a loss term, resumable state)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from compress.hooks import PLUGINS, HookContext, Plugin


@dataclass(frozen=True)
class L1Options:
    weight: float = field(default=1e-6, metadata={"help": "λ of λ·Σ|w| over the weight tensors"})
    stages: Literal["train", "all"] = field(
        default="train", metadata={"help": "train: the first stage only; all: every stage"})

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")


@PLUGINS.register("l1")
class L1Penalty(Plugin):
    """L1 penalty on the weights: pulls small weights to zero, which quantize to zero and code cheaply."""

    Options = L1Options

    def __init__(self, options: L1Options | None = None) -> None:
        super().__init__(options)
        self.last_penalty: float | None = None  # the last term added, for the progress of a resumed encode

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        if self.options.weight == 0 or (self.options.stages == "train" and ctx.stage != "train"):
            return None
        # weights and grids (ndim >= 2); not biases, nor a quantizer's own steps and thresholds
        total = sum(p.abs().sum() for p in model.parameters() if p.requires_grad and p.ndim >= 2)
        term = self.options.weight * total
        self.last_penalty = float(term.detach())
        return term

    def state_dict(self) -> dict[str, Any]:
        return {"last_penalty": self.last_penalty}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_penalty = state.get("last_penalty")
