"""What the distillation plugins (``indistill``, ``sharedproj``) share: the teacher options, the teacher request,
and the student's layer maps in the train stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compress.features import LayerTap, TeacherFeatures, tapped_forward
from compress.hooks import HookContext, Plugin, TeacherRequest
from inr.presets import PRESETS

__all__ = ["LearnsFromTeacher", "TeacherOptions"]


@dataclass(frozen=True)
class TeacherOptions:
    teacher: str = field(default="auto", metadata={
        "help": "the teacher's preset (xxs..xl), or auto: scale x the student's parameters"})
    scale: float = field(default=4.0, metadata={"help": "auto: teacher parameters / student parameters"})
    teacher_epochs: int = field(default=0, metadata={"help": "the teacher's training epochs; 0: --epochs"})

    def __post_init__(self) -> None:
        if self.teacher != "auto":
            PRESETS.get(self.teacher)
        if not 1 <= self.scale <= 64:
            raise ValueError(f"scale must be in [1, 64], got {self.scale}")
        if self.teacher_epochs < 0:
            raise ValueError(f"teacher_epochs must be >= 0, got {self.teacher_epochs}")


class LearnsFromTeacher(Plugin):
    """A plugin that asks for a teacher and learns from its layers in the train stage (``prepare``, then the
    subclass's ``extra_loss`` with ``student_maps`` and ``self.features``)."""

    Options = TeacherOptions

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.teacher: nn.Module | None = None
        self.features: TeacherFeatures | None = None
        self.tap: LayerTap | None = None

    @property
    def active(self) -> bool:
        return self.tap is not None

    def teacher_request(self) -> TeacherRequest:
        return TeacherRequest(self.options.teacher, self.options.scale, self.options.teacher_epochs)

    def on_teacher(self, teacher: nn.Module) -> None:
        self.teacher = teacher
        self.features = TeacherFeatures(teacher)

    def on_stage_start(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        if stage != "train":
            return
        if self.teacher is None:
            raise RuntimeError(f"{type(self).__name__}: no teacher was handed over (codec.teacher.provide_teachers)")
        self.tap = LayerTap(model)
        self.prepare(model, ctx)

    def prepare(self, model: nn.Module, ctx: HookContext) -> None:
        """The train stage starts (also when resumed in it): set up what the method needs."""

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        if stage == "train" and self.tap is not None:
            self.tap.close()
            self.tap = None
            self.features = None  # the teacher's maps are not needed after the train stage

    def student_maps(self, model: nn.Module, batch: Any) -> list[torch.Tensor]:
        """The layer maps of the trainer's forward pass of ``batch``, or of one of our own when the trainer
        rendered it in pieces."""
        t, region, _ = batch
        maps = self.tap.maps(t.shape[0])
        if maps is None:
            _, maps = tapped_forward(model, self.tap, t, region)
        self.tap.clear()
        return maps
