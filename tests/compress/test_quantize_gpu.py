"""compress.quantize on CUDA: an encoder on the GPU and a decoder on the CPU agree bit for bit."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.prune import PruneConfig, bake_, prune_
from compress.quantize import QuantConfig, compute_scales, export_quantized, load_dequantized_, quantize_

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.grid = nn.Parameter(torch.rand(4, 3, 8, 8) * 2e-3 - 1e-3)  # U(±1e-3): fp16-subnormal scales
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3), nn.GELU(), nn.Conv2d(16, 32, 1), nn.Flatten(),
                                  nn.Linear(32 * 36, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 8, 8) -> (B, 5)
        return self.body(x + self.grid[:1])


def make(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return Net()


@pytest.mark.parametrize("bits", [4, 6, 8, 12])
def test_cuda_encoder_cpu_decoder_bit_exact(bits: int) -> None:
    cfg = QuantConfig(bits=bits, quant_noise=0.9)
    enc = make(0).cuda()
    prune_(enc, PruneConfig(ratio=0.3))
    quantize_(enc, cfg)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    x = torch.randn(4, 3, 8, 8, device="cuda")
    for _ in range(5):  # a few QAT steps, fp32 and under bf16 autocast
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = enc(x).float().square().mean()
        loss.backward()
        opt.step()
    enc.eval()
    qts = export_quantized(enc, cfg)
    bake_(enc)
    dec = make(1)
    load_dequantized_(dec, qts)
    for (name, a), (name2, b) in zip(enc.state_dict().items(), dec.state_dict().items()):
        assert name == name2 and torch.equal(a.cpu(), b), name
    w = enc.body[0].weight.detach()
    assert torch.equal(compute_scales(w, bits, 0).cpu(), compute_scales(w.cpu(), bits, 0))


@pytest.mark.slow
def test_compiled_fake_quant_matches_eager() -> None:
    """Inductor must not change the quantized values (e.g. by skipping the fp16 rounding of the scales)."""
    from compress.quantize import FakeQuant

    torch.manual_seed(0)
    w = torch.randn(512, 1000, device="cuda") * torch.logspace(-5, 0, 512, device="cuda")[:, None]
    for bits in (6, 8):
        fq = FakeQuant(bits, 0).cuda().eval()
        eager, compiled = fq(w), torch.compile(fq)(w)
        mismatch = int((eager != compiled).sum())
        assert mismatch <= w.numel() * 1e-5, f"{bits} bits: {mismatch} of {w.numel()} values differ"
