"""``sharedproj``: shared projections from a wider teacher's layers to the student's, and mixed-grid dual training
(Zhao et al., "Extremely small BERT models from mixed-vocabulary training", EACL 2021), adapted to a video INR.

The teacher (``codec.teacher``) and the student line up layer by layer (``compress.features``: base-grid
features, stem, each stage's output) and differ in width. A projection U (C_student x C_teacher) maps a teacher
layer's features to the student's width; layers of the same (teacher, student) width pair share one U, as the
paper shares its projections across same-shape layers (HiNeRV's stem and first stage always do). Through the train
stage the student learns weight x the mean over layers of MSE(student_l, U teacher_l) beside its task loss; the
projections learn with it (Adam at the stage's learning rate, kept in the plugin's resumable state, never in the
file). U keeps orthonormal rows (``torch.nn.utils.parametrizations.orthogonal``), so it cannot shrink to zero and
drag the student's features with it.

``mix=P``: mixed-grid dual training. The base grid is HiNeRV's "embedding table". On a share of the train stage's
steps, ramped linearly from 0 to P over its first ``ramp`` share, the frozen teacher is also fed the student's grid
features, lifted to the teacher's width by the grid projection's transpose Uᵀ, in place of its own; its output's
log-MSE to the frame (weight ``mix_weight``) then trains the student's grid (and U) to speak the teacher's
language. Which steps mix is drawn from the step number alone, so a resumed encode mixes the same steps.

Adaptation: the teacher is frozen (trained first, not alongside the student); only features are projected (not
weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from compress.features import layer_widths, single_pass
from compress.hooks import PLUGINS, HookContext
from compress.plugins.teaching import LearnsFromTeacher, TeacherOptions

__all__ = ["SharedProjections", "SharedProjOptions", "mix_probability", "shared_projections"]


@dataclass(frozen=True)
class SharedProjOptions(TeacherOptions):
    weight: float = field(default=1.0, metadata={"help": "weight of the projected-feature MSE"})
    mix: float = field(default=0.0, metadata={
        "help": "mixed-grid dual training: the share of steps feeding the teacher the student's grid, at the end "
                "of the ramp (0: off)"})
    ramp: float = field(default=0.5, metadata={"help": "share of the train stage over which the mix ramps up"})
    mix_weight: float = field(default=0.5, metadata={"help": "weight of the teacher's loss on mixed steps"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if not 0 <= self.mix <= 1:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")
        if not 0 < self.ramp <= 1:
            raise ValueError(f"ramp must be in (0, 1], got {self.ramp}")
        if not self.mix_weight >= 0:
            raise ValueError(f"mix_weight must be >= 0, got {self.mix_weight}")


def mix_probability(step: int, total: int, mix: float, ramp: float) -> float:
    """The chance that ``step`` (of ``total``) mixes: 0 at the start, rising linearly to ``mix`` at ``ramp`` of the
    stage, ``mix`` from there."""
    return mix * min(1.0, step / max(1.0, ramp * total))


def shared_projections(teacher_widths: tuple[int, ...],
                       student_widths: tuple[int, ...]) -> tuple[nn.ModuleDict, list[str]]:
    """(one projection per distinct (teacher, student) width pair, the key of each layer's)."""
    projections, keys = nn.ModuleDict(), []
    for ct, cs in zip(teacher_widths, student_widths):
        key = f"{ct}to{cs}"
        if key not in projections:
            projections[key] = orthogonal(nn.Linear(ct, cs, bias=False))
        keys.append(key)
    return projections, keys


@PLUGINS.register("sharedproj")
class SharedProjections(LearnsFromTeacher):
    """Shared projections: the student learns a wider teacher's features mapped to its widths; optional mixed grids."""

    Options = SharedProjOptions

    def __init__(self, options: SharedProjOptions | None = None) -> None:
        super().__init__(options)
        self.projections: nn.ModuleDict | None = None
        self.keys: list[str] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.saved: dict[str, Any] | None = None  # state from a checkpoint, applied when the train stage starts
        self.mixed_steps = self.steps = 0
        self.last_mse: float | None = None
        self.last_mix_loss: float | None = None
        self._grid_hook = None

    def prepare(self, model: nn.Module, ctx: HookContext) -> None:
        with torch.random.fork_rng(devices=[]):  # the projections' first values: the same on every run and rank
            torch.manual_seed(0)
            self.projections, self.keys = shared_projections(layer_widths(self.teacher), layer_widths(model))
        self.projections.to(ctx.device)
        self.optimizer = torch.optim.Adam(self.projections.parameters(), lr=ctx.lr)
        if self.saved is not None:
            self.projections.load_state_dict(self.saved["projections"])
            self.optimizer.load_state_dict(self.saved["optimizer"])
            self.saved = None

    def mixes(self, ctx: HookContext) -> bool:
        """Whether this step feeds the teacher the student's grid: a draw seeded by the step number."""
        p = mix_probability(ctx.step, ctx.total_steps, self.options.mix, self.options.ramp)
        if p <= 0:
            return False
        draw = torch.rand((), generator=torch.Generator().manual_seed(1_000_003 * ctx.step + 17))
        return bool(draw < p)

    def project(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        return self.projections[self.keys[layer]](features)

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        if not self.active:
            return None
        t, region, target = batch
        maps = self.student_maps(model, batch)
        loss = maps[0].new_zeros(())
        if self.options.weight > 0:
            teacher_maps = self.features.of(t, region)
            mse = torch.stack([F.mse_loss(m.float(), self.project(i, tm))  # (bf16 under autocast)
                               for i, (m, tm) in enumerate(zip(maps, teacher_maps))])
            loss = self.options.weight * mse.mean()
            self.last_mse = float(mse.mean().detach())
        self.steps += 1
        if self.mixes(ctx):
            up = self.projections[self.keys[0]].weight.T  # Uᵀ: the student's grid features, widened
            lifted = F.linear(maps[0].float(), up)
            out = self.teacher_with_grid(lifted, t, region)
            mix_loss = torch.log(F.mse_loss(out.float(), target).clamp_min(1e-10))
            loss = loss + self.options.mix_weight * mix_loss
            self.mixed_steps += 1
            self.last_mix_loss = float(mix_loss.detach())
        return loss

    def teacher_with_grid(self, grid_features: torch.Tensor, t: torch.Tensor, region) -> torch.Tensor:
        """The frozen teacher's output with ``grid_features`` in place of its own grid's (gradient to them)."""
        handle = self.teacher.grid.register_forward_hook(lambda module, args, out: grid_features)
        try:
            with single_pass(self.teacher):  # the whole batch's grid in one piece
                return self.teacher(t, region)
        finally:
            handle.remove()

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        if not self.active:
            return
        params = [p for p in self.projections.parameters() if p.grad is not None]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for p in params:  # each rank added its share of the batch's term: the sum is the whole batch's
                torch.distributed.all_reduce(p.grad)
        for group in self.optimizer.param_groups:
            group["lr"] = ctx.lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        super().on_stage_end(stage, model, ctx)
        if stage == "train":
            self.optimizer = None  # the projections stay for the summary; they never enter the file

    def summary(self, model: nn.Module) -> dict[str, Any]:
        return {"projections": len(self.projections) if self.projections is not None else 0,
                "layers": len(self.keys), "teacher_widths": list(layer_widths(self.teacher)) if self.teacher else [],
                "projected_mse": self.last_mse, "mixed_steps": self.mixed_steps, "steps": self.steps,
                "mix_log_mse": self.last_mix_loss}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"mixed_steps": self.mixed_steps, "steps": self.steps, "last_mse": self.last_mse,
                                 "last_mix_loss": self.last_mix_loss}
        if self.optimizer is not None:
            state.update(projections=self.projections.state_dict(), optimizer=self.optimizer.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mixed_steps, self.steps = int(state.get("mixed_steps", 0)), int(state.get("steps", 0))
        self.last_mse, self.last_mix_loss = state.get("last_mse"), state.get("last_mix_loss")
        if "projections" in state:
            self.saved = {"projections": state["projections"], "optimizer": state["optimizer"]}
