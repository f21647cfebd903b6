"""Entropy-aware quantization: the rate model against the real coder, gradients, exact export."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from bitstream.entropy import RANGE_CODER_OVERHEAD_BYTES, ModelSpec, encode
from bitstream.compact import STEP_EXP_MIN, minifloat_code
from bitstream.packed import COMPACT, encode_packed, is_compact
from bitstream.tensors import QuantizedTensor
from compress.entropy_quant import (
    EntropyQuantConfig,
    entropy_quant_,
    entropy_tensors,
    export_entropy,
    hard_rate_bits,
    hard_tensor_bits,
    rate_bits,
    set_mode_,
    symbol_bits,
)
from compress.entropy_rate import EntropyHook
from compress.rate_control import steer
from compress.hooks import HookContext
from compress.quantize import load_dequantized_, quantize_, QuantConfig


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                         nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_symbol_bits_match_the_range_coder(kind):
    rng = np.random.default_rng(1)
    for scale in (0.7, 3.0, 40.0):
        s16 = float(np.float16(scale))
        x = np.round(rng.laplace(0.3, s16, 4000) if kind == "laplace" else rng.normal(0.3, s16, 4000))
        x = x.astype(np.int32)
        lo, hi = int(x.min()), int(x.max())
        payload = encode(x, ModelSpec(kind, lo, hi, (0.25, s16)))
        y = torch.tensor(x, dtype=torch.float32)
        bits = symbol_bits(kind, y, torch.tensor(0.25), torch.tensor(s16), y == lo, y == hi).sum().item()
        assert len(payload) == pytest.approx(bits / 8 + RANGE_CODER_OVERHEAD_BYTES, abs=4)


def test_noise_and_ste_gradients_reach_weights_steps_and_models():
    for mode in ("noise", "ste"):
        net = _net()
        entropy_quant_(net)
        set_mode_(net, mode)
        net.train()
        out = net(torch.randn(2, 3, 6, 6))
        (out.square().mean() + 1e-3 * rate_bits(net)).backward()
        grads = torch.stack([q.raw.grad for _, q, _ in entropy_tensors(net)])  # (log step, loc, log scale)
        assert bool(torch.isfinite(grads).all()), mode
        assert ((grads != 0).sum(0) >= 3).all(), (mode, grads)  # a Laplace loc gradient may cancel exactly
        originals = [p for n, p in net.named_parameters() if n.endswith("original")]
        assert len(originals) == 6 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in originals)


def test_rate_term_shrinks_the_symbols():
    net = _net()
    entropy_quant_(net)
    before = sum(hard_tensor_bits(net))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        rate_bits(net).backward()  # rate only: steps grow, scales shrink
        opt.step()
    assert sum(hard_tensor_bits(net)) < 0.75 * before


@pytest.mark.parametrize("per_channel", [False, True])
def test_export_is_the_eval_forward_bit_for_bit_and_codes_at_the_estimated_rate(per_channel):
    net = _net()
    entropy_quant_(net, EntropyQuantConfig(init_bits=5, per_channel=per_channel))
    net.eval()
    x = torch.randn(3, 3, 6, 6)
    ref = net(x)
    qts = export_entropy(net)
    assert [q.name for q in qts] == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    plain = _net()
    load_dequantized_(plain, qts)
    assert torch.equal(plain.eval()(x), ref)
    records = [QuantizedTensor(q.name, q.shape, q.symbols, q.scales, q.axis, q.bits, entropy=q.entropy)
               for q in qts]
    coded = encode_packed(records)
    laid_out = encode_packed(records, payload_bits=hard_tensor_bits(net))
    assert len(laid_out) == pytest.approx(len(coded), rel=0.03)
    assert [q.axis for q in qts] == ([0, None, 0, None, 0, None] if per_channel else [None] * 6)
    assert [q.scales.size for q in qts][0] == (8 if per_channel else 1)
    # trained and exported on format version 4's grids: every step a minifloat, every model compact
    assert all(is_compact(q) for q in records) and coded[0] & COMPACT
    assert all(minifloat_code(float(s), STEP_EXP_MIN) is not None for q in qts for s in q.scales)


def test_per_channel_steps_learn_and_differ():
    net = _net()
    entropy_quant_(net, EntropyQuantConfig(per_channel=True))
    net.train()
    (net(torch.randn(2, 3, 6, 6)).square().mean() + 1e-3 * rate_bits(net)).backward()
    q = next(iter(entropy_tensors(net)))[1]
    assert q.raw_channel.grad is not None and bool((q.raw_channel.grad != 0).all())
    assert q.log_step.shape == (8,) and len(set(q.stored_step().tolist())) > 1


def test_refuses_double_quantization_and_bad_modes():
    net = _net()
    entropy_quant_(net)
    with pytest.raises(ValueError, match="already quantized"):
        entropy_quant_(net)
    with pytest.raises(ValueError, match="expected one of"):
        set_mode_(net, "soft")
    other = _net()
    quantize_(other, QuantConfig(bits=6))
    with pytest.raises(ValueError, match="already quantized"):
        entropy_quant_(other)
    with pytest.raises(ValueError, match="distribution"):
        EntropyQuantConfig(distribution="cauchy")


def test_hook_attaches_rounds_hard_and_steers_lambda():
    net = _net()
    hook = EntropyHook(pixels=1000, lam=1.0, target_bits=10.0, side_bits=lambda m: 80.0)
    hook.transform_model("train", net)
    assert next(iter(entropy_tensors(net)))[1].mode == "noise"
    ctx = HookContext(stage="train", step=0, total_steps=10, epoch=0)
    hook.on_stage_start("train", net, ctx)
    term = hook.extra_loss(net, None, None, ctx)
    assert term.requires_grad and term.item() > 0
    ctx.loss_scale = 1e-3  # a loss that is not a logarithm: λ is per unit of its log
    assert hook.extra_loss(net, None, None, ctx).item() < 0.01 * term.item()
    ctx.loss_scale = 1.0
    hook.on_step_end(0, net, ctx)
    assert hook.lam > 1.0  # far over a 10-bit target: the rate weight goes up
    hook.transform_model("qat", net)
    assert {q.mode for _, q, _ in entropy_tensors(net)} == {"ste"}
    state = hook.state_dict()
    other = EntropyHook(pixels=1000)
    other.load_state_dict(state)
    assert other.lam == hook.lam and other.side_bits == 80.0
    assert steer(2.0, 50.0, 100.0, 1.0, (1e-3, 10.0)) == 1.0
    assert steer(2.0, 1e9, 1.0, 1.0, (1e-3, 10.0)) == 10.0


@pytest.mark.parametrize("freeze", [True, False])
def test_hard_rounding_stage_meets_the_target_then_trains_the_weights_alone(freeze):
    """freeze_rate: the steps are scaled to the target as hard rounding starts, then stay; the rate term and the
    controller are off, and the steps and entropy models get no gradient. freeze_rate=False: all go on."""
    net = _net()
    hook = EntropyHook(pixels=1000, lam=1.0, side_bits=lambda m: 80.0, freeze_rate=freeze)
    hook.transform_model("train", net)
    hook.on_stage_start("train", net, HookContext(stage="train"))
    file_bits = hard_rate_bits(net) + 80.0
    hook.target_bits = target = 0.6 * file_bits
    steps = [float(q.stored_step().detach().max()) for _, q, _ in entropy_tensors(net)]
    hook.transform_model("qat", net)
    ctx = HookContext(stage="qat")
    hook.on_stage_start("qat", net, ctx)
    after = hard_rate_bits(net) + 80.0
    if freeze:
        assert abs(after / target - 1) <= 0.02
        steps_now = [float(q.stored_step().detach().max()) for _, q, _ in entropy_tensors(net)]
        assert all(now > s for now, s in zip(steps_now, steps))  # coarser
        assert hook.extra_loss(net, None, None, ctx) is None
    else:
        assert after == pytest.approx(file_bits)
        assert hook.extra_loss(net, None, None, ctx).requires_grad
    out = net(torch.randn(2, 3, 6, 6)).pow(2).mean()
    out.backward()
    hook.on_after_backward(net, ctx)
    grads = [p.grad for _, q, _ in entropy_tensors(net) for p in q.parameters()]
    assert all(g is None for g in grads) if freeze else any(g is not None for g in grads)
    lam = hook.lam
    hook.on_step_end(0, net, ctx)
    assert (hook.lam == lam) if freeze else (hook.lam != lam)
    assert hook.last_file_bits == pytest.approx(hard_rate_bits(net) + 80.0)


def test_the_quantized_tensors_follow_the_models_structure():
    """entropy_tensors keeps its walk of the model while the model's modules stay the same objects: a quantizer
    registered later, a parametrization removed or a module replaced is seen at the next call."""
    net = _net()
    entropy_quant_(net, filter_fn=lambda mname, module, pname, p: mname == "0")
    assert [n for n, _, _ in entropy_tensors(net)] == ["0.weight", "0.bias"]
    assert [q for _, q, _ in entropy_tensors(net)] == [q for _, q, _ in entropy_tensors(net)]  # kept
    entropy_quant_(net, filter_fn=lambda mname, module, pname, p: mname == "4")
    assert [n for n, _, _ in entropy_tensors(net)] == ["0.weight", "0.bias", "4.weight", "4.bias"]
    net[4] = nn.Linear(8 * 6 * 6, 10)
    assert [n for n, _, _ in entropy_tensors(net)] == ["0.weight", "0.bias"]
    parametrize.remove_parametrizations(net[0], "bias")
    names = [n for n, _, x in entropy_tensors(net)]
    assert names == ["0.weight"]
    with torch.no_grad():
        net[0].parametrizations.weight.original.mul_(2)  # the values are read afresh at every call
    assert torch.equal(next(iter(entropy_tensors(net)))[2], net[0].parametrizations.weight.original)
