"""``indistill``: a wider teacher's layers, pruned to the student's widths, as targets for the student's layers
(InDistill, Sarridis et al., WACV 2025), adapted to a video INR.

The teacher (``codec.teacher``: trained first on the same clip, ``scale`` x the student's parameters by default) and
the student share their stride ladder, so their layers (base-grid features, stem, each stage's output:
``compress.features``) line up in size and differ in width. Each teacher layer is pruned to the student's width by
InDistill's L1-structured criterion: the channels whose writing weights have the largest L1 norm are kept
(``compress.features.channel_importance``). The target of the student's layer l is then the pruned teacher layer
applied to the teacher's own, unpruned input: the teacher's layer-l map at the kept channels.

For the first ``warmup`` share of the train stage the student learns only these targets (the task loss is off),
with InDistill's curriculum: one layer at a time, shallow to deep, phase l lasting in proportion to ``a + l``
(the paper's 3:4:5 epochs for a = 2). Then it trains normally. ``curriculum=false`` is the control arm: every layer's
target at once for the same warm-up. The teacher never enters the file; nothing of this plugin does.

Adaptation: InDistill's PKT on the final features is left out (the student's last layer is learned by the task
loss after the warm-up); the student's own deeper layers are not trained during a phase (no loss reaches them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress.features import channel_importance, layer_widths, top_channels
from compress.hooks import PLUGINS, HookContext
from compress.plugins.teaching import LearnsFromTeacher, TeacherOptions

__all__ = ["InDistill", "InDistillOptions", "curriculum_bounds"]


@dataclass(frozen=True)
class InDistillOptions(TeacherOptions):
    warmup: float = field(default=0.3, metadata={"help": "share of the train stage spent matching the layers"})
    curriculum: bool = field(default=True, metadata={
        "help": "one layer at a time, shallow to deep; false: every layer at once (the control arm)"})
    a: float = field(default=2.0, metadata={"help": "phase l lasts in proportion to a + l (l from 1)"})
    weight: float = field(default=1.0, metadata={"help": "weight of the layer-matching MSE"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.warmup < 1:
            raise ValueError(f"warmup must be in (0, 1), got {self.warmup}")
        if not self.a >= 0:
            raise ValueError(f"a must be >= 0, got {self.a}")
        if not self.weight > 0:
            raise ValueError(f"weight must be > 0, got {self.weight}")


def curriculum_bounds(steps: int, layers: int, a: float) -> list[int]:
    """The step at which each of ``layers`` phases ends, of a warm-up of ``steps`` steps: phase l (from 1) lasts
    in proportion to a + l; every phase gets at least one step while there are steps enough."""
    weights = [a + l for l in range(1, layers + 1)]
    total = sum(weights)
    bounds, acc = [], 0.0
    for w in weights:
        acc += w
        bounds.append(round(steps * acc / total))
    for i in range(layers):  # a phase of no steps would skip its layer
        bounds[i] = max(bounds[i], min(steps, (bounds[i - 1] if i else 0) + 1))
    return bounds


@PLUGINS.register("indistill")
class InDistill(LearnsFromTeacher):
    """InDistill: the student's layers first learn a wider teacher's, pruned to its widths, one layer at a time."""

    Options = InDistillOptions

    def __init__(self, options: InDistillOptions | None = None) -> None:
        super().__init__(options)
        self.keep: list[torch.Tensor] = []  # per layer, the teacher channels kept (the student's width of them)
        self.warm_steps = 0
        self.bounds: list[int] = []
        self.last_mse: dict[int, float] = {}  # per layer, the matching MSE of its phase's last step

    def on_teacher(self, teacher: nn.Module) -> None:
        super().on_teacher(teacher)
        self.keep = []  # chosen against the student's widths when the train stage starts

    def prepare(self, model: nn.Module, ctx: HookContext) -> None:
        widths = layer_widths(model)
        self.keep = [top_channels(score, w).to(ctx.device)
                     for score, w in zip(channel_importance(self.teacher), widths)]
        self.warm_steps = int(self.options.warmup * ctx.total_steps)
        self.bounds = curriculum_bounds(self.warm_steps, len(widths), self.options.a)
        ctx.task_weight = 0.0 if ctx.step < self.warm_steps else 1.0

    def phase(self, step: int) -> int | None:
        """The layer matched at ``step`` (curriculum), -1 for all of them (no curriculum), None after the warm-up."""
        if step >= self.warm_steps:
            return None
        if not self.options.curriculum:
            return -1
        return next(i for i, b in enumerate(self.bounds) if step < b)

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        if not self.active:
            return None
        layer = self.phase(ctx.step)
        if layer is None:
            return None
        t, region, _ = batch
        maps = self.student_maps(model, batch)
        targets = self.features.of(t, region)
        layers = range(len(maps)) if layer == -1 else [layer]
        terms = []
        for i in layers:
            mse = F.mse_loss(maps[i].float(), targets[i].index_select(-1, self.keep[i]))  # (bf16 under autocast)
            self.last_mse[i] = float(mse.detach())
            terms.append(mse)
        return self.options.weight * torch.stack(terms).mean()

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        if not self.active:
            return
        ctx.task_weight = 0.0 if step + 1 < self.warm_steps else 1.0
        if step + 1 >= self.warm_steps:  # trains normally from here: the taps and the teacher's maps can go
            self.on_stage_end("train", model, ctx)

    def summary(self, model: nn.Module) -> dict[str, Any]:
        return {"warmup_steps": self.warm_steps, "phase_ends": list(self.bounds),
                "teacher_widths": list(layer_widths(self.teacher)) if self.teacher is not None else [],
                "student_widths": [int(k.numel()) for k in self.keep],
                "matching_mse": {str(k): round(v, 6) for k, v in sorted(self.last_mse.items())}}

    def state_dict(self) -> dict[str, Any]:
        return {"last_mse": {str(k): v for k, v in self.last_mse.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_mse = {int(k): float(v) for k, v in state.get("last_mse", {}).items()}
