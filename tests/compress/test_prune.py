"""compress.prune: global magnitude pruning with size normalisation, masks as parametrizations, baking."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from compress.prune import Mask, PruneConfig, PruneReport, bake_, named_tensors, prune_, sparsity


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.grid = nn.Parameter(torch.randn(4, 3, 5))  # raw parameter: not pruned by default
        self.conv = nn.Conv2d(3, 8, 3)
        self.blocks = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        y = self.conv(x).mean(dim=(2, 3))  # (B, 8)
        return self.norm(self.blocks(y)) + self.grid.mean()


def make(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


@pytest.mark.parametrize("ratio", [0.0, 0.15, 0.333, 0.5, 1.0])
def test_prunes_exactly_round_ratio_globally(ratio: float) -> None:
    model = make()
    n = sum(p.numel() for p in (model.conv.weight, model.blocks[0].weight, model.blocks[2].weight))
    report = prune_(model, PruneConfig(ratio=ratio))
    assert isinstance(report, PruneReport)
    assert report.total == n
    assert report.pruned == round(ratio * n)
    assert set(report.tensors) == {"conv.weight", "blocks.0.weight", "blocks.2.weight"}
    zeros = sum(int((getattr(m, "weight") == 0).sum()) for m in (model.conv, model.blocks[0], model.blocks[2]))
    assert zeros == round(ratio * n)
    assert sparsity(model) == pytest.approx(round(ratio * n) / n)
    # names are kept, biases and the grid untouched
    assert parametrize.is_parametrized(model.conv, "weight")
    assert not parametrize.is_parametrized(model.conv, "bias")
    assert not parametrize.is_parametrized(model)


def test_global_not_per_layer_and_scores() -> None:
    model = make()
    cfg = PruneConfig(ratio=0.3, size_exponent=0.5)
    before = {name: getattr(m, pn).detach().clone() for name, m, pn, _ in named_tensors(model, lambda *a: True)}
    prune_(model, cfg)
    scores, pruned = [], []
    for name in ("conv.weight", "blocks.0.weight", "blocks.2.weight"):
        w = before[name]
        scores.append((w.abs() / w.numel() ** 0.5).reshape(-1))
        mod = model.get_submodule(name.rsplit(".", 1)[0])
        pruned.append((mod.weight == 0).reshape(-1))
    s, p = torch.cat(scores), torch.cat(pruned)
    assert s[p].max() <= s[~p].min()  # every pruned weight scores below every kept weight


def _two_layers() -> nn.Module:
    small = nn.Linear(2, 2, bias=False)  # 4 weights of magnitude 0.1
    big = nn.Linear(20, 20, bias=False)  # 400 weights in [0.15, 1]
    with torch.no_grad():
        small.weight.fill_(0.1)
        big.weight.copy_(torch.linspace(0.15, 1.0, 400).reshape(20, 20))
    return nn.Sequential(small, big)


def test_size_normalisation_changes_which_layer_is_pruned() -> None:
    ratio = 4 / 404
    plain = _two_layers()
    prune_(plain, PruneConfig(ratio=ratio, size_exponent=0.0))
    assert (plain[0].weight == 0).all() and not (plain[1].weight == 0).any()

    normed = _two_layers()  # small: 0.1/2 = 0.05; big's smallest: 0.15/20 = 0.0075 -> big loses its 4 smallest
    report = prune_(normed, PruneConfig(ratio=ratio, size_exponent=0.5))
    assert not (normed[0].weight == 0).any()
    assert report.tensors == {"0.weight": (4, 0), "1.weight": (400, 4)}
    assert torch.equal((normed[1].weight == 0).reshape(-1)[:5], torch.tensor([True] * 4 + [False]))


def test_masked_gradients_are_zero_and_optimizer_keeps_zeros() -> None:
    model = make()
    prune_(model, PruneConfig(ratio=0.4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(2, 3, 6, 6)
    for _ in range(3):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    for lin in (model.conv, model.blocks[0], model.blocks[2]):
        mask = lin.parametrizations.weight[0].mask
        grad = lin.parametrizations.weight.original.grad
        assert grad is not None and (grad[~mask] == 0).all() and (grad[mask] != 0).any()
        assert (lin.weight[~mask] == 0).all()


def test_bake_leaves_exact_zeros_and_same_outputs() -> None:
    model = make()
    prune_(model, PruneConfig(ratio=0.5))
    x = torch.randn(2, 3, 6, 6)
    ref = model(x)
    w_param = model.blocks[0].parametrizations.weight.original
    baked = bake_(model)
    assert sorted(baked) == ["blocks.0.weight", "blocks.2.weight", "conv.weight"]
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert model.blocks[0].weight is w_param  # same Parameter object: optimizers stay valid
    assert torch.equal(model(x), ref)
    zeros = sum(int((m.weight == 0).sum()) for m in (model.conv, model.blocks[0], model.blocks[2]))
    assert zeros == round(0.5 * (8 * 3 * 9 + 8 * 16 + 16 * 8))
    assert set(model.state_dict()) == set(make().state_dict())


def test_reprune_merges_masks() -> None:
    model = make()
    prune_(model, PruneConfig(ratio=0.2))
    first = model.blocks[0].parametrizations.weight[0].mask.clone()
    report = prune_(model, PruneConfig(ratio=0.5))
    plist = model.blocks[0].parametrizations.weight
    assert len(plist) == 1 and isinstance(plist[0], Mask)
    assert not (plist[0].mask & ~first).any()  # previously pruned entries stay pruned
    assert report.pruned == round(0.5 * report.total)
    assert sparsity(model) == pytest.approx(report.ratio)


def test_custom_filter_and_errors() -> None:
    model = make()
    report = prune_(model, PruneConfig(ratio=0.5), filter_fn=lambda mn, m, pn, p: pn == "grid")
    assert report.tensors == {"grid": (60, 30)}
    assert int((model.grid == 0).sum()) == 30
    with pytest.raises(ValueError, match="no|none"):
        prune_(make(), PruneConfig(), filter_fn=lambda *a: False)
    with pytest.raises(TypeError):
        prune_(make(), {"ratio": 0.1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"ratio": -0.1}, {"ratio": 1.5}, {"ratio": float("nan")}, {"ratio": "0.1"}, {"ratio": True},
     {"size_exponent": -1.0}, {"size_exponent": float("inf")}, {"version": 2}],
)
def test_bad_prune_config(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PruneConfig(**kwargs)


def test_prune_config_is_frozen() -> None:
    with pytest.raises(Exception):
        PruneConfig().ratio = 0.3  # type: ignore[misc]
