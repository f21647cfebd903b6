"""The plugin interface: how compression methods attach to training without editing the trainer (DESIGN §1).

The trainer runs stages (``"train"``, ``"prune"``, ``"qat"``) and calls one ``HookList`` at fixed points::

    model = hooks.transform_model(stage, model)      # before building the optimizer of the stage
    hooks.on_stage_start(stage, model, ctx)
    for each step:
        output = model(batch)
        loss = task_loss(output, batch)
        extra = hooks.extra_loss(model, batch, output, ctx)   # summed over hooks, or None
        if extra is not None: loss = loss + extra
        loss.backward(); optimizer.step()
        hooks.on_step_end(step, model, ctx)
    hooks.on_stage_end(stage, model, ctx)

A plugin subclasses ``TrainingHook``, overrides what it needs, and registers in ``PLUGINS`` so users select it
by name::

    @PLUGINS.register("l1")
    class L1Penalty(TrainingHook):
        def __init__(self, weight: float = 1e-6) -> None:
            self.weight = weight

        def extra_loss(self, model, batch, output, ctx):
            if ctx.stage != "train":
                return None
            return self.weight * sum(p.abs().sum() for p in model.parameters())

    hooks = HookList([PLUGINS.get("l1")(weight=1e-5)])

``state_dict``/``load_state_dict`` carry a hook's own state (counters, schedules) across a resume; the model's
parametrizations travel with the model's own state dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from codec.registry import Registry

__all__ = ["PLUGINS", "STAGES", "HookContext", "HookList", "TrainingHook"]

STAGES = ("train", "prune", "qat")  # DESIGN §1: train, prune + fine-tune, quantization-aware training


@dataclass
class HookContext:
    """Where training stands, passed to every hook call (the trainer updates it in place)."""

    stage: str  # current stage name, one of STAGES for the standard pipeline
    step: int  # global optimizer step within the stage, from 0
    total_steps: int  # steps planned for the stage
    epoch: int  # epoch within the stage, from 0
    extras: dict[str, Any] = field(default_factory=dict)  # free-form: lr, last loss, a logger, ...


class TrainingHook:
    """Base class of training plugins: every method is a no-op; override the ones you need."""

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        """Called before a stage starts (before its optimizer is built); return the model to train.

        May modify ``model`` in place (e.g. register parametrizations) and return it, or return a wrapper.
        """
        return model

    def on_stage_start(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        """Called once at the start of ``stage``, after ``transform_model``."""

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        """A term added to the task loss of this step, or None for nothing."""
        return None

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        """Called after each optimizer step."""

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        """Called once at the end of ``stage``."""

    def state_dict(self) -> dict[str, Any]:
        """The hook's own resumable state (not the model's)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class HookList(TrainingHook):
    """Dispatches every call to its hooks in order; ``extra_loss`` sums the non-None terms (None if all None)."""

    def __init__(self, hooks: Iterable[TrainingHook] = ()) -> None:
        self.hooks: list[TrainingHook] = list(hooks)
        for i, h in enumerate(self.hooks):
            if not isinstance(h, TrainingHook):
                raise TypeError(f"HookList: hook {i}: expected a TrainingHook, got {type(h).__name__}")

    def __iter__(self) -> Iterator[TrainingHook]:
        return iter(self.hooks)

    def __len__(self) -> int:
        return len(self.hooks)

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        for h in self.hooks:
            model = h.transform_model(stage, model)
        return model

    def on_stage_start(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        for h in self.hooks:
            h.on_stage_start(stage, model, ctx)

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        total: torch.Tensor | None = None
        for h in self.hooks:
            term = h.extra_loss(model, batch, output, ctx)
            if term is not None:
                total = term if total is None else total + term
        return total

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        for h in self.hooks:
            h.on_step_end(step, model, ctx)

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        for h in self.hooks:
            h.on_stage_end(stage, model, ctx)

    def state_dict(self) -> dict[str, Any]:
        """``{"0": state of hook 0, "1": ...}`` with each hook's class name, checked on load."""
        return {str(i): {"type": type(h).__name__, "state": h.state_dict()} for i, h in enumerate(self.hooks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = [type(h).__name__ for h in self.hooks]
        try:
            got = [state[str(i)]["type"] for i in range(len(state))]
        except (KeyError, TypeError):
            raise ValueError(
                f"HookList.load_state_dict: expected keys '0'..'{len(expected) - 1}' each with 'type' and 'state', "
                f"got keys {sorted(state)}"
            ) from None
        if got != expected:
            raise ValueError(f"HookList.load_state_dict: expected hooks {expected}, got {got}")
        for i, h in enumerate(self.hooks):
            h.load_state_dict(state[str(i)]["state"])


PLUGINS: Registry[type[TrainingHook]] = Registry("plugin")
