#!/usr/bin/env python3
"""Benchmark (not a test): decode (render) frames per second for a named config, variants against a baseline.

    python tools/bench_decode.py --config hinerv-s-1080 --frames 16
    python tools/bench_decode.py --config hinerv-s-1080 --device cuda --variants fp32-torch,bf16-torch,bf16-triton

Rendering is what `hinerv decode` does after parsing: the network in frame mode, then rounding to integer
samples and copying them to the host. Each variant renders the same frames with the same random weights;
the table prints median frames/s and the speed-up over the first variant, measured side by side.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train import hinerv_s, variant_kernels  # noqa: E402
from inr.config import HiNeRVConfig  # noqa: E402
from inr.model import HiNeRV, count_parameters  # noqa: E402
from inr.presets import build_config  # noqa: E402

CONFIGS = {
    # HiNeRV-S exactly as the paper's UVG config: full-resolution RGB output.
    "hinerv-s-1080": lambda: hinerv_s(1080, 1920, 600),
    # Our 4:2:0 layout at 1080p with the same parameter budget: 540x960 grid, 6 channels.
    "ours-s-1080-420": lambda: build_config(540, 960, 600, 6, params=3_190_000),
    "carphone-m": lambda: build_config(72, 88, 120, 6, "m"),
}


@torch.inference_mode()
def render_fps(config: HiNeRVConfig, variant: str, device: str, frames: int, batch: int, repeats: int) -> list[float]:
    torch.manual_seed(0)
    model = HiNeRV(config).to(device).eval()
    model.set_kernels(variant_kernels(variant))
    if "onepass" in variant:
        model.chunk_bytes = 0  # the CPU batch in one pass, not in chunks (inr.model.CPU_CHUNK_BYTES)
    dtype = torch.bfloat16 if "bf16" in variant else None
    render = torch.compile(model) if "compile" in variant else model  # compiled in the warm-up pass
    fps = []
    for r in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for start in range(0, frames, batch):
            t = torch.arange(start, min(start + batch, frames), device=device) % config.frames
            with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
                out = render(t)
            samples = out.float().mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu()
        del samples
        if r:  # the first pass warms up
            fps.append(frames / (time.perf_counter() - t0))
    return fps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="carphone-m", choices=sorted(CONFIGS))
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", default=None, help="comma-separated; first is the baseline "
                    "(fp32, fp32-torch, fp32-onepass, bf16, bf16-triton, bf16-compile; kernels as in bench_train.py: "
                    "'auto', '-torch' or '-triton'; onepass: the CPU batch not split in chunks; compile: "
                    "torch.compile, compile time excluded)")
    args = ap.parse_args()
    config = CONFIGS[args.config]()
    variants = (args.variants or ("fp32" if args.device == "cpu" else "fp32-torch,bf16-torch,bf16-triton")).split(",")
    with torch.device("meta"):
        params = count_parameters(HiNeRV(config))
    print(f"{args.config}: {params / 1e6:.2f} M params, output grid {config.height}x{config.width}x"
          f"{config.out_channels}, {args.frames} frames in batches of {args.batch}, device {args.device}")
    print(f"{'variant':<14} {'frames/s (median)':>18} {'speed-up':>8}")
    base = None
    for name in variants:
        med = statistics.median(render_fps(config, name, args.device, args.frames, args.batch, args.repeats))
        base = base or med
        print(f"{name:<14} {med:>18.2f} {med / base:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
