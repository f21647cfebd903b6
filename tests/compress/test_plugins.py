"""The plugin API: typed options from NAME[:key=value,...], the l1 plugin, and every hook event from the trainer."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import compress.plugins  # noqa: F401  (registers the plugins)
from codec.layout import PlaneLayout
from codec.train import StageSpec, TrainConfig, TrainingData, train_stage
from compress.hooks import PLUGINS, HookContext, HookList, Observers, Plugin, TrainingHook
from compress.plugin_spec import build_plugin, option_rows, parse_plugin
from compress.plugins.l1 import L1Penalty
from inr.config import HiNeRVConfig
from inr.model import HiNeRV


def test_specs_are_typed_validated_and_canonical() -> None:
    spec = parse_plugin("l1:weight=2e-5")
    assert spec.name == "l1" and spec.options.weight == 2e-5 and spec.options.stages == "train"
    assert spec.canonical() == "l1:weight=2e-05,stages=train"
    assert parse_plugin(spec.canonical()) == spec  # the canonical form reads back to the same spec
    assert parse_plugin("l1").canonical() == parse_plugin("l1:weight=1e-6, stages=train").canonical()
    assert isinstance(build_plugin("l1:stages=all"), L1Penalty)


@pytest.mark.parametrize("text,error,message", [
    ("nope", LookupError, "unknown plugin 'nope'; known: .*l1"),
    ("l1:wieght=1", LookupError, "plugin l1 has no option 'wieght'; its options: weight, stages"),
    ("l1:weight=abc", ValueError, "plugin l1: weight must be a finite number, got 'abc'"),
    ("l1:weight=nan", ValueError, "weight must be a finite number"),
    ("l1:weight=-1", ValueError, "plugin l1: weight must be >= 0"),
    ("l1:stages=some", ValueError, "stages must be one of train, all"),
    ("l1:weight", ValueError, "expected weight=VALUE"),
    ("l1:weight=1,weight=2", ValueError, "given twice"),
])
def test_bad_specs_say_what_is_wrong(text, error, message) -> None:
    with pytest.raises(error, match=message):
        parse_plugin(text)


def test_option_rows_list_every_option_with_default_and_help() -> None:
    rows = option_rows("l1")
    assert [r[:3] for r in rows] == [("weight", "float", "1e-06"), ("stages", "train|all", "train")]
    assert all(r[3] for r in rows)
    for name in PLUGINS.names():  # every registered plugin: a Plugin with a doc line and typed options
        cls = PLUGINS.get(name)
        assert issubclass(cls, Plugin) and cls.describe()
        parse_plugin(name)  # its defaults are valid


def test_l1_adds_its_penalty_in_the_stages_it_names() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    weights = sum(float(m.weight.detach().abs().sum()) for m in model)
    l1 = build_plugin("l1:weight=0.5")
    term = l1.extra_loss(model, None, None, HookContext("train"))
    assert float(term.detach()) == pytest.approx(0.5 * weights)  # weights only, not biases
    assert l1.extra_loss(model, None, None, HookContext("qat")) is None
    assert build_plugin("l1:weight=0.5,stages=all").extra_loss(model, None, None, HookContext("qat")) is not None
    assert build_plugin("l1:weight=0").extra_loss(model, None, None, HookContext("train")) is None
    assert l1.state_dict() == {"last_penalty": pytest.approx(0.5 * weights)}


def _data() -> tuple[HiNeRV, TrainingData]:
    t, y, x, c = torch.meshgrid(torch.arange(4.0), torch.arange(8.0), torch.arange(8.0), torch.arange(6.0),
                                indexing="ij")
    grid = (128 + 100 * torch.sin(0.3 * x + 0.2 * y + 0.5 * t + c)).round().to(torch.uint8)
    torch.manual_seed(0)
    model = HiNeRV(HiNeRVConfig(frames=4, height=8, width=8, out_channels=6, strides=(2, 2), channels=(8, 8),
                                depths=(1, 1), expansions=(2, 1), grid_frames=2, grid_channels=2, local_frames=4,
                                local_channels=4))
    return model, TrainingData(grid, 255, PlaneLayout(16, 16, 2, 2, True), batch_size=2)


class Events(TrainingHook):
    """Records the trainer's calls and checks what each one sees."""

    def __init__(self) -> None:
        self.log, self.contexts, self.optimizer = [], set(), None

    def make_optimizer(self, params, lr, stage):
        self.optimizer = torch.optim.SGD(params, lr=lr)
        return self.optimizer

    def on_stage_start(self, stage, model, ctx):
        self.log.append("start")
        assert ctx.optimizer is not None and ctx.device == torch.device("cpu") and ctx.total_steps == 4
        ctx.task_weight = 0.0  # the task loss counts for nothing: only the extra term trains

    def extra_loss(self, model, batch, output, ctx):
        self.log.append("loss")
        self.contexts.add(id(ctx))
        assert ctx.rank_weight == 1.0 and ctx.lr == pytest.approx(StageSpec("train", 2, 0.1).lr_at(ctx.step, 4))
        return model.head.bias.sum()

    def on_after_backward(self, model, ctx):
        self.log.append("backward")
        assert model.head.bias.grad is not None and torch.equal(model.head.bias.grad, torch.ones_like(model.head.bias))
        assert model.head.weight.grad is None or not model.head.weight.grad.any()  # task loss weighted to 0

    def on_step_end(self, step, model, ctx):
        self.log.append("step")

    def on_stage_end(self, stage, model, ctx):
        self.log.append("end")


def test_trainer_makes_every_call_with_one_context_per_stage() -> None:
    model, data = _data()
    events, watcher = Events(), Events()
    bias = model.head.bias.detach().clone()
    train_stage(model, data, StageSpec("train", 2, 0.1), TrainConfig(batch_size=2), 0,
                HookList([events, Observers([watcher])]), progress=False)
    assert events.log == ["start"] + ["loss", "backward", "step"] * 4 + ["end"]
    assert len(events.contexts) == 1  # the same context object all stage long
    assert isinstance(events.optimizer, torch.optim.SGD)  # the plugin's optimizer, not Adam
    # gradient 1 on each of the 6 bias entries, clipped to norm 1, plain SGD: the bias moved by the sum of the
    # learning rates / sqrt(6), nothing else
    lrs = sum(StageSpec("train", 2, 0.1).lr_at(s, 4) for s in range(4))
    assert torch.allclose(model.head.bias.detach(), bias - lrs / 6**0.5)
    # an observer sees the stage and step events only: no loss, no optimizer, no backward
    assert watcher.log == ["start"] + ["step"] * 4 + ["end"] and watcher.optimizer is None


def test_plugin_options_must_be_its_own() -> None:
    @dataclasses.dataclass(frozen=True)
    class Other:
        x: int = 1

    with pytest.raises(TypeError, match="expected L1Options options"):
        L1Penalty(Other())
