"""compress.quantize: symmetric per-channel quantization, FakeQuant (STE, Quant-Noise), export/load."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from compress.prune import PruneConfig, bake_, prune_
from bitstream.tensors import QuantizedTensor
from compress.quantize import (
    FakeQuant,
    QuantConfig,
    compute_scales,
    dequantize_tensor,
    export_quantized,
    load_dequantized_,
    quantize_,
    quantize_tensor,
)


class Net(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.grid = nn.Parameter(torch.rand(3, 4, 5) * 2e-3 - 1e-3)  # HiNeRV-like grid, init U(±1e-3)
        self.conv = nn.Conv2d(3, width, 3)
        self.blocks = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.scale = nn.Parameter(torch.tensor(0.7))  # a 0-D parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        y = self.conv(x).mean(dim=(2, 3))  # (B, width)
        return self.blocks(y) * self.scale + self.grid.mean()


def make(seed: int = 0, width: int = 8) -> Net:
    torch.manual_seed(seed)
    return Net(width)


@pytest.mark.parametrize("bits", [2, 4, 6, 8, 12])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_round_trip_and_symbol_range(bits: int, axis: int | None) -> None:
    torch.manual_seed(bits)
    x = torch.randn(6, 7, 3) * torch.logspace(-3, 1, 7).reshape(1, 7, 1)
    q, s = quantize_tensor(x, bits, axis)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == torch.int32 and q.shape == x.shape
    assert int(q.abs().max()) <= qmax
    n = 1 if axis is None else x.shape[axis]
    assert s.dtype == torch.float32 and s.shape == (n,)
    assert torch.equal(s.half().float(), s)  # fp16-representable exactly
    y = dequantize_tensor(q, s, axis)
    assert y.dtype == torch.float32 and y.shape == x.shape
    ax = None if axis is None else axis % 3
    sb = s.reshape([1] * 3) if ax is None else s.reshape([-1 if d == ax else 1 for d in range(3)])
    assert ((y - x).abs() <= sb * (0.5 + 1e-6)).all()  # within half a step, no clipping
    if bits <= 8:  # normal-range fp16 scales: nearest rounding, and each channel's max reaches ±qmax
        amax = q.abs().amax() if ax is None else q.abs().amax(dim=tuple(d for d in range(3) if d != ax))
        assert (amax == qmax).all()
        xa = x.abs().amax() if ax is None else x.abs().amax(dim=tuple(d for d in range(3) if d != ax))
        assert torch.equal(s, (xa / qmax).half().float().reshape(-1))


@pytest.mark.parametrize("bits", [6, 8, 12, 16])
def test_tiny_channels_stay_within_half_a_step(bits: int) -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 50) * torch.logspace(-7, -2, 64).reshape(64, 1)  # fp16-subnormal scales
    q, s = quantize_tensor(x, bits, 0)
    assert (s > 0).all() and torch.equal(s.half().float(), s)
    assert ((dequantize_tensor(q, s, 0) - x).abs() <= s.reshape(64, 1) * (0.5 + 1e-6)).all()


def test_scales_definition_and_zero_channel() -> None:
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, -3.0, 2.0], [1e-9, 0.0, -1e-9], [1e8, 0.0, 0.0]])
    s = compute_scales(x, 8, 0)
    assert s[0] == 0  # all-zero channel
    assert s[1] == torch.tensor(3.0 / 127).half().float()
    assert s[2] == 2.0**-24  # would underflow fp16: rounded up to the smallest subnormal, not 0
    assert torch.isfinite(s).all() and s[3] == torch.finfo(torch.float16).max  # saturates, never inf
    q, s2 = quantize_tensor(x, 8, 0)
    assert torch.equal(s, s2) and (q[0] == 0).all()
    assert (dequantize_tensor(q, s, 0)[0] == 0).all()
    assert compute_scales(x, 8, None).shape == (1,)


@pytest.mark.parametrize("bad", [1, 17, 8.0, True])
def test_bad_bits(bad: object) -> None:
    with pytest.raises(ValueError):
        quantize_tensor(torch.ones(3), bad, None)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="finite"):
        quantize_tensor(torch.tensor([1.0, float("nan")]), 8, None)
    with pytest.raises(ValueError, match="axis"):
        quantize_tensor(torch.ones(2, 3), 8, 2)
    with pytest.raises(ValueError, match="expected 3 scale"):
        dequantize_tensor(torch.zeros(2, 3, dtype=torch.int32), torch.ones(2), 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"bits": 1}, {"bits": 17}, {"bits": 8.5}, {"per_channel": 1}, {"quant_noise": -0.1},
     {"quant_noise": 1.1}, {"quant_noise": "0.9"}, {"version": 0}],
)
def test_bad_quant_config(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        QuantConfig(**kwargs)


def test_fake_quant_eval_equals_quantize_dequantize_and_ste() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 9, requires_grad=True)
    fq = FakeQuant(4, 0, quant_noise=0.5).eval()
    y = fq(x)
    assert torch.equal(y, dequantize_tensor(*quantize_tensor(x.detach(), 4, 0), 0))
    g = torch.randn(5, 9)
    y.backward(g)
    assert torch.equal(x.grad, g)  # straight-through: gradient passes unchanged


def test_quant_noise_fraction() -> None:
    torch.manual_seed(0)
    bits, n = 6, 200_000
    scale_target = 1.0 / 31
    # every element sits 0.3 steps off the grid, so "quantized" and "passed through" are distinguishable
    x = (torch.randint(-25, 26, (n // 100, 100)).float() + 0.3) * scale_target
    x[:, 0] = 31 * scale_target
    fq = FakeQuant(bits, 0, quant_noise=0.9)
    xq = fq.eval()(x)
    assert not (xq == x).any()
    fq.train()
    for _ in range(3):
        y = fq(x)
        quantized = y == xq
        assert (quantized | (y == x)).all()
        frac = quantized.float().mean().item()
        assert abs(frac - 0.9) < 0.005  # std ~ 0.0007
    x.requires_grad_(True)
    y = fq(x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # identity gradient for quantized and unquantized elements
    assert FakeQuant(bits, 0, quant_noise=1.0).train()(x.detach()).eq(xq).all()


def test_quantize_registers_on_every_parameter() -> None:
    model = make()
    names = quantize_(model, QuantConfig(bits=6))
    assert sorted(names) == sorted(make().state_dict())  # weights, biases, grid, 0-D scale
    fq = model.conv.parametrizations.weight[0]
    assert isinstance(fq, FakeQuant) and (fq.bits, fq.axis) == (6, 0)
    assert model.blocks[0].parametrizations.bias[0].axis is None
    with pytest.raises(ValueError, match="already"):
        quantize_(model, QuantConfig())


def test_prune_then_quantize_keeps_zeros() -> None:
    model = make()
    prune_(model, PruneConfig(ratio=0.5))
    quantize_(model, QuantConfig(bits=4, quant_noise=0.5))
    plist = model.blocks[0].parametrizations.weight
    assert [type(p).__name__ for p in plist] == ["Mask", "FakeQuant"]
    mask = plist[0].mask
    for mode in (True, False):
        model.train(mode)
        assert (model.blocks[0].weight[~mask] == 0).all()
    model.train()
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    assert (plist.original.grad[~mask] == 0).all()  # Mask still blocks the gradient under the STE
    qts = {q.name: q for q in export_quantized(model, QuantConfig(bits=4))}
    assert (qts["blocks.0.weight"].symbols[~mask.numpy()] == 0).all()
    bake_(model)
    assert (model.blocks[0].weight[~mask] == 0).all()


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    bits=st.sampled_from([2, 3, 5, 6, 8]),
    per_channel=st.booleans(),
    prune=st.booleans(),
    width=st.integers(1, 6),
)
def test_export_load_reproduces_eval_forward(seed: int, bits: int, per_channel: bool, prune: bool, width: int) -> None:
    """export -> dequantize -> load == the FakeQuant forward in eval mode, bit for bit (== the baked model)."""
    cfg = QuantConfig(bits=bits, per_channel=per_channel, quant_noise=0.7)
    model = make(seed, width)
    if prune:
        prune_(model, PruneConfig(ratio=0.3))
    quantize_(model, cfg)
    model.train()
    model(torch.randn(2, 3, 5, 5)).sum().backward()  # a QAT step's forward/backward does not change anything
    model.eval()
    with torch.no_grad():
        expected = {n: getattr(model.get_submodule(n.rpartition(".")[0]), n.rpartition(".")[2]).clone()
                    for n in make(seed, width).state_dict()}
    qts = export_quantized(model, cfg)
    for qt in qts:
        assert qt.symbols.dtype == np.int32 and qt.scales.dtype == np.float16
        assert qt.symbols.shape == qt.shape and np.abs(qt.symbols).max(initial=0) <= 2 ** (bits - 1) - 1
    decoder = make(seed + 1, width)  # fresh, different weights
    load_dequantized_(decoder, qts)
    got = decoder.state_dict()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        ref = model(x)
    bake_(model)
    with torch.no_grad():
        assert torch.equal(model(x), ref)
        assert torch.equal(decoder(x), ref)


def test_export_from_baked_pruned_model_and_custom_axis() -> None:
    model = make()
    prune_(model, PruneConfig(ratio=0.25))
    bake_(model)
    cfg = QuantConfig(bits=8)
    qts = export_quantized(model, cfg, axis_fn=lambda name, p: -1 if p.ndim >= 2 else None,
                           filter_fn=lambda mn, m, pn, p: pn == "weight")
    assert [q.name for q in qts] == ["conv.weight", "blocks.0.weight", "blocks.2.weight"]
    assert all(q.axis == q.symbols.ndim - 1 and q.scales.shape == (q.shape[-1],) for q in qts)
    zeros = sum(int((q.symbols == 0).sum()) for q in qts)
    assert zeros >= round(0.25 * sum(q.symbols.size for q in qts))


def test_export_rejects_mismatched_config() -> None:
    model = make()
    quantize_(model, QuantConfig(bits=6))
    with pytest.raises(ValueError, match="bits=8"):
        export_quantized(model, QuantConfig(bits=8))
    with pytest.raises(ValueError, match="axis"):
        export_quantized(model, QuantConfig(bits=6, per_channel=False))


def test_load_errors_and_atomicity() -> None:
    model = make()
    qts = export_quantized(model, QuantConfig(bits=8))
    target = make(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    bad_name = QuantizedTensor("nope.weight", (1,), np.zeros(1, np.int32), np.ones(1, np.float16), None, 8)
    with pytest.raises(LookupError, match="nope.weight"):
        load_dequantized_(target, qts + [bad_name])
    q0 = next(q for q in qts if q.name == "blocks.0.weight")
    bad_shape = QuantizedTensor(q0.name, (2, 2), np.zeros((2, 2), np.int32), np.ones(2, np.float16), 0, 8)
    with pytest.raises(ValueError, match="expected shape"):
        load_dequantized_(target, qts[:1] + [bad_shape])
    bad_range = QuantizedTensor(q0.name, q0.shape, q0.symbols * 0 + 200, q0.scales, q0.axis, 8)
    with pytest.raises(ValueError, match="range"):
        load_dequantized_(target, [bad_range])
    with pytest.raises(ValueError, match="scale"):  # the one tensor record refuses it as it is made
        QuantizedTensor(q0.name, q0.shape, q0.symbols, q0.scales[:1], q0.axis, 8)
    after = target.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing written on failure
    parametrized = make()
    prune_(parametrized, PruneConfig())
    with pytest.raises(LookupError, match="bake_"):
        load_dequantized_(parametrized, qts)
    assert not parametrize.is_parametrized(target)


@pytest.mark.parametrize("steps", [("prune",), ("quant",), ("prune", "quant")])
def test_order_matches_fresh_model(steps: tuple[str, ...]) -> None:
    """Parametrizing moves tensors; export order and baked state_dict order still follow a fresh model."""
    fresh = list(dict(make().named_parameters()))
    model = make()
    if "prune" in steps:
        prune_(model, PruneConfig(ratio=0.2))
    if "quant" in steps:
        quantize_(model, QuantConfig(bits=6))
    assert [q.name for q in export_quantized(model, QuantConfig(bits=6))] == fresh
    bake_(model)
    assert list(model.state_dict()) == list(make().state_dict())
    assert [n for n, _ in model.named_parameters()] == fresh
