"""Toy SBS experiment: the paper's grid (no zero level) vs the mid-tread nested grid at matched rate.

A Fourier-feature MLP fits a 48x48 synthetic image (smooth shading, edges, texture), is trained in float, then for
each grid and λ: SBS search (L = MSE + λ·log R), freeze, QAT, export. Rate: nominal bits (Σ kept params × width)
and the bytes the bitstream's entropy coder writes for the exported tensors. The score is the mean PSNR gap between
the two grids over their common rate range (PSNR linearly interpolated in log rate, like BD-PSNR).

Usage: python tools/bench_sbs_toy.py [--seeds 2] [--json out.json]      (about a minute on one core)
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time

import numpy as np
import torch
from torch import nn

from bitstream.packed import encode_packed
from bitstream.tensors import QuantizedTensor
from compress.sbs import SBSConfig, export_sbs, freeze_gates_, sbs_
from compress.sbs_rate import rate_bits, sbs_loss

SIZE = 48
LAMS = (3e-4, 1e-3, 3e-3, 1e-2)


def target_image() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.linspace(-1, 1, SIZE)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    img = 0.5 + 0.3 * torch.sin(2.5 * xx + 1.5 * yy) * torch.cos(1.7 * yy)
    img = img + 0.25 * ((xx - 0.2) ** 2 + (yy + 0.1) ** 2 < 0.25).float() - 0.15 * (xx > 0.55).float()
    img = img + 0.05 * torch.sin(12 * xx) * torch.sin(9 * yy)
    return torch.stack([xx, yy], dim=-1).reshape(-1, 2), img.reshape(-1, 1)


class FourierMLP(nn.Module):
    def __init__(self, freqs: int = 12, width: int = 48) -> None:
        super().__init__()
        self.register_buffer("b", torch.randn(2, freqs) * 4.0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(2 * freqs, width), nn.Linear(width, width), nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 2) -> (N, 1)
        h = x @ self.b
        h = torch.cat([h.sin(), h.cos()], dim=1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(h)))))


def psnr(pred: torch.Tensor, y: torch.Tensor) -> float:
    return -10 * math.log10(float((pred.clamp(0, 1) - y).square().mean()))


def train(model: nn.Module, x, y, steps: int, lr: float, lam: float | None = None) -> None:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).square().mean()
        if lam is not None:
            loss = sbs_loss(loss, model, lam)
        loss.backward()
        opt.step()


def coded_bits(qts) -> int:
    coded = [QuantizedTensor("", q.shape, q.symbols, q.scales, q.axis, q.bits) for q in qts]
    return 8 * len(encode_packed(coded, implicit_shapes=True))  # as a hinerv file stores them


def run_arm(base: nn.Module, x, y, grid: str, lam: float, search: int, qat: int) -> dict:
    model = copy.deepcopy(base)
    sbs_(model, SBSConfig(grid=grid, group_size=4))
    train(model, x, y, search, 3e-3, lam)
    widths = freeze_gates_(model)
    train(model, x, y, qat, 1e-3)
    model.eval()
    qts = export_sbs(model)
    with torch.no_grad():
        p = psnr(model(x), y)
    return {"grid": grid, "lam": lam, "psnr": p, "nominal_bits": float(rate_bits(model)),
            "coded_bits": coded_bits(qts), "widths": {k: list(v) for k, v in widths.items()}}


def mean_gap(a: list[dict], b: list[dict], key: str) -> float | None:
    """Mean PSNR(b) - PSNR(a) over the common log-rate range (linear interpolation)."""
    def curve(arms):
        pts = sorted((math.log(r[key]), r["psnr"]) for r in arms)
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    (ra, pa), (rb, pb) = curve(a), curve(b)
    lo, hi = max(ra.min(), rb.min()), min(ra.max(), rb.max())
    if hi <= lo:
        return None
    grid = np.linspace(lo, hi, 50)
    return float(np.mean(np.interp(grid, rb, pb) - np.interp(grid, ra, pa)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--pretrain", type=int, default=800)
    ap.add_argument("--search", type=int, default=120)
    ap.add_argument("--qat", type=int, default=40)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    x, y = target_image()
    results = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        base = FourierMLP()
        train(base, x, y, args.pretrain, 3e-3)
        with torch.no_grad():
            fp = psnr(base(x), y)
        n = sum(p.numel() for p in base.parameters())
        print(f"seed {seed}: float PSNR {fp:.2f} dB, {n} params ({32 * n} bits in float32)")
        for grid in ("paper", "midtread"):
            for lam in LAMS:
                r = run_arm(base, x, y, grid, lam, args.search, args.qat) | {"seed": seed, "float_psnr": fp}
                results.append(r)
                print(f"  {grid:8s} λ={lam:<6g} PSNR {r['psnr']:6.2f}  nominal {r['nominal_bits']:7.0f} b  "
                      f"coded {r['coded_bits']:6d} b  widths {sorted(set(tuple(w) for w in r['widths'].values()))}")
    summary = {}
    for key in ("nominal_bits", "coded_bits"):
        gaps = [mean_gap([r for r in results if r["seed"] == s and r["grid"] == "paper"],
                         [r for r in results if r["seed"] == s and r["grid"] == "midtread"], key)
                for s in range(args.seeds)]
        summary[key] = gaps
        ok = [g for g in gaps if g is not None]
        print(f"mid-tread minus paper, mean PSNR at matched {key}: per seed {gaps}, mean "
              f"{(sum(ok) / len(ok)) if ok else float('nan'):+.2f} dB")
    print(f"{time.time() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "gap_midtread_minus_paper": summary}, f, indent=1)


if __name__ == "__main__":
    main()
