"""compress.sbs: SBS bit sharing, width gates, group pruning, rate term, freeze, export, hook."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bitstream.tensors import QuantizedTensor, decode_tensors, encode_tensors, tensor_breakdown
from compress.hooks import PLUGINS, HookContext, HookList
from compress.quantizers import QUANTIZERS
from compress.prune import PruneConfig, bake_, prune_
from compress.quantize import QuantConfig, load_dequantized_
from compress.sbs import (
    SBSConfig,
    SBSQuant,
    chosen_widths,
    export_sbs,
    freeze_gates_,
    not_sbs_filter,
    sbs_,
    sbs_tensors,
)
from compress.sbs_rate import SBSHook, bisect_lambda, rate_bits, reopenable_, rescale_v_, sbs_loss


class Net(nn.Module):
    """Grid + depthwise conv + linear layers, like a tiny HiNeRV."""

    def __init__(self) -> None:
        super().__init__()
        self.grid = nn.Parameter(torch.randn(1, 4, 5, 8) * 0.1)  # (1, H, W, C)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self) -> torch.Tensor:
        h = self.dw(self.grid.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (1, H, W, 8)
        return self.fc2(torch.nn.functional.gelu(self.fc1(h)))  # (1, H, W, 3)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: threads only add contention on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def bits_of(model: nn.Module) -> float:
    return float(rate_bits(model).detach())


def grid_axis(name: str, p: torch.Tensor) -> int | None:
    return p.ndim - 1 if name == "grid" else (0 if p.ndim >= 2 else None)


def make(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def direct(z: torch.Tensor, bits: int) -> torch.Tensor:
    s = 1.0 / (2**bits - 1)
    return s * torch.round(z / s)


def test_bit_sharing_equals_direct_quantization_paper() -> None:
    torch.manual_seed(0)
    z = torch.rand(10_000, dtype=torch.float64)
    z2 = direct(z, 2)  # the spec's float formulas, literally
    e4 = direct(z - z2, 4)
    z4 = z2 + e4
    e8 = direct(z - z4, 8)
    assert torch.allclose(z4, direct(z, 4), atol=1e-12, rtol=0)
    assert torch.allclose(z4 + e8, direct(z, 8), atol=1e-12, rtol=0)
    # the module's integer-unit decomposition: k_b / (2**b - 1) equals direct quantization at each width
    q = SBSQuant((10_000,), None, grid="paper", v_init=1.0)
    w = (2 * z - 1).float()
    st = q._state(w, q._normalise(w))
    for k, b in zip(st.ks, (2, 4, 8)):
        assert torch.allclose(k.double() / (2**b - 1), direct(q._normalise(w).double(), b), atol=1e-6, rtol=0)
    # not nested for 2 -> 3: the residual sum differs from direct 3-bit quantization
    z3 = z2 + direct(z - z2, 3)
    assert not torch.allclose(z3, direct(z, 3), atol=1e-6)


def test_midtread_nesting_and_decomposition() -> None:
    def levels(b: int) -> set[float]:
        n = 2 ** (b - 1)
        return {k / n for k in range(-(n - 1), n)}

    assert levels(2) == {-0.5, 0.0, 0.5} and levels(2) < levels(4) < levels(8)
    torch.manual_seed(1)
    w = torch.rand(5000) * 2.4 - 1.2  # beyond ±v too
    q = SBSQuant((5000,), None, grid="midtread", v_init=1.0)
    u = q._normalise(w)
    st = q._state(w, u)
    for k, b in zip(st.ks, (2, 4, 8)):
        n = 2 ** (b - 1)
        assert torch.equal(k, torch.round(w.clamp(-1, 1) * n).clamp(-(n - 1), n - 1))
    assert bool((st.ks[0] == 0).any())  # a zero level


@pytest.mark.parametrize("grid", ["paper", "midtread"])
def test_gate_closes_for_weights_on_the_2bit_grid(grid: str) -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 4))
    # 2-bit grid for v = 1: paper {-1, -1/3, 1/3, 1}, mid-tread {-1/2, 0, 1/2}
    lv = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0] if grid == "paper" else [-0.5, 0.0, 0.5])
    with torch.no_grad():
        model[0].weight.copy_(lv[torch.randint(0, len(lv), (8, 6))])
        model[0].weight[0, : len(lv)] = lv
    sbs_(model, SBSConfig(grid=grid, prune=False), filter_fn=lambda mn, m, pn, p: pn == "weight")
    with torch.no_grad():
        model[0].parametrizations.weight[0].log_v.fill_(0.0)
    widths = chosen_widths(model)
    assert widths == {"0.weight": (2, 0.0), "1.weight": (8, 0.0)}
    assert torch.allclose(model[0].weight, model[0].parametrizations.weight.original, atol=1e-3)


def test_gradients_reach_v_weights_and_thresholds() -> None:
    model = make()
    sbs_(model, SBSConfig(init_prune_threshold=0.2), axis_fn=grid_axis)
    loss = sbs_loss(model().square().mean(), model, lam=0.1)
    loss.backward()
    for _, module, pname, q, _ in sbs_tensors(model):
        orig = module.parametrizations[pname].original
        assert orig.grad is not None and orig.grad.abs().sum() > 0
        assert q.log_v.grad is not None and q.log_v.grad.abs() > 0
        assert q.alpha_raw.grad is not None and bool((q.alpha_raw.grad != 0).all()), pname
    pruned_any = [q for *_, q, _ in sbs_tensors(model) if q.alpha_p_raw.grad is not None and q.alpha_p_raw.grad != 0]
    assert pruned_any  # α_p gets gradient (sigmoid surrogate) where groups are near the threshold


@pytest.mark.parametrize("grid,v_per_channel", [("paper", False), ("midtread", False), ("midtread", True)])
def test_pruned_channels_decode_to_exact_zeros(grid: str, v_per_channel: bool) -> None:
    model = make()
    with torch.no_grad():
        model.fc1.weight[4:8] *= 1e-3  # group 1 (channels 4..7) is tiny (also next to its own per-channel v)
    sbs_(model, SBSConfig(grid=grid, group_size=4, init_prune_threshold=0.05, v_per_channel=v_per_channel),
         axis_fn=grid_axis)
    w = model.fc1.weight
    assert bool((w[4:8] == 0).all()) and bool((w[:4] != 0).sum() > 16)
    assert chosen_widths(model)["fc1.weight"][1] == pytest.approx(0.25)
    qts = {qt.name: qt for qt in export_sbs(model)}
    assert not qts["fc1.weight"].symbols[4:8].any() and bool((qts["fc1.weight"].dequantize()[4:8] == 0).all())
    freeze_gates_(model)
    assert bool((model.fc1.weight[4:8] == 0).all())


def test_whole_tensor_pruned_exports_zeros() -> None:
    model = nn.Sequential(nn.Linear(3, 4))
    sbs_(model, SBSConfig(init_prune_threshold=2.0), filter_fn=lambda mn, m, pn, p: pn == "bias")
    assert chosen_widths(model) == {"0.bias": (0, 1.0)}
    (qt,) = export_sbs(model)
    assert not qt.symbols.any() and bits_of(model) == 0.0


@pytest.mark.parametrize("grid,v_per_channel", [("paper", False), ("midtread", False), ("midtread", True)])
def test_export_equals_eval_forward_and_survives_the_bitstream(grid: str, v_per_channel: bool) -> None:
    model = make(3)
    prune_(model, PruneConfig(ratio=0.2))  # SBS stacks on a Mask
    sbs_(model, SBSConfig(grid=grid, init_prune_threshold=0.15, v_per_channel=v_per_channel), axis_fn=grid_axis,
         filter_fn=lambda mn, m, pn, p: pn != "bias")
    model.fc1.parametrizations.weight[1].set_thresholds(alpha=0.5)  # fc1 at 2 bits
    model.eval()
    qts = export_sbs(model, fallback=QuantConfig(bits=6))
    assert [qt.name for qt in qts] == [n for n, _ in make().named_parameters()]
    coded = [QuantizedTensor("", qt.shape, qt.symbols, qt.scales, qt.axis, qt.bits) for qt in qts]
    decoded = decode_tensors(encode_tensors(coded))
    for qt, d in zip(qts, decoded):
        assert np.array_equal(d.symbols, qt.symbols) and np.array_equal(d.scales, qt.scales)
    names = {full for full, *_ in sbs_tensors(model)}
    for full, _, _, q, x in sbs_tensors(model):  # per-channel v: one scale per channel along the pruning axis
        qt = next(qt for qt in qts if qt.name == full)
        assert qt.axis == (q.axis if v_per_channel else None)
        assert qt.scales.shape == ((x.shape[q.axis],) if v_per_channel else (1,))
    for qt in qts:
        if qt.name in names:
            module, pname = model.get_submodule(qt.name.rpartition(".")[0]), qt.name.rpartition(".")[2]
            assert torch.equal(torch.from_numpy(qt.dequantize()), getattr(module, pname).detach()), qt.name
            if grid == "paper":
                assert qt.symbols[qt.symbols != 0].min() % 2 != 0 or not qt.symbols.any()  # odd symbols
    assert chosen_widths(model)["fc1.weight"][0] == 2
    with torch.no_grad():
        out = model()
    bake_(model)
    fresh = make(99)
    load_dequantized_(fresh, qts)
    for n, p in model.named_parameters():
        if n in names:
            assert torch.equal(p, dict(fresh.named_parameters())[n]), n
    with torch.no_grad():
        assert torch.equal(model(), out)


def test_rate_bits_matches_chosen_widths() -> None:
    model = make(4)
    sbs_(model, SBSConfig(group_size=2, init_prune_threshold=0.3, rate="nominal"), axis_fn=grid_axis)
    model.dw.parametrizations.weight[0].set_thresholds(alpha=0.5)
    model.fc2.parametrizations.weight[0].set_thresholds(alpha=[0.01, 0.5])
    widths = chosen_widths(model)
    assert {b for b, _ in widths.values()} >= {2, 4, 8}
    assert any(0 < f < 1 for _, f in widths.values())
    sizes = {full: x.numel() for full, _, _, _, x in sbs_tensors(model)}
    expected = sum(round(sizes[n] * (1 - f)) * b for n, (b, f) in widths.items())
    assert bits_of(model) == expected
    freeze_gates_(model)
    assert bits_of(model) == expected and not rate_bits(model).requires_grad


def test_rate_reuses_the_forward_gates_only_while_valid() -> None:
    model = make(8)
    sbs_(model, SBSConfig(init_prune_threshold=0.2), axis_fn=grid_axis)
    qs = [q for *_, q, _ in sbs_tensors(model)]
    model()
    cached = rate_bits(model)
    assert all(q._rate_cache is not None for q in qs)
    for q in qs:
        q._rate_cache = None
    fresh = rate_bits(model)
    params = [q.alpha_raw for q in qs] + [q.alpha_p_raw for q in qs] + [model.fc1.parametrizations.weight.original]
    g1 = torch.autograd.grad(cached, params, allow_unused=True)
    g2 = torch.autograd.grad(fresh, params, allow_unused=True)
    assert float(cached.detach()) == float(fresh.detach())
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g1, g2))
    copy.deepcopy(model)  # the cached graph is not copied
    model()
    with torch.no_grad():
        model.fc1.parametrizations.weight.original[:8] = 0  # an optimizer-like in-place update
    assert bits_of(model) < float(fresh.detach())  # stale cache not used: 8 rows now pruned


def toy(seed: int = 0):
    torch.manual_seed(seed)
    x = torch.linspace(-1, 1, 128).unsqueeze(1)
    y = torch.sin(3 * x) + 0.5 * torch.cos(7 * x)
    net = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        (net(x) - y).square().mean().backward()
        opt.step()
    return net, x, y


def search(net: nn.Module, x, y, lam: float, steps: int = 60) -> float:
    net = copy.deepcopy(net)
    sbs_(net, SBSConfig())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        sbs_loss((net(x) - y).square().mean(), net, lam).backward()
        opt.step()
    return bits_of(net)


def test_larger_lambda_gives_fewer_bits() -> None:
    net, x, y = toy()
    small, large = search(net, x, y, 1e-4), search(net, x, y, 0.05)
    assert large < 0.6 * small, (small, large)


def test_freeze_fixes_widths_and_qat_keeps_them() -> None:
    model = make(5)
    sbs_(model, SBSConfig(init_prune_threshold=0.2), axis_fn=grid_axis)
    with torch.no_grad():
        before = model()
    widths = freeze_gates_(model)
    with torch.no_grad():
        assert torch.equal(model(), before)  # freezing does not change the values
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    assert not any(q.alpha_raw.requires_grad or q.alpha_p_raw.requires_grad for *_, q, _ in sbs_tensors(model))
    for _ in range(5):
        opt.zero_grad()
        (model() - 1).square().mean().backward()
        opt.step()
    assert chosen_widths(model) == widths
    state = model.state_dict()  # resume: fresh model, same SBS, load the state
    other = make(6)
    sbs_(other, SBSConfig(init_prune_threshold=0.2), axis_fn=grid_axis)
    other.load_state_dict(state)
    assert [n for n, p in other.named_parameters() if p.requires_grad] == \
        [n for n, p in model.named_parameters() if p.requires_grad]  # same optimizer on resume
    with torch.no_grad():
        assert torch.equal(other(), model()) and chosen_widths(other) == widths


def test_hook_attaches_steers_lambda_and_freezes() -> None:
    assert "sbs" in QUANTIZERS and "sbs" not in PLUGINS  # a quantizer (--quant sbs), not a --plugin
    hook = SBSHook(SBSConfig(), lam=0.01, stage="prune", target_bits=100.0, gain=0.5)
    hooks = HookList([hook])
    model = make(7)
    assert hooks.transform_model("train", model) is model and not list(sbs_tensors(model))
    hooks.transform_model("prune", model)
    n_sbs = len(list(sbs_tensors(model)))
    assert n_sbs == len(list(make().parameters()))
    hooks.transform_model("prune", model)  # idempotent (resume re-applies transforms)
    assert len(list(sbs_tensors(model))) == n_sbs
    ctx = HookContext(stage="prune", step=0, total_steps=2, epoch=0)
    extra = hooks.extra_loss(model, None, None, ctx)
    assert extra is not None and float(extra.detach()) == pytest.approx(0.01 * np.log(bits_of(model)))
    hooks.on_step_end(0, model, ctx)
    assert hook.lam > 0.01  # rate far above the target: λ grows
    saved = hooks.state_dict()
    hooks.on_stage_end("prune", model, ctx)
    assert all(q.frozen for *_, q, _ in sbs_tensors(model))
    assert hooks.extra_loss(model, None, None, HookContext("qat", 0, 1, 0)) is None
    restored = SBSHook(SBSConfig(), lam=0.01, stage="prune", target_bits=100.0)
    HookList([restored]).load_state_dict(saved)
    assert restored.lam == hook.lam and restored.steps == 1 and not restored.frozen


def test_not_sbs_filter_and_refusals() -> None:
    model = make()
    sbs_(model, SBSConfig(), filter_fn=lambda mn, m, pn, p: mn == "fc1")
    f = not_sbs_filter()
    assert not f("fc1", model.fc1, "weight", None) and f("fc2", model.fc2, "weight", None)
    with pytest.raises(ValueError, match="already has"):
        sbs_(model, SBSConfig(), filter_fn=lambda mn, m, pn, p: mn == "fc1")
    with pytest.raises(TypeError):
        sbs_(model, QuantConfig())


@pytest.mark.parametrize("kwargs", [
    {"candidates": ()}, {"candidates": (4, 2)}, {"candidates": (2, 3), "grid": "paper"}, {"candidates": (1, 2)},
    {"candidates": [2, 4]}, {"candidates": (2, 16), "grid": "paper"}, {"candidates": (2, 17)}, {"grid": "midrise"},
    {"group_size": 0},
    {"prune": 1}, {"v_per_channel": "yes"}, {"init_threshold": -0.1}, {"temperature": 0.0},
    {"prune_temperature": float("nan")},
    {"version": 2},
])
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="SBSConfig"):
        SBSConfig(**kwargs)


def test_config_accepts_valid_sets() -> None:
    assert SBSConfig().grid == "midtread" and SBSConfig().candidates == (2, 4, 8)
    SBSConfig(candidates=(2, 3, 5), grid="midtread")  # any increasing set nests on the mid-tread grid
    SBSConfig(candidates=(3, 6, 12), grid="paper")
    SBSConfig(candidates=(8,), prune=False)  # a fixed width


def test_bisect_lambda() -> None:
    lam, bits = bisect_lambda(lambda lam: 1000.0 / (1.0 + 10 * lam), target_bits=200.0, iters=30, rtol=1e-3)
    assert bits <= 200.0 and bits == pytest.approx(200.0, rel=2e-3) and lam == pytest.approx(0.4, rel=1e-2)


def _coded_payload_bits(model: nn.Module) -> dict[str, float]:
    """Bits of each SBS tensor's symbols as the bitstream really codes them (its own best-fitting model)."""
    qts = export_sbs(model)
    payload = encode_tensors([QuantizedTensor(qt.name, qt.shape, qt.symbols, qt.scales, qt.axis, qt.bits)
                              for qt in qts])
    return {row["name"]: 8.0 * row["bytes_payload"] for row in tensor_breakdown(payload)}


@pytest.mark.parametrize("grid", ["paper", "midtread"])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_coded_rate_estimates_the_coded_payload(grid: str, bits: int) -> None:
    torch.manual_seed(bits)
    model = nn.Sequential(nn.Linear(96, 64))
    with torch.no_grad():  # Laplace-like weights, as trained networks have
        model[0].weight.copy_(torch.distributions.Laplace(0.0, 0.05).sample((64, 96)))
    sbs_(model, SBSConfig(grid=grid, prune=False), filter_fn=lambda m, mod, p, t: p == "weight")
    q = model[0].parametrizations.weight[0]
    with torch.no_grad():
        q.frozen_bits.fill_(bits)
    estimate = float(rate_bits(model).detach())
    coded = _coded_payload_bits(model)["0.weight"]
    assert estimate == pytest.approx(coded, rel=0.03), (estimate, coded)  # measured: within 0.5%
    if bits == 8:  # entropy coding is what the coded rate sees and the nominal one does not
        assert estimate < 0.8 * 8 * q.shape[0] * q.shape[1]


def test_coded_rate_gradients_favour_coarser_steps_and_smaller_weights() -> None:
    model = make(5)
    sbs_(model, SBSConfig(prune=False), axis_fn=grid_axis)
    for *_, q, _ in sbs_tensors(model):  # one width: no gate terms in the gradient
        q.frozen_bits.fill_(8)
    rate_bits(model).backward()
    for full, module, pname, q, _ in sbs_tensors(model):
        assert q.log_v.grad is not None and float(q.log_v.grad) < 0, full  # a larger v: coarser steps, fewer bits
        orig = module.parametrizations[pname].original
        moved = orig.detach() - 1e-3 * orig.grad.sign()
        assert float((moved.abs() <= orig.detach().abs()).float().mean()) > 0.9, full  # toward zero


def test_hook_keeps_the_coded_rate_in_the_stage_after_freezing() -> None:
    hook = SBSHook(SBSConfig(), lam=0.1, stage="prune", rate_after="qat")
    model = HookList([hook]).transform_model("prune", make(6))
    ctx = HookContext("prune", 0, 1, 0)
    assert hook.extra_loss(model, None, model(), ctx) is not None
    hook.on_stage_end("prune", model, ctx)
    qat = HookContext("qat", 1, 2, 0)
    extra = hook.extra_loss(model, None, model(), qat)
    assert extra is not None
    extra.backward()
    assert all(q.log_v.grad is not None and float(q.log_v.grad) != 0 for *_, q, _ in sbs_tensors(model))
    assert hook.extra_loss(model, None, model(), HookContext("train", 1, 2, 0)) is None
    assert SBSHook(SBSConfig(), stage="prune").extra_loss(model, None, model(), qat) is None  # default: off


def test_controller_steers_on_the_file_size_side_information_included() -> None:
    model = make(9)
    sbs_(model, SBSConfig())
    payload = bits_of(model)
    ctx = HookContext(stage="prune", step=0, total_steps=2, epoch=0)
    lams = []
    for side in (0.0, payload):  # the target sits between the payload alone and payload + side information
        hook = SBSHook(SBSConfig(), lam=0.01, stage="prune", target_bits=1.5 * payload, gain=0.5,
                       side_bits=lambda m, side=side: side)
        hook.extra_loss(model, None, None, ctx)
        hook.on_step_end(0, model, ctx)
        assert hook.side_bits == side
        lams.append(hook.lam)
    assert lams[0] < 0.01 < lams[1]
    assert hook.state_dict()["side_bits"] == payload


def test_rescaled_v_codes_coarser_symbols_and_gates_stay_reopenable() -> None:
    model = make(10)
    sbs_(model, SBSConfig(prune=False))
    freeze_gates_(model)
    before = bits_of(model)
    rescale_v_(model, 4.0)
    assert bits_of(model) < 0.9 * before  # coarser steps: fewer bits (tiny tensors: well under 2 bits/param)
    rescale_v_(model, 0.25)
    assert bits_of(model) == pytest.approx(before, rel=1e-6)
    with pytest.raises(ValueError, match="factor"):
        rescale_v_(model, 0.0)
    searching = make(11)
    sbs_(searching, SBSConfig())
    qs = [q for *_, q, _ in sbs_tensors(searching)]
    qs[0].set_thresholds(alpha=3.0)
    qs[1].set_thresholds(alpha_p=-1.0)
    reopenable_(searching)
    assert float(qs[0].alpha.detach().max()) == pytest.approx(0.5) and float(qs[1].alpha_p.detach()) == 0.0


def test_a_state_dict_of_an_earlier_version_loads() -> None:
    model = make(12)
    sbs_(model, SBSConfig())
    state = model.state_dict()
    key = next(k for k in state if k.endswith(".log_v"))
    renamed = {".log_v": ".v", ".alpha_raw": ".alpha", ".alpha_p_raw": ".alpha_p"}  # the names of earlier versions
    old = {}
    for k, v in state.items():
        suffix = next((s for s in renamed if k.endswith(s)), None)
        old[k[:-len(suffix)] + renamed[suffix] if suffix else k] = v
    prefix = key[:-len("log_v")]
    old[prefix + "v"], old[prefix + "alpha"], old[prefix + "alpha_p"] = (torch.tensor(0.25), torch.tensor([0.3, 0.4]),
                                                                        torch.tensor(0.2))
    fresh = make(12)
    sbs_(fresh, SBSConfig())
    fresh.load_state_dict(old)
    q = fresh.get_submodule(key[:-len(".log_v")])
    assert isinstance(q, SBSQuant) and float(q._v().detach()) == pytest.approx(0.25, rel=1e-5)
    assert q.alpha.detach().tolist() == pytest.approx([0.3, 0.4]) and float(q.alpha_p.detach()) == pytest.approx(0.2)


def test_per_channel_v_starts_at_each_channels_range_and_keeps_small_channels() -> None:
    """One v per tensor rounds a channel 100x smaller than the rest to zero at 4 bits; one v per channel codes it
    on its own grid, and each channel's v gets its own gradient."""
    errors = {}
    for per_channel in (False, True):
        torch.manual_seed(15)
        model = nn.Sequential(nn.Linear(8, 4, bias=False))
        with torch.no_grad():
            model[0].weight[1] *= 0.01
        w = model[0].weight.detach().clone()
        sbs_(model, SBSConfig(candidates=(4,), v_per_channel=per_channel))
        ((_, _, _, q, _),) = sbs_tensors(model)
        v = q._v().detach()
        if per_channel:
            assert v.shape == (4,)
            assert torch.allclose(v, w.abs().amax(dim=1) * 8 / 7)  # the finest level reaches each channel's max|w|
            model[0].weight.square().sum().backward()
            assert q.log_v.grad is not None and bool((q.log_v.grad != 0).all())
        else:
            assert v.shape == () and float(v) == pytest.approx(float(w.abs().max()) * 8 / 7)
        errors[per_channel] = float((model[0].weight.detach()[1] - w[1]).abs().max() / w[1].abs().max())
    assert errors[False] == pytest.approx(1.0)  # the small channel rounds to zero
    assert errors[True] < 0.1  # within half a 4-bit step of its own range
    with pytest.raises(ValueError, match="v_init"):
        SBSQuant((4, 8), 0, v_init=torch.ones(3), v_per_channel=True)


def test_gate_statistics_take_v_as_a_constant() -> None:
    """The nominal rate depends on v only through the gates' statistics: it must give v no gradient (else the rate
    term closes gates by growing v until whole tensors round to zero), while the thresholds and weights get one."""
    model = make(13)
    sbs_(model, SBSConfig(rate="nominal", init_threshold=0.3, init_prune_threshold=0.2), axis_fn=grid_axis)
    rate_bits(model).backward()
    qs = [(module.parametrizations[pname].original, q) for _, module, pname, q, _ in sbs_tensors(model)]
    assert all(q.log_v.grad is None or float(q.log_v.grad) == 0 for _, q in qs)
    assert any(q.alpha_raw.grad is not None and bool((q.alpha_raw.grad != 0).any()) for _, q in qs)
    assert any(w.grad is not None and float(w.grad.abs().sum()) > 0 for w, _ in qs)


def test_linear_rate_term_charges_a_fixed_price_per_bit() -> None:
    """λ·log(R + S) prices a bit at λ/(R + S); the linear term at λ·unit whatever the rate."""
    model = make(16)
    sbs_(model, SBSConfig())
    r, d, unit = bits_of(model), torch.tensor(0.5), 1e-3
    for side in (0.0, 3 * r):
        loss = sbs_loss(d, model, 0.1, side_bits=side, term="linear", unit=unit)
        assert float(loss.detach()) == pytest.approx(0.5 + 0.1 * (r + side) * unit, rel=1e-6)
    w = model.fc1.parametrizations.weight.original
    (g_lin,) = torch.autograd.grad(sbs_loss(d, model, 0.1, term="linear", unit=unit), [w], retain_graph=True)
    (g_log,) = torch.autograd.grad(sbs_loss(d, model, 0.1), [w])
    atol = 1e-5 * float(g_lin.abs().max())  # float32 sums in another order
    assert torch.allclose(g_lin, g_log * r * unit, rtol=1e-4, atol=atol)  # d(λ·R·unit) = λ·unit·dR, d log R = dR/R
    hook = SBSHook(SBSConfig(), lam=0.1, stage="prune", term="linear", unit=unit)
    ctx = HookContext(stage="prune", step=0, total_steps=2, epoch=0)
    assert float(hook.extra_loss(model, None, None, ctx).detach()) == pytest.approx(0.1 * r * unit, rel=1e-6)
    with pytest.raises(ValueError, match="rate_term"):
        sbs_loss(d, model, 0.1, term="square")
    with pytest.raises(ValueError, match="unit"):
        SBSHook(SBSConfig(), term="linear", unit=0.0)


def test_objective_counts_the_side_bits() -> None:
    model = make(14)
    sbs_(model, SBSConfig())
    r = bits_of(model)
    d = torch.tensor(0.5)
    alone, side = sbs_loss(d, model, 0.1), sbs_loss(d, model, 0.1, side_bits=3 * r)
    assert float(alone.detach()) == pytest.approx(0.5 + 0.1 * np.log(r), rel=1e-6)
    assert float(side.detach()) == pytest.approx(0.5 + 0.1 * np.log(4 * r), rel=1e-6)
    w = model.fc1.parametrizations.weight.original
    (g_alone,) = torch.autograd.grad(alone, [w], retain_graph=True)  # both reuse the last forward's gates
    (g_side,) = torch.autograd.grad(side, [w])
    assert torch.allclose(g_side, g_alone / 4, rtol=1e-4, atol=1e-12)  # d log(R + S) = dR / (R + S)
    with pytest.raises(ValueError, match="side_bits"):
        sbs_loss(d, model, 0.1, side_bits=-1.0)
    # the hook measures the side bits without a target too, and puts them in its objective
    hook = SBSHook(SBSConfig(), lam=0.1, stage="prune", side_bits=lambda m: 3 * r)
    ctx = HookContext(stage="prune", step=0, total_steps=2, epoch=0)
    hook.extra_loss(model, None, None, ctx)
    hook.on_step_end(0, model, ctx)
    assert hook.side_bits == 3 * r
    assert float(hook.extra_loss(model, None, None, ctx).detach()) == pytest.approx(0.1 * np.log(4 * r), rel=1e-6)
