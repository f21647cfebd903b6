"""The distillation mechanisms (``indistill``, ``sharedproj``, ``compress.features``) on tiny models: channel
pruning keeps the most important channels, the curriculum advances layer by layer, projections are shared by shape,
the mix probability follows its ramp, and the mixed grid trains the student's grid through the frozen teacher."""
from __future__ import annotations

import pytest
import torch

from compress.features import (LayerTap, TeacherFeatures, channel_importance, layer_modules, layer_widths,
                               single_pass, top_channels)
from compress.hooks import HookContext
from compress.plugins.indistill import InDistill, InDistillOptions, curriculum_bounds
from compress.plugins.sharedproj import SharedProjections, SharedProjOptions, mix_probability, shared_projections
from inr.model import HiNeRV
from inr.presets import build_config

FRAMES = 4


def _models(seed: int = 0) -> tuple[HiNeRV, HiNeRV]:
    """(teacher, student) for one 32x24 clip: the teacher at 8x the student's parameters."""
    torch.manual_seed(seed)
    student_cfg = build_config(24, 32, FRAMES, 6, "s", 3000)
    teacher_cfg = build_config(24, 32, FRAMES, 6, "s", 24000, luma=student_cfg.luma is not None)  # as codec.teacher
    assert teacher_cfg.strides == student_cfg.strides
    teacher = HiNeRV(teacher_cfg).eval().requires_grad_(False)
    return teacher, HiNeRV(student_cfg)


def _ctx(step: int = 0, total: int = 40) -> HookContext:
    return HookContext(stage="train", step=step, total_steps=total, device=torch.device("cpu"), lr=1e-2)


def test_layers_line_up_between_teacher_and_student():
    teacher, student = _models()
    t, region = torch.tensor([0, 2]), (0, 24, 0, 32)
    tap_t, tap_s = LayerTap(teacher), LayerTap(student)
    with torch.no_grad(), single_pass(teacher), single_pass(student):
        teacher(t, region), student(t, region)
    maps_t, maps_s = tap_t.maps(2), tap_s.maps(2)
    assert len(maps_t) == len(maps_s) == len(layer_modules(student)) == len(student.config.stage_shapes()) + 2
    for mt, ms, wt, ws in zip(maps_t, maps_s, layer_widths(teacher), layer_widths(student)):
        assert mt.shape[:3] == ms.shape[:3] and (mt.shape[-1], ms.shape[-1]) == (wt, ws)
        assert wt >= ws
    tap_t.close()
    assert tap_t.seen == [[] for _ in maps_t] and not teacher._forward_hooks


def test_teacher_features_equal_a_forward_and_respect_the_budget():
    teacher, _ = _models()
    region = (0, 24, 0, 32)
    kept, none_kept = TeacherFeatures(teacher), TeacherFeatures(teacher, budget=0)
    tap = LayerTap(teacher)
    with torch.no_grad(), single_pass(teacher):
        teacher(torch.tensor([3, 1]), region)
    direct = tap.maps(2)
    tap.close()
    for features in (kept, none_kept):
        features.of(torch.tensor([1]), region)  # frame 1 first, alone
        for a, b in zip(features.of(torch.tensor([3, 1]), region), direct):
            assert torch.allclose(a, b, atol=1e-6)
    assert len(kept.kept) == 2 and kept.bytes > 0 and not none_kept.kept


def test_channel_pruning_keeps_the_most_important_channels():
    teacher, student = _models()
    last = teacher.stages[-1]
    strong = [1, 5] if layer_widths(teacher)[-1] > 5 else [0, 1]
    with torch.no_grad():
        for block in last.blocks:
            block.fc2.weight[strong] *= 50  # these channels' writers dominate
        teacher.stem.weight[2] *= 50
    scores = channel_importance(teacher)
    assert [s.shape[0] for s in scores] == list(layer_widths(teacher))
    keep = [top_channels(s, w) for s, w in zip(scores, layer_widths(student))]
    assert set(strong) <= set(keep[-1].tolist()) and 2 in keep[1].tolist()
    assert all(k.numel() == w and torch.equal(k, k.sort().values) for k, w in zip(keep, layer_widths(student)))
    # the L1 criterion itself: the kept stem channels are those with the largest filter norms
    norms = teacher.stem.weight.abs().flatten(1).sum(1)
    assert set(keep[1].tolist()) == set(torch.topk(norms, layer_widths(student)[1]).indices.tolist())
    plugin = InDistill(InDistillOptions())
    plugin.on_teacher(teacher)
    plugin.on_stage_start("train", student, _ctx())
    assert [torch.equal(a, b) for a, b in zip(plugin.keep, keep)] == [True] * len(keep)


def test_curriculum_bounds_follow_a_plus_l():
    assert curriculum_bounds(12, 3, 2.0) == [3, 7, 12]  # InDistill's 3:4:5
    assert curriculum_bounds(2, 4, 2.0) == [1, 2, 2, 2]  # too few steps: the first layers get one each
    b = curriculum_bounds(100, 5, 0.0)
    assert b[-1] == 100 and all(x < y for x, y in zip(b, b[1:]))


def _grads_after(plugin, student, step: int, total: int) -> set[int]:
    """The layers (by ``layer_modules`` index) whose parameters get a gradient from the plugin's term at ``step``."""
    ctx = _ctx(step, total)
    t, region = torch.tensor([0, 1]), (0, 24, 0, 32)
    student.zero_grad(set_to_none=True)
    out = student(t, region)
    term = plugin.extra_loss(student, (t, region, torch.rand_like(out)), out, ctx)
    if term is None:
        return set()
    term.backward()
    return {i for i, m in enumerate(layer_modules(student)) if any(p.grad is not None and p.grad.abs().sum() > 0
                                                                  for p in m.parameters())}


def test_the_curriculum_advances_layer_by_layer_then_trains_normally():
    teacher, student = _models()
    total = 100
    plugin = InDistill(InDistillOptions(warmup=0.5))
    plugin.on_teacher(teacher)
    ctx = _ctx(0, total)
    plugin.on_stage_start("train", student, ctx)
    layers = len(layer_modules(student))
    phases = [plugin.phase(s) for s in range(total)]
    assert phases[:50] == sorted(phases[:50]) and set(phases[:50]) == set(range(layers))
    assert phases[50:] == [None] * 50
    assert ctx.task_weight == 0.0
    # phase l trains layers up to l: the grid alone first, the last stage's block last
    first, last = plugin.bounds[0] - 1, plugin.bounds[-1] - 1
    assert _grads_after(plugin, student, 0, total) == {0}
    assert _grads_after(plugin, student, last, total) == {layers - 1} | (_grads_after(plugin, student, last, total))
    assert max(_grads_after(plugin, student, last, total)) == layers - 1
    assert max(_grads_after(plugin, student, first, total)) == 0
    plugin.on_step_end(49, student, ctx)  # the warm-up's last step: the task loss is back, the taps gone
    assert ctx.task_weight == 1.0 and not plugin.active and not student._forward_hooks
    assert plugin.extra_loss(student, None, None, _ctx(60, total)) is None


def test_without_the_curriculum_every_layer_learns_at_once():
    teacher, student = _models()
    plugin = InDistill(InDistillOptions(curriculum=False))
    plugin.on_teacher(teacher)
    plugin.on_stage_start("train", student, _ctx())
    assert {plugin.phase(s) for s in range(plugin.warm_steps)} == {-1}
    assert _grads_after(plugin, student, 0, 40) == set(range(len(layer_modules(student))))


def test_projections_are_shared_by_shape_and_keep_orthonormal_rows():
    projections, keys = shared_projections((9, 16, 16, 8, 8), (3, 8, 8, 4, 4))
    assert keys == ["9to3", "16to8", "16to8", "8to4", "8to4"] and len(projections) == 3
    for p in projections.values():
        w = p.weight
        assert torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-5)
    teacher, student = _models()
    plugin = SharedProjections(SharedProjOptions())
    plugin.on_teacher(teacher)
    plugin.on_stage_start("train", student, _ctx())
    stem, stage1 = plugin.keys[1], plugin.keys[2]  # the stem and the first stage have one width: one projection
    assert stem == stage1 and plugin.projections[stem] is plugin.projections[plugin.keys[2]]
    assert len(plugin.projections) == len(set(zip(layer_widths(teacher), layer_widths(student))))


def test_the_mix_probability_follows_its_ramp():
    assert mix_probability(0, 100, 0.5, 0.4) == 0.0
    assert mix_probability(20, 100, 0.5, 0.4) == pytest.approx(0.25)
    assert mix_probability(40, 100, 0.5, 0.4) == pytest.approx(0.5)
    assert mix_probability(99, 100, 0.5, 0.4) == pytest.approx(0.5)
    plugin = SharedProjections(SharedProjOptions(mix=0.8, ramp=0.5))
    total = 4000
    draws = [plugin.mixes(_ctx(s, total)) for s in range(total)]
    assert not any(draws[:20])
    early, late = sum(draws[:1000]) / 1000, sum(draws[2000:]) / 2000
    assert early == pytest.approx(0.2, abs=0.05) and late == pytest.approx(0.8, abs=0.05)
    assert draws == [plugin.mixes(_ctx(s, total)) for s in range(total)]  # drawn from the step alone


def test_a_mixed_step_trains_the_students_grid_through_the_frozen_teacher():
    teacher, student = _models()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    plugin = SharedProjections(SharedProjOptions(weight=0.0, mix=1.0, ramp=0.01, mix_weight=1.0))
    plugin.on_teacher(teacher)
    ctx = _ctx(30, 40)
    plugin.on_stage_start("train", student, ctx)
    assert plugin.mixes(ctx)
    t, region = torch.tensor([0, 1]), (0, 24, 0, 32)
    out = student(t, region)
    term = plugin.extra_loss(student, (t, region, torch.rand_like(out)), out, ctx)
    term.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.grid.parameters())
    assert all(p.grad is None for p in student.stages.parameters())  # weight 0: only the mixed path taught
    grid_projection = plugin.projections[plugin.keys[0]]
    assert grid_projection.parametrizations.weight.original.grad is not None
    plugin.on_step_end(30, student, ctx)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert not teacher.grid._forward_hooks and plugin.mixed_steps == 1


def test_projection_state_resumes():
    teacher, student = _models()
    plugin = SharedProjections(SharedProjOptions())
    plugin.on_teacher(teacher)
    ctx = _ctx(3, 40)
    plugin.on_stage_start("train", student, ctx)
    t, region = torch.tensor([0, 1]), (0, 24, 0, 32)
    out = student(t, region)
    plugin.extra_loss(student, (t, region, torch.rand_like(out)), out, ctx).backward()
    plugin.on_step_end(3, student, ctx)
    state = plugin.state_dict()
    again = SharedProjections(SharedProjOptions())
    again.load_state_dict(state)
    again.on_teacher(teacher)
    again.on_stage_start("train", student, ctx)
    for a, b in zip(plugin.projections.state_dict().values(), again.projections.state_dict().values()):
        assert torch.equal(a, b)
    assert again.optimizer.state_dict()["state"].keys() == plugin.optimizer.state_dict()["state"].keys()
    assert again.steps == plugin.steps == 1


def test_a_plugin_without_its_teacher_says_so():
    _, student = _models()
    with pytest.raises(RuntimeError, match="no teacher"):
        InDistill().on_stage_start("train", student, _ctx())


@pytest.mark.parametrize("cls,text,message", [
    (InDistillOptions, {"warmup": 1.0}, "warmup"), (InDistillOptions, {"teacher": "huge"}, "preset"),
    (SharedProjOptions, {"mix": 1.5}, "mix"), (SharedProjOptions, {"scale": 0.5}, "scale")])
def test_bad_options_are_refused(cls, text, message):
    with pytest.raises((ValueError, LookupError), match=message):
        cls(**text)
