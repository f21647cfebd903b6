"""The mechanisms of the compression plugins: heavy-tailed noise (htsgd), low-rank factors (lowrank), weight
sharing (kmeans)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compress.hooks import HookContext
from compress.plugin_spec import build_plugin
from compress.plugins.htsgd import eligible, prunable_rows, symmetric_stable
from compress.plugins.kmeans import SharedWeights, kmeans_1d
from compress.plugins.lowrank import LowRankLinear, rank_for
from compress.prune import Mask, find_parametrization
from inr.config import HiNeRVConfig
from inr.model import HiNeRV


def _model() -> HiNeRV:
    torch.manual_seed(0)
    return HiNeRV(HiNeRVConfig(frames=4, height=8, width=8, out_channels=6, strides=(2, 2), channels=(16, 8),
                               depths=(1, 1), expansions=(4, 2), grid_frames=2, grid_channels=2, local_frames=4,
                               local_channels=4))


def _tail_index(x: torch.Tensor) -> float:
    """α of a standard SαS sample from its characteristic function exp(-|t|^α) at t = 1 and 1/2."""
    phi = lambda t: torch.cos(t * x).mean().item()  # noqa: E731
    return math.log(math.log(phi(1.0)) / math.log(phi(0.5))) / math.log(2.0)


@pytest.mark.parametrize("alpha", [1.2, 1.5, 1.75, 2.0])
def test_stable_sampler_recovers_its_tail_index(alpha):
    x = symmetric_stable(alpha, (100_000,), torch.Generator().manual_seed(1))
    assert abs(_tail_index(x) - alpha) < 0.1
    if alpha == 2.0:
        assert x.var().item() == pytest.approx(2.0, rel=0.03)  # α = 2 is N(0, 2)
    else:  # heavy tails: far more mass beyond 10 than a Gaussian could have
        assert (x.abs() > 10).float().mean().item() > 1e-3
    with pytest.raises(ValueError, match="alpha"):
        symmetric_stable(2.5, (3,))


def test_prunable_rows_keep_the_pruned_energy_within_the_share():
    w = torch.tensor([[3.0, 0.0], [0.1, 0.1], [1.0, 0.0], [0.0, 0.2], [2.0, 2.0]])
    rows = prunable_rows(w, 0.1)
    sq = w.pow(2).sum(1)
    assert rows.tolist() == [False, True, True, True, False]
    assert sq[rows].sum() <= 0.1 * sq.sum() and not prunable_rows(w, 0.0).any()


def test_htsgd_moves_eligible_rows_by_one_draw_each_then_prunes_rows():
    model = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plugin = build_plugin("htsgd:sigma=0.5")
    torch.manual_seed(3)
    plugin.on_step_end(0, model, HookContext("train", lr=0.01))
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {n for n, p in model.named_parameters() if eligible(n, p)} and moved
    assert not any(n.startswith(("head.", "stem.", "grid.")) or n.endswith(".bias") for n in moved)
    for n in moved:  # one scalar per output row: each row moved by a constant
        delta = (dict(model.named_parameters())[n] - before[n]).reshape(before[n].shape[0], -1)
        assert torch.allclose(delta, delta[:, :1].expand_as(delta))
    plugin.on_step_end(1, model, HookContext("qat", lr=0.01))  # stages=train: no noise in QAT
    assert plugin.steps == 1
    plugin.transform_model("prune", model)
    fc1 = model.stages[0].blocks[0].fc1
    _, mask = find_parametrization(fc1, "weight", Mask)
    zero_rows = (~mask.mask).all(1)
    assert torch.equal(zero_rows, (fc1.weight == 0).all(1)) and zero_rows.any()
    report = plugin.summary(model)
    assert 0 < report["prunable_fraction"] < 1 and report["rows_pruned"] == sum(p for p, _ in plugin.pruned.values())
    assert build_plugin("htsgd:noise=gaussian").options.tail == 2.0


def test_rank_by_energy_or_budget():
    s = torch.tensor([4.0, 2.0, 1.0, 0.5])
    assert rank_for(s, 0.75, 0.0, (8, 8)) == 1  # 16 / 21.25 = 0.75
    assert rank_for(s, 0.94, 0.0, (8, 8)) == 2 and rank_for(s, 0.95, 0.0, (8, 8)) == 3  # 20 / 21.25 = 0.941
    assert rank_for(s, 1.0, 0.0, (8, 8)) == 4
    assert rank_for(s, 0.9, 0.25, (8, 8)) == 1  # 0.25 * 64 / 16 parameters per rank


def test_lowrank_factorises_respects_ranks_and_rebuilds_from_its_record():
    model = _model()
    fc1 = model.stages[0].blocks[0].fc1
    w = fc1.weight.detach().clone()
    plugin = build_plugin("lowrank:keep=0.3")
    plugin.transform_model("prune", model)
    new = model.stages[0].blocks[0].fc1
    assert isinstance(new, LowRankLinear) and plugin.ranks[0] == new.rank == rank_for(
        torch.linalg.svdvals(w), 0.9, 0.3, tuple(w.shape))
    assert new.u.shape == (64, new.rank) and new.v.shape == (new.rank, 16)
    u, s, vh = torch.linalg.svd(w.double())
    best = (u[:, :new.rank] * s[:new.rank]) @ vh[:new.rank]  # the best rank-r approximation (Eckart-Young)
    assert torch.allclose((new.u @ new.v).double(), best, atol=1e-5)
    x = torch.randn(5, 16)
    assert torch.allclose(new(x), x @ (new.u @ new.v).T + new.bias, atol=1e-5)
    data = plugin.export_data(model)
    decoder = build_plugin("lowrank:keep=0.3")
    decoder.load_data(data)
    with torch.device("meta"):
        rebuilt = decoder.rebuild(_model())
    assert [(n, tuple(p.shape)) for n, p in rebuilt.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    summary = plugin.summary(model)
    assert summary["weights_factored"] < summary["weights_dense"] and summary["factorised"] == 4
    for bad in (b"", b"\x02\x05", b"\x01\x05\x00", b"\xff\xff\xff\xff\x0f"):
        with pytest.raises(ValueError):  # BitstreamError is a ValueError: the decoder says "bad PLUGINS section"
            build_plugin("lowrank").load_data(bad)
    too_many = build_plugin("lowrank")
    too_many.load_data(bytes([4, 99, 99, 99, 99]))
    with pytest.raises(ValueError, match="rank 99"):
        too_many.rebuild(_model())


def test_a_rebuilt_lowrank_layer_holds_defined_values_before_the_checkpoints():
    """On resume the rebuilt factors meet their quantizer before the checkpoint's values arrive: they must be
    drawn, not torch.empty's memory (which held NaN about one run in ten)."""
    layers = []
    for _ in range(2):
        torch.manual_seed(3)
        layers.append(LowRankLinear(48, 64, 5))
    first, second = layers
    for name, value in first.named_parameters():
        fan_in = 48 if name == "bias" else value.shape[1]
        assert torch.equal(value, dict(second.named_parameters())[name]), name  # the seed's, not memory's
        assert value.abs().max() <= 1 / math.sqrt(fan_in) and value.std() > 0, name


def test_kmeans_1d_finds_clusters_and_shared_weights_train_per_cluster():
    x = torch.cat([torch.full((50,), -1.0), torch.full((30,), 0.5), torch.full((20,), 2.0)]) + 0.01 * torch.randn(100)
    c, idx = kmeans_1d(x, 4, 20)
    assert torch.equal(c, c.sort().values)
    for value in (-1.0, 0.5, 2.0):
        assert (c - value).abs().min() < 0.02
    assert len(set(idx[:50].tolist())) == 1 and len(set(idx[80:].tolist())) == 1
    sw = SharedWeights(torch.tensor([-1.0, 0.5, 2.0, 3.0]), torch.tensor([[0, 1], [1, 2], [2, 2]]))
    out = sw(torch.zeros(3, 2))
    m, step = sw.grid()
    assert torch.equal(out, (m * step)[sw.index]) and (out - sw.codebook.detach()[sw.index]).abs().max() < 1e-3
    out.sum().backward()
    assert sw.codebook.grad.tolist() == [1.0, 2.0, 3.0, 0.0]  # the gradient of a centroid: sum over its cluster


def test_kmeans_indices_decode_to_the_codebook():
    model = _model()
    plugin = build_plugin("kmeans:bits=3,min_size=64")
    claimed = [n for n, p in model.named_parameters() if plugin.claims(n, p)]
    assert claimed and all(n.endswith(".weight") for n in claimed)
    plugin.transform_model("prune", model)
    from compress.quantize import QuantConfig, export_quantized

    others = export_quantized(model, QuantConfig(bits=8), filter_fn=lambda mn, m, pn, p: not plugin.claims(
        f"{mn}.{pn}" if mn else pn, p))
    tensors = plugin.on_export(model, others)
    assert len(tensors) == len(others) + 2 * len(claimed)
    index = next(t for t in tensors if t.name == claimed[0] + ".index")
    assert index.bits == 3 and 0 <= index.symbols.min() and index.symbols.max() < 8
    decoded = plugin.decode_tensors(_model(), [t for t in tensors])
    names = [n for n, _ in _model().named_parameters()]
    values = dict(zip(names, decoded))
    module = model.stages[0].blocks[0]
    with torch.no_grad():
        assert np.array_equal(values["stages.0.blocks.0.fc1.weight"].dequantize(), module.fc1.weight.numpy())
    i = next(k for k, t in enumerate(tensors) if t.name.endswith(".index"))
    with pytest.raises(ValueError, match="needs an index and a codebook"):  # a list cut after an index
        plugin.decode_tensors(_model(), tensors[: i + 1])
    tensors[i].symbols[(0,) * tensors[i].symbols.ndim] = 8  # an index past the 2^3 codebook
    with pytest.raises(ValueError, match="outside 0..7"):
        plugin.decode_tensors(_model(), tensors)
    assert plugin.summary(model)["tensors_shared"] == len(claimed)


def test_infonce_is_the_positives_share_and_falls_as_anchors_learn():
    from compress.plugins.cap import contrastive_loss

    torch.manual_seed(0)
    bank = torch.randn(6, 8)  # two banks of 3 frames: frame i at rows i and i + 3
    positive = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0]], dtype=torch.bool)
    anchor = torch.randn(2, 8, requires_grad=True)
    loss, _ = contrastive_loss(anchor, bank, positive, 0.1)
    s = torch.nn.functional.normalize(anchor, dim=-1) @ torch.nn.functional.normalize(bank, dim=-1).T
    manual = -(torch.log_softmax(s / 0.1, -1) * positive).sum(-1) / 2
    assert torch.allclose(loss, manual.mean())
    opt = torch.optim.Adam([anchor], lr=0.05)
    first = float(loss.detach())
    for _ in range(100):
        opt.zero_grad()
        loss, _ = contrastive_loss(anchor, bank, positive, 0.1)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_rana_weights_sum_to_one_and_favour_hard_negatives():
    from compress.plugins.cap import contrastive_loss, rana_weights

    s = torch.tensor([[0.9, 0.8, 0.1, -0.5]])
    negative = torch.tensor([[False, True, True, True]])
    a = rana_weights(s, negative, 0.1)
    assert a.sum().item() == pytest.approx(1.0) and a[0, 0] == 0
    assert a[0, 1] > a[0, 2] > a[0, 3]  # the most similar negative weighs most
    anchor = torch.tensor([[1.0, 0.0]])
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # the positive, then two easy negatives
    positive = torch.tensor([[True, False, False]])
    loss, single = contrastive_loss(anchor, bank, positive, 0.1, "rana", gamma=0.1)
    assert float(loss) == 0.0 and float(single[0]) == 0.0  # every margin met: zero loss
    hard = torch.tensor([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.0]])  # one negative nearly as close as the positive
    loss, _ = contrastive_loss(anchor, hard, positive, 0.1, "rana", gamma=0.1)
    assert float(loss) > 0


def test_cap_prunes_each_block_in_steps_by_importance():
    from compress.plugins.cap import ContrastivePruning

    model = _model()
    plugin = build_plugin("cap:sparsity=0.5,steps=2")
    plugin.transform_model("prune", model)
    ctx = HookContext("prune", total_steps=6, device=torch.device("cpu"))
    plugin.on_stage_start("prune", model, ctx)
    assert len(plugin.banks) == 1  # the dense model
    kept = []
    for step in range(6):
        ctx.step = step
        out = model(torch.tensor([0, 1]))
        extra = plugin.extra_loss(model, (torch.tensor([0, 1]), model.full_region, None), out, ctx)
        (out.square().mean() + extra).backward()
        plugin.on_after_backward(model, ctx)
        plugin.on_step_end(step, model, ctx)
        model.zero_grad()
        kept.append([int(b.fc1.weight.any(1).sum()) for _, b in ContrastivePruning.blocks(model)])
    hidden = [b.fc1.out_features for _, b in ContrastivePruning.blocks(model)]
    assert kept[0] == hidden and kept[-1] == [h - int(0.5 * h) for h in hidden]
    assert any(k != hidden and k != kept[-1] for k in kept)  # a step between: pruned in steps
    assert len(plugin.banks) == 2 and plugin.done_steps == 2  # a snapshot before the second step
    block = ContrastivePruning.blocks(model)[0][1]
    dead = ~block.fc1.weight.any(1)
    assert not block.fc2.weight[:, dead].any() and not block.fc1.bias[dead].any()
    plugin.on_stage_end("prune", model, ctx)
    assert plugin.banks == [] and plugin.summary(model)["channels_kept"] == sum(kept[-1])
