"""``softround``: the entropy quantizer's noise proxy soft-rounded, its temperature annealed towards hard rounding.

C3 (Kim et al., 2023) trains its quantized latents on ŷ = s_T(s_T(y) + u) with the rate on s_T(y) + u, s_T
Agustsson & Theis's soft rounding, and anneals T from 0.3 to 0.1: the forward pass comes near the rounding the
file holds while the gradient stays informative. This plugin does the same to every ``--quant entropy`` tensor
(the weights as well as the grids) in the rate stage, the stage where the quantizers train under the noise
proxy; the hard-rounding (QAT) stage after it is unchanged. Training only: the file is the same kind of file.
With another ``--quant`` the rate stage refuses to start (nothing to soft-round).

Control arm: plain ``--quant entropy`` (uniform noise, T = 0). Measured on #19's bench it loses (C3's schedule
-1.8 to -2.7 dB PSNR-YUV, a warmer one -0.16; docs/results.md): s_T's slope vanishes near the grid points, and the
weights the rate stage retrains stop moving. Opt-in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from compress.entropy_quant import entropy_tensors, set_temperature_
from compress.hooks import PLUGINS, HookContext, Plugin


@dataclass(frozen=True)
class SoftRoundOptions:
    start: float = field(default=0.3, metadata={"help": "the temperature at the rate stage's first step"})
    end: float = field(default=0.1, metadata={"help": "the temperature at its last step (linear in between)"})

    def __post_init__(self) -> None:
        if not 0 < self.end <= self.start:
            raise ValueError(f"expected 0 < end <= start, got start={self.start}, end={self.end}")


def annealed(start: float, end: float, done: int, total: int) -> float:
    """The temperature after ``done`` of ``total`` steps: linear from ``start`` to ``end``."""
    return start + (end - start) * min(1.0, done / max(1, total))


@PLUGINS.register("softround")
class SoftRound(Plugin):
    """The entropy quantizer's noise proxy soft-rounded, annealed towards hard rounding (C3's latents)."""

    Options = SoftRoundOptions

    def __init__(self, options: SoftRoundOptions | None = None) -> None:
        super().__init__(options)
        self.temperature = 0.0  # the last temperature set (0: none yet)

    def _set(self, model: nn.Module, done: int, total: int) -> None:
        if any(q.mode == "noise" for _, q, _ in entropy_tensors(model)):
            self.temperature = annealed(self.options.start, self.options.end, done, total)
            set_temperature_(model, self.temperature)

    # the temperature follows the stage's step, so a resumed encode sets the one it stopped at
    def on_stage_start(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        if stage != "train" and next(iter(entropy_tensors(model)), None) is None:
            raise ValueError("--plugin softround soft-rounds --quant entropy's noise proxy; this encode's quantizer "
                             "has none (use --quant entropy, the default)")
        self._set(model, ctx.step, ctx.total_steps)

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        self._set(model, step + 1, ctx.total_steps)

    def summary(self, model: nn.Module) -> dict[str, Any]:
        return {"temperature": self.temperature}
