"""The plugin interface: how compression methods attach to the encoder without editing it.

One trainer (``codec.train.run_stages``) runs the stages (``"train"``, ``"prune"``, ``"qat"``) and calls one
``HookList`` at fixed points; the encoder calls the export events when it writes the file, and the decoder the
decode events when it reads one::

    plugin.on_teacher(teacher)                               # encoder: each plugin whose teacher_request()
                                                              # asked for one, once trained (codec.teacher)
    hooks.on_data(data)                                      # the clip being encoded (also on resume)
    for each stage:
        model = hooks.transform_model(stage, model)          # before the stage's optimizer exists
        optimizer = hooks.make_optimizer(params, lr, stage)   # the first hook's optimizer, or Adam
        ctx = HookContext(stage, ..., optimizer=optimizer)    # one per stage, updated in place
        hooks.on_stage_start(stage, model, ctx)
        for each step:
            output = model(batch)
            loss = ctx.task_weight * task_loss(output, batch)
            extra = hooks.extra_loss(model, batch, output, ctx)   # summed over hooks, or None
            loss.backward()                                        # (+ extra)
            hooks.on_after_backward(model, ctx)                    # gradients summed over ranks, not yet clipped
            optimizer.step()
            hooks.on_step_end(step, model, ctx)
        hooks.on_stage_end(stage, model, ctx)
    tensors = hooks.on_export(model, quantizer_tensors)      # encoder: what the file codes (the quantizer exports
                                                              # all but the tensors a hook claims())
    data = plugin.export_data(model)                          # encoder: the plugin's record in the file
    decoder: plugin.load_data(data); model = plugin.rebuild(model); tensors = plugin.decode_tensors(model, tensors)

A plugin subclasses ``Plugin``, declares its options as a frozen dataclass and registers in ``PLUGINS``;
users select it with ``hinerv encode --plugin NAME[:key=value,...]`` (``compress.plugin_spec``). A plugin that
changes what the file codes (``coded = True``: modules rebuilt, tensors added or replaced) decodes from the file
alone: its name, options and ``export_data`` are written in the file's PLUGINS section
(``bitstream/FORMAT.md`` §2), and the decoder replays ``load_data``, ``rebuild`` and ``decode_tensors``.

``state_dict``/``load_state_dict`` carry a hook's own state (counters, schedules, a controller's λ) across a
resume; the model's parametrizations travel with the model's own state dict. See ``compress/plugins/l1.py`` for a
complete plugin.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Iterator

import torch
from torch import nn

from bitstream.tensors import QuantizedTensor
from common.registry import Registry

__all__ = ["PLUGINS", "STAGES", "HookContext", "HookList", "Observers", "Plugin", "TeacherRequest", "TrainingHook"]

STAGES = ("train", "prune", "qat")  # train, prune + fine-tune, quantization-aware training (docs/design.md §1)


@dataclass
class HookContext:
    """Where training stands: one per stage, made by the trainer and updated in place before every step."""

    stage: str  # current stage name, one of STAGES for the standard pipeline
    step: int = 0  # global optimizer step within the stage, from 0
    total_steps: int = 0  # steps planned for the stage
    epoch: int = 0  # epoch within the stage, from 0
    optimizer: torch.optim.Optimizer | None = None  # the stage's optimizer
    lr: float = 0.0  # the learning rate of this step
    device: torch.device | None = None  # where training runs
    rank_weight: float = 1.0  # this process's share of the batch (1 but under torchrun; see codec.distributed)
    task_weight: float = 1.0  # the task loss is multiplied by this; a hook may change it (e.g. a distillation ramp)
    # this step's d(task loss)/d(log task loss): 1 for a loss that is a logarithm (yuvlog), else the loss's value. A
    # rate weight λ stated per unit of log distortion is multiplied by it, so one λ makes the same trade under
    # every --loss (codec.losses.log_scale; a detached 0-D tensor for a loss that is not a logarithm)
    loss_scale: float | torch.Tensor = 1.0
    extras: dict[str, Any] = field(default_factory=dict)  # free-form, for hooks to share values


@dataclass(frozen=True)
class TeacherRequest:
    """A wider network a plugin wants trained on the same clip before the student (``codec.teacher`` trains it with
    the student's loss, batches and seed, train stage only: it is never pruned, quantized or written in the file)."""

    preset: str = "auto"  # a preset name (inr.presets), or 'auto': ``scale`` times the student's parameters
    scale: float = 4.0  # 'auto': teacher parameters / student parameters
    epochs: int = 0  # training epochs; 0: the encode's --epochs
    wider: bool = True  # every layer at least as wide as the student's (refused before training otherwise)

    def __post_init__(self) -> None:
        if not self.scale >= 1:
            raise ValueError(f"teacher scale must be >= 1, got {self.scale}")
        if self.epochs < 0:
            raise ValueError(f"teacher epochs must be >= 0, got {self.epochs}")


class TrainingHook:
    """Base class of everything that attaches to training: every method is a no-op; override what you need."""

    def on_data(self, data: Any) -> None:
        """Called once before the first stage (and again on a resume) with the clip being encoded
        (``codec.train.TrainingData``): ``data.frames``, ``data.grid`` (T, H, W, C) integer samples in the
        plane layout (``data.layout``; luma in its first ``data.layout.luma_channels`` channels), ``data.scale``
        (1 / the peak sample). For methods that look at the content (e.g. ``mwt``'s shot detection)."""

    def teacher_request(self) -> TeacherRequest | None:
        """A teacher this hook learns from (distillation), or None. Asked once, before training."""
        return None

    def on_teacher(self, teacher: nn.Module) -> None:
        """Called before the first stage (and again on a resume) with the teacher ``teacher_request`` asked for:
        trained, in eval mode, its parameters frozen, on the training device. Not in the hook's state: it is
        handed over again on a resume."""

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        """Called before a stage starts (before its optimizer is built); return the model to train.

        May modify ``model`` in place (e.g. register parametrizations) and return it, or return a wrapper.
        """
        return model

    def make_optimizer(self, params: list[nn.Parameter], lr: float, stage: str) -> torch.optim.Optimizer | None:
        """The optimizer of ``stage`` over ``params`` at peak ``lr``, or None to leave the choice to others
        (the first hook that returns one wins; none: Adam). The trainer sets each step's lr in its groups."""
        return None

    def on_stage_start(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        """Called once at the start of ``stage``, after ``transform_model`` and the optimizer."""

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        """A term added to the task loss of this step, or None for nothing."""
        return None

    def on_after_backward(self, model: nn.Module, ctx: HookContext) -> None:
        """Called after the backward pass (gradients summed over ranks), before clipping and the step."""

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        """Called after each optimizer step."""

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        """Called once at the end of ``stage``."""

    def claims(self, name: str, param: torch.Tensor) -> bool:
        """Whether this hook quantizes and codes the tensor ``name`` itself (the quantizer then leaves it alone:
        it neither prunes, quantizes nor exports it; the hook's ``on_export`` adds it to the file)."""
        return False

    def on_export(self, model: nn.Module, tensors: list[QuantizedTensor]) -> list[QuantizedTensor]:
        """The tensors the file codes, given those before this hook (named, in model order); a hook may add or
        replace some; ``decode_tensors`` must undo it. Called every time the encoder lays the file out."""
        return tensors

    def state_dict(self) -> dict[str, Any]:
        """The hook's own resumable state (not the model's)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class Plugin(TrainingHook):
    """A compression method users select by name: ``hinerv encode --plugin NAME[:key=value,...]``.

    Subclasses set ``Options`` (a frozen dataclass: typed fields with defaults, each with
    ``metadata={"help": ...}``; ``__post_init__`` validates), take an instance of it in ``__init__``, and
    register with ``@PLUGINS.register("name")``. The class docstring's first line is the one-line doc that
    ``hinerv plugins`` prints.

    A plugin with ``coded = True`` changes what the file codes and the decoder needs it: the decode events
    below rebuild what the file holds from the plugin's options and its ``export_data``.
    """

    Options: ClassVar[type] = type(None)
    coded: ClassVar[bool] = False  # the decoder must run this plugin's decode events to read a file it made

    def __init__(self, options: Any = None) -> None:
        self.options = self.Options() if options is None else options
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{type(self).__name__}: expected {self.Options.__name__} options, "
                            f"got {type(self.options).__name__}")

    # ---- the file: written by the encoder, read by the decoder

    def export_data(self, model: nn.Module) -> bytes:
        """What the decoder needs beyond the options (e.g. per-layer ranks), written in the file."""
        return b""

    def load_data(self, data: bytes) -> None:
        """Decoder side: take what ``export_data`` wrote (untrusted: bound what you read)."""

    def rebuild(self, model: nn.Module) -> nn.Module:
        """Decoder side: the model whose parameters the file's tensors fill (modules replaced as in training).
        Called on a model on the meta device too (shapes only)."""
        return model

    def decode_tensors(self, model: nn.Module, tensors: list[QuantizedTensor]) -> list[QuantizedTensor]:
        """Decoder side: undo ``on_export`` (the file keeps the tensors' order, not their names: the result must
        follow ``rebuild``'s model's ``named_parameters()``)."""
        return tensors

    def summary(self, model: nn.Module) -> dict[str, Any]:
        """What the method did, for ``--json`` and ``hinerv info`` (numbers and short strings; JSON-safe)."""
        return {}

    @classmethod
    def describe(cls) -> str:
        """The one-line doc."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls.Options) if f.init] if dataclasses.is_dataclass(cls.Options) else []


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

    def on_data(self, data: Any) -> None:
        for h in self.hooks:
            h.on_data(data)

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        for h in self.hooks:
            model = h.transform_model(stage, model)
        return model

    def make_optimizer(self, params: list[nn.Parameter], lr: float, stage: str) -> torch.optim.Optimizer | None:
        for h in self.hooks:
            optimizer = h.make_optimizer(params, lr, stage)
            if optimizer is not None:
                return optimizer
        return None

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

    def on_after_backward(self, model: nn.Module, ctx: HookContext) -> None:
        for h in self.hooks:
            h.on_after_backward(model, ctx)

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        for h in self.hooks:
            h.on_step_end(step, model, ctx)

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        for h in self.hooks:
            h.on_stage_end(stage, model, ctx)

    def claims(self, name: str, param: torch.Tensor) -> bool:
        return any(h.claims(name, param) for h in self.hooks)

    def on_export(self, model: nn.Module, tensors: list[QuantizedTensor]) -> list[QuantizedTensor]:
        for h in self.hooks:
            tensors = h.on_export(model, tensors)
        return tensors

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


class Observers(HookList):
    """Hooks that watch training and change nothing (progress, tests, interrupts): they see the stage and step
    events only, so they can neither shape the result nor need a checkpoint or a place in the resume fingerprint."""

    def on_data(self, data: Any) -> None:
        return None

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        return model

    def make_optimizer(self, params: list[nn.Parameter], lr: float, stage: str) -> None:
        return None

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> None:
        return None

    def on_after_backward(self, model: nn.Module, ctx: HookContext) -> None:
        return None

    def claims(self, name: str, param: torch.Tensor) -> bool:
        return False

    def on_export(self, model: nn.Module, tensors: list[QuantizedTensor]) -> list[QuantizedTensor]:
        return tensors

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


PLUGINS: Registry[type[Plugin]] = Registry("plugin")
