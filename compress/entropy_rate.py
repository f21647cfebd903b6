"""The rate term of entropy-aware training as a training plugin: L = D + λ·R/pixels, λ steered to a target.

R is :func:`compress.entropy_quant.rate_bits` (the symbols' bits under the learned entropy models), so λ is in
units of log distortion per bit per pixel (for a loss that is not a logarithm the term is scaled by the loss's
value, ``HookContext.loss_scale``: one λ makes the same trade under every loss). With a target, a
multiplicative controller moves λ after every step by ``(R_file / target)**gain``, where R_file is the *file*
the current weights would make: the exact symbols' bits under the learned models plus the side information
(headers, steps, model parameters), which the encoder supplies through ``side_bits``. Registered as the
``entropy`` plugin.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from compress.entropy_quant import EntropyQuantConfig, entropy_quant_, entropy_tensors, hard_rate_bits, rate_bits, \
    rescale_steps_, set_mode_
from compress.hooks import HookContext, TrainingHook
from compress.prune import FilterFn
from compress.quantize import AxisFn
from compress.rate_control import fit_to_size, steer

__all__ = ["EntropyHook"]

SIDE_EVERY = 50  # steps between two measurements of the side information (it drifts slowly)


class EntropyHook(TrainingHook):
    """Attach entropy-aware quantization, add λ·R/pixels to the loss, switch to hard rounding for the last stage.

    Args:
        pixels: luma pixels of the clip (width × height × frames): R/pixels is in bpp.
        lam: λ (the initial value when ``target_bits`` is set).
        attach_stage: the stage on entering which the quantizers are attached (noise proxy from there on).
        ste_stage: the stage on entering which the quantizers switch to straight-through hard rounding.
        target_bits: the file size to steer to, in bits; None keeps λ fixed.
        side_bits: ``side_bits(model) -> float``: the file's bits other than the symbols' payloads (containers,
            headers, steps, model parameters), for the controller; called every ``SIDE_EVERY`` steps. Default 0.
        gain, lam_bounds: the controller's gain per step and λ's range.
        freeze_rate: in the hard-rounding stage, train the weights alone: the steps are first scaled to the
            target (when there is one), then they and the entropy models stay fixed and the rate term is off.
            False: the rate term, the learned steps and the controller go on through that stage (before #19's
            fix: the stage shrank the file 7% below the target and the last mile's re-gridding cost 1.8 dB).
        config, filter_fn, axis_fn: passed to ``entropy_quant_``.
    """

    def __init__(self, pixels: int, lam: float = 5.0, attach_stage: str = "train", ste_stage: str = "qat",
                 target_bits: float | None = None, side_bits: Callable[[nn.Module], float] | None = None,
                 gain: float = 0.02, lam_bounds: tuple[float, float] = (1e-3, 1e4),
                 config: EntropyQuantConfig | None = None, filter_fn: FilterFn | None = None,
                 axis_fn: AxisFn | None = None, freeze_rate: bool = True) -> None:
        if not (isinstance(pixels, int) and pixels > 0):
            raise ValueError(f"EntropyHook: pixels: expected an int > 0, got {pixels!r}")
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ValueError(f"EntropyHook: lam: expected a finite number >= 0, got {lam!r}")
        if target_bits is not None and not target_bits > 0:
            raise ValueError(f"EntropyHook: target_bits: expected None or > 0, got {target_bits!r}")
        self.pixels, self.lam = pixels, float(lam)
        self.attach_stage, self.ste_stage = attach_stage, ste_stage
        self.target_bits, self.side_bits_fn = target_bits, side_bits
        self.gain, self.lam_bounds = float(gain), (float(lam_bounds[0]), float(lam_bounds[1]))
        self.config, self.filter_fn, self.axis_fn = config or EntropyQuantConfig(), filter_fn, axis_fn
        self.freeze_rate = bool(freeze_rate)
        self.frozen = False  # in the hard-rounding stage with freeze_rate: the steps and models are fixed
        self.side_bits = 0.0  # last measured side information
        self.attached = False  # whether the model has the quantizers (set at each stage start)
        self.last_file_bits: float | None = None
        self.steps = 0

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        if stage == self.attach_stage and next(iter(entropy_tensors(model)), None) is None:
            entropy_quant_(model, self.config, self.filter_fn, self.axis_fn)
        if stage == self.ste_stage:
            set_mode_(model, "ste")
            if self.freeze_rate:
                self._fit_steps(model)
        return model

    def _fit_steps(self, model: nn.Module) -> None:
        """Scale every step so that the file meets the target before hard rounding starts.

        The noise-proxy stage ends wherever its controller got to (a short stage on a short clip ends 10-20% off);
        the last mile after training would then re-grid weights that hard-rounding training fitted to the old steps
        (measured -1.4 dB PSNR-Y for +10% rate on carphone). Here the weights have not yet been fitted to any grid,
        so the same scaling costs nothing, and the hard-rounding stage trains on the steps the file will have.
        """
        if self.target_bits is None or not self.attached_now(model):
            return
        self._measure_side(model, force=True)
        fit_to_size(model, lambda m: (hard_rate_bits(m) + self.side_bits) / 8, self.target_bits / 8,
                    rescale_steps_)

    def on_stage_start(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        self.attached = self.attached_now(model)
        self.frozen = self.attached and self.freeze_rate and stage == self.ste_stage
        self._measure_side(model)

    @staticmethod
    def attached_now(model: nn.Module) -> bool:
        return next(iter(entropy_tensors(model)), None) is not None

    def _measure_side(self, model: nn.Module, force: bool = False) -> None:
        if self.side_bits_fn is not None and (self.attached or force):
            self.side_bits = float(self.side_bits_fn(model))

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        if not self.attached or self.frozen:
            return None
        return (self.lam * ctx.loss_scale / self.pixels) * rate_bits(model)  # λ per log unit of distortion

    def on_after_backward(self, model: nn.Module, ctx: HookContext) -> None:
        if self.frozen:  # the steps and entropy models stay as fitted: no gradient, so the optimizer skips them
            for _, q, _ in entropy_tensors(model):
                for p in q.parameters():
                    p.grad = None

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        if not self.attached:
            return
        if self.frozen:  # no controller: nothing trains the rate; the file's size is still followed
            self.last_file_bits = hard_rate_bits(model) + self.side_bits
            return
        self.steps += 1
        if self.target_bits is None:
            return
        if self.steps % SIDE_EVERY == 0:
            self._measure_side(model)
        self.last_file_bits = hard_rate_bits(model) + self.side_bits
        self.lam = steer(self.lam, self.last_file_bits, self.target_bits, self.gain, self.lam_bounds)

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        self._measure_side(model)

    def state_dict(self) -> dict[str, Any]:
        return {"lam": self.lam, "steps": self.steps, "side_bits": self.side_bits,
                "last_file_bits": self.last_file_bits}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"lam", "steps", "side_bits", "last_file_bits"} - set(state)
        if missing:
            raise ValueError(f"EntropyHook.load_state_dict: missing keys {sorted(missing)}")
        self.lam, self.steps = float(state["lam"]), int(state["steps"])
        self.side_bits, self.last_file_bits = float(state["side_bits"]), state["last_file_bits"]
