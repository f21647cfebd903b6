"""compress.hooks: the training plugin interface."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from common.registry import Registry
from compress.hooks import PLUGINS, STAGES, HookContext, HookList, TrainingHook


class Recorder(TrainingHook):
    def __init__(self, tag: str, log: list, loss: float | None = None) -> None:
        self.tag, self.log, self.loss, self.steps = tag, log, loss, 0

    def transform_model(self, stage, model):
        self.log.append((self.tag, "transform", stage))
        return nn.Sequential(model) if self.tag == "wrap" else model

    def on_stage_start(self, stage, model, ctx):
        self.log.append((self.tag, "start", stage))

    def extra_loss(self, model, batch, output, ctx):
        self.log.append((self.tag, "loss", ctx.step))
        return None if self.loss is None else torch.tensor(self.loss)

    def on_step_end(self, step, model, ctx):
        self.steps += 1
        self.log.append((self.tag, "step", step))

    def on_stage_end(self, stage, model, ctx):
        self.log.append((self.tag, "end", stage))

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_base_hook_is_a_no_op() -> None:
    h, m = TrainingHook(), nn.Linear(2, 2)
    ctx = HookContext(stage="train", step=0, total_steps=10, epoch=0)
    assert h.transform_model("train", m) is m
    assert h.on_stage_start("train", m, ctx) is None
    assert h.extra_loss(m, None, None, ctx) is None
    assert h.on_step_end(0, m, ctx) is None and h.on_stage_end("train", m, ctx) is None
    assert h.state_dict() == {} and h.load_state_dict({}) is None
    assert ctx.extras == {} and STAGES == ("train", "prune", "qat")


def test_hooklist_order_transform_chain_and_loss_sum() -> None:
    log: list = []
    hooks = HookList([Recorder("a", log, 1.5), Recorder("wrap", log, None), Recorder("c", log, 2.25)])
    assert len(hooks) == 3 and [h.tag for h in hooks] == ["a", "wrap", "c"]
    base = nn.Linear(2, 2)
    model = hooks.transform_model("prune", base)
    assert isinstance(model, nn.Sequential) and model[0] is base
    ctx = HookContext(stage="prune", step=4, total_steps=5, epoch=1)
    hooks.on_stage_start("prune", model, ctx)
    total = hooks.extra_loss(model, None, None, ctx)
    assert total is not None and total.item() == pytest.approx(3.75)
    hooks.on_step_end(4, model, ctx)
    hooks.on_stage_end("prune", model, ctx)
    tags = ["a", "wrap", "c"]
    expected = [(t, "transform", "prune") for t in tags] + [(t, "start", "prune") for t in tags]
    expected += [(t, "loss", 4) for t in tags] + [(t, "step", 4) for t in tags] + [(t, "end", "prune") for t in tags]
    assert log == expected


def test_extra_loss_none_when_no_terms_and_grad_flows() -> None:
    assert HookList([]).extra_loss(None, None, None, None) is None
    assert HookList([TrainingHook(), TrainingHook()]).extra_loss(None, None, None, None) is None

    class L2(TrainingHook):
        def extra_loss(self, model, batch, output, ctx):
            return sum(p.square().sum() for p in model.parameters())

    m = nn.Linear(3, 1)
    HookList([L2(), L2()]).extra_loss(m, None, None, None).backward()
    assert torch.allclose(m.weight.grad, 4 * m.weight.detach())


def test_state_dict_round_trip_and_mismatch() -> None:
    log: list = []
    a = HookList([Recorder("a", log), TrainingHook()])
    for step in range(3):
        a.on_step_end(step, None, None)
    state = a.state_dict()
    b = HookList([Recorder("a", log), TrainingHook()])
    b.load_state_dict(state)
    assert b.hooks[0].steps == 3
    with pytest.raises(ValueError, match="expected hooks"):
        HookList([TrainingHook()]).load_state_dict(state)
    with pytest.raises(ValueError, match="expected keys"):
        b.load_state_dict({"x": {}})


def test_hooklist_rejects_non_hooks() -> None:
    with pytest.raises(TypeError, match="TrainingHook"):
        HookList([object()])  # type: ignore[list-item]


def test_plugin_registry() -> None:
    assert isinstance(PLUGINS, Registry) and PLUGINS.kind == "plugin"
    local: Registry = Registry("plugin")  # register into a private one: PLUGINS is process-global

    @local.register("noop")
    class Noop(TrainingHook):
        pass

    assert local.get("noop") is Noop and "noop" in local.names()
    for name in PLUGINS.names():  # every registered plugin is a TrainingHook class
        assert issubclass(PLUGINS.get(name), TrainingHook)
