"""Soft rounding (compress.entropy_quant.soft_round) and the ``softround`` plugin that anneals the entropy
quantizer's noise proxy towards hard rounding (its encodes: tests/codec/test_softround_encode.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.entropy_quant import (EntropyQuant, EntropyQuantConfig, entropy_quant_, entropy_tensors,
                                    set_temperature_, soft_round, tensor_rate_bits)
from compress.plugins.softround import SoftRoundOptions, annealed



def test_soft_rounding_goes_from_the_identity_to_rounding_and_keeps_the_integers():
    y = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    assert torch.allclose(soft_round(y, 1e3), y, atol=1e-6)
    assert torch.equal(soft_round(y, 1e-4)[(y - y.round()).abs() < 0.49], y.round()[(y - y.round()).abs() < 0.49])
    for t in (0.3, 0.1):
        s = soft_round(y, t)
        assert torch.all(s[1:] >= s[:-1])  # monotone, and continuous across the integers
        assert (s[1:] - s[:-1]).abs().max() < 0.2
        ints = torch.arange(-3.0, 4.0, dtype=torch.float64)
        assert torch.allclose(soft_round(ints, t), ints)
    # at a lower temperature the values sit nearer the integers
    off = y[(y - y.round()).abs() > 0.05]
    assert (soft_round(off, 0.1) - off.round()).abs().mean() < (soft_round(off, 0.3) - off.round()).abs().mean()
    # a tensor of temperatures broadcasts; the gradient is finite
    y = torch.tensor([0.2, 0.2], requires_grad=True)
    out = soft_round(y, torch.tensor([0.3, 0.1]))
    out.sum().backward()
    assert out[0] > out[1] > 0 and torch.isfinite(y.grad).all() and (y.grad > 0).all()


def quantized_linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layer = nn.Linear(16, 8)
    entropy_quant_(layer, EntropyQuantConfig(init_bits=4))
    return layer.train()


def test_a_cold_temperature_makes_the_noise_proxy_round_as_the_file_does():
    layer = quantized_linear()
    (_, q, w), *_ = [e for e in entropy_tensors(layer) if e[0] == "weight"]
    step = q.log_step.exp().detach()
    rounded = torch.round(w.detach() / step) * step
    set_temperature_(layer, 1e-6)  # (soft only where the noise lands within ~1e-5 of a half: no element here)
    assert torch.allclose(layer.weight.detach(), rounded, atol=1e-4 * float(step))
    set_temperature_(layer, 0.0)  # the plain proxy: w + Δu, never on the grid
    assert not torch.allclose(layer.weight.detach(), rounded, atol=1e-2 * float(step))


def test_the_rate_is_taken_on_the_soft_rounded_symbols():
    layer = quantized_linear()
    with torch.no_grad():  # symbols on the integers: soft rounding leaves them, the rate is the plain one
        for _, q, w in entropy_tensors(layer):
            step = q.log_step.exp()
            layer.get_parameter(_original(layer, q)).copy_(torch.round(w / step) * step)
    plain = _rate(layer, 0.0)
    assert torch.allclose(_rate(layer, 0.2), plain)
    other = quantized_linear(seed=1)  # off the integers it differs, and its gradient reaches the weights
    assert not torch.allclose(_rate(other, 0.2), _rate(other, 0.0))
    set_temperature_(other, 0.2)
    torch.manual_seed(0)
    tensor_rate_bits(other).sum().backward()
    assert other.parametrizations.weight.original.grad.abs().sum() > 0


def _original(layer: nn.Module, q: EntropyQuant) -> str:
    name = next(n for n, plist in layer.parametrizations.items() if q in list(plist))
    return f"parametrizations.{name}.original"


def _rate(layer: nn.Module, temperature: float) -> torch.Tensor:
    set_temperature_(layer, temperature)
    torch.manual_seed(0)
    with torch.no_grad():
        return tensor_rate_bits(layer)


def test_the_temperature_is_annealed_linearly_and_checked():
    assert annealed(0.3, 0.1, 0, 100) == 0.3 and annealed(0.3, 0.1, 50, 100) == pytest.approx(0.2)
    assert annealed(0.3, 0.1, 100, 100) == pytest.approx(0.1) == annealed(0.3, 0.1, 150, 100)
    for bad in ((0.1, 0.3), (0.3, 0.0)):
        with pytest.raises(ValueError, match="0 < end <= start"):
            SoftRoundOptions(*bad)
    with pytest.raises(ValueError, match="temperature >= 0"):
        set_temperature_(quantized_linear(), -1.0)
