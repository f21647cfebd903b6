#!/usr/bin/env python3
"""Benchmark (not a test): training steps/s and pixels/s for a named config, variants against a baseline.

    python tools/bench_train.py --config hinerv-s-240 --steps 10
    python tools/bench_train.py --config hinerv-s-1080 --device cuda --variants fp32,bf16,bf16-triton

Each variant runs the same steps (forward, loss, backward, Adam) on the same model and batch; the table
prints the median seconds per step and each variant's speed-up over the first (the baseline), all measured
in this one run. The reference HiNeRV implementation measured ~1.4 s/step for hinerv-s-240 on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr.config import HiNeRVConfig  # noqa: E402
from inr.model import HiNeRV, count_parameters  # noqa: E402
from inr.presets import build_config  # noqa: E402


def hinerv_s(height: int, width: int, frames: int) -> HiNeRVConfig:
    """The UVG HiNeRV-S architecture (DESIGN.md §3) at another resolution: RGB output, strides 5,3,2,2."""
    return HiNeRVConfig(frames=frames, height=height, width=width, out_channels=3, strides=(5, 3, 2, 2),
                        channels=(280, 140, 70, 35), depths=(3, 3, 3, 1), expansions=(4, 4, 4, 1),
                        grid_frames=max(1, frames // 4), grid_channels=2, local_frames=frames, local_channels=4)


CONFIGS = {
    # name: (config, batch, patch side[, where]): the patch's corner is at (0, 0), or drawn each step
    "hinerv-s-240": (lambda: hinerv_s(240, 240, 8), 8, 120),
    # the same patches where training puts them: a random position each step (the same sequence for every
    # variant), so most stages compute their halo on all four sides
    "hinerv-s-240-random": (lambda: hinerv_s(240, 240, 8), 8, 120, "random"),
    # the same 115,200 pixels a step as 2 whole frames, no patch halos to recompute: what `hinerv encode`
    # does by default while the output grid is at most 256x256 (codec.encoder.AUTO_PATCH_MAX_PIXELS)
    "hinerv-s-240-frames": (lambda: hinerv_s(240, 240, 8), 2, 0),
    "hinerv-s-1080": (lambda: hinerv_s(1080, 1920, 600), 8, 120),
    "hinerv-s-1080-frame": (lambda: hinerv_s(1080, 1920, 600), 1, 0),
    # what `hinerv encode --preset m` trains on carphone (176x144 4:2:0 -> 72x88x6 grid, 120 frames)
    "carphone-m": (lambda: build_config(72, 88, 120, 6, "m"), 2, 0),
}


def run_variant(name: str, config: HiNeRVConfig, batch: int, patch: int, where: str, steps: int, warmup: int,
                device: str) -> list[float]:
    torch.manual_seed(0)
    model = HiNeRV(config).to(device)
    if "onepass" in name:
        model.chunk_bytes = 0  # the CPU batch in one pass, not in chunks (inr.model.CPU_CHUNK_BYTES)
    if "triton" in name:
        model.set_kernels("triton")
    elif hasattr(model, "set_kernels"):
        model.set_kernels("torch")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=("fused" in name or device != "cpu") or None,
                           foreach=True if "foreach" in name else None)
    corners = torch.Generator().manual_seed(0)
    h, w = (patch, patch) if patch else (config.height, config.width)
    target = torch.rand(batch, h, w, config.out_channels, device=device)
    t = torch.arange(batch, device=device) % config.frames
    loss_fn = torch.nn.functional.mse_loss  # the loss barely matters for speed; keeps the bench torch-only
    dtype = torch.bfloat16 if "bf16" in name else None
    step_fn = model
    if "compile" in name:
        step_fn = torch.compile(model)
    times = []
    for i in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        region = None
        if patch:
            y0, x0 = ((torch.randint(0, config.height - patch + 1, (1,), generator=corners).item(),
                       torch.randint(0, config.width - patch + 1, (1,), generator=corners).item())
                      if where == "random" else (0, 0))
            region = (y0, y0 + patch, x0, x0 + patch)
        t0 = time.perf_counter()
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            out = step_fn(t, region)
            loss = loss_fn(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="hinerv-s-240", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", default=None, help="comma-separated; first is the baseline "
                    "(fp32, fp32-foreach, fp32-fused, fp32-onepass, bf16, bf16-triton, bf16-compile; foreach / fused: "
                    "Adam's multi-tensor / fused CPU path; onepass: the CPU batch not split in chunks)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    make, batch, patch, where = (CONFIGS[args.config] + ("corner",))[:4]
    config = make()
    variants = (args.variants or ("fp32" if args.device == "cpu" else "fp32,bf16,bf16-triton")).split(",")
    with torch.device("meta"):
        params = count_parameters(HiNeRV(config))
    px = batch * (patch * patch if patch else config.height * config.width)
    print(f"{args.config}: {params / 1e6:.2f} M params, batch {batch} x "
          f"{f'{patch}x{patch} patches' if patch else 'frames'}, device {args.device}, "
          f"threads {torch.get_num_threads()}")
    base = None
    print(f"{'variant':<16} {'s/step (median)':>16} {'steps/s':>8} {'Mpixel/s':>9} {'speed-up':>8}")
    for name in variants:
        times = run_variant(name, config, batch, patch, where, args.steps, args.warmup, args.device)
        med = statistics.median(times)
        base = base or med
        print(f"{name:<16} {med:>16.4f} {1 / med:>8.2f} {px / med / 1e6:>9.2f} {base / med:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
