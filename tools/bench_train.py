#!/usr/bin/env python3
"""Benchmark (not a test): training steps/s and pixels/s for a named config, variants against a baseline.

    python tools/bench_train.py --config hinerv-s-240 --steps 10
    python tools/bench_train.py --config hinerv-s-1080 --device cuda --variants fp32-torch,bf16-torch,bf16-triton

Each variant runs the same steps (forward, loss, backward, Adam) on the same model and batch; the table
prints the median seconds per step and each variant's speed-up over the first (the baseline), all measured
in this one run. ``--rounds R`` runs the variants in turn R times (A B A B ...), so that a slow spell of a
shared machine falls on all of them, and takes each variant's median over all its steps.

``--reference-dir DIR`` adds the official HiNeRV (a checkout of github.com/hmkx/HiNeRV that you bring; nothing
of it is part of this project) as the baseline variant ``reference``: its UVG HiNeRV-S model options built by
its own code for the config's video size, trained on the same number of patches with the same optimizer and
loss. Its patches sit on its patch grid (in the -random config, a random grid cell per frame and step); it
computes every halo in full, so its step costs the same anywhere. Only the hinerv-s-* patch configs have one.
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
    """The UVG HiNeRV-S architecture (docs/design.md §3) at another resolution: RGB output, strides 5,3,2,2."""
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


def variant_kernels(name: str) -> str:
    """The ``HiNeRV.set_kernels`` mode a variant names: '-triton', '-torch' (plain PyTorch), else 'auto'."""
    return "triton" if "triton" in name else "torch" if "torch" in name else "auto"


# The UVG HiNeRV-S model options of the reference (its cfgs/models/uvg-hinerv-s_1920x1080.txt); {grid_t} is the
# temporal size of its base grid, 150 for UVG's 600 frames: frames // 4, as ours (hinerv_s).
REFERENCE_OPTIONS = """--block-type convnext --channels 280 --channels-reduce 2.0 --depths 3 3 3 1 --exps 4. 4. 4. 1.
    --stem-kernels 3 --kernels 3 3 3 3 --scales-t 1 1 1 1 --scales-hw 5 3 2 2 --stem-paddings -1 -1 -1
    --paddings -1 -1 -1 --base-size -1 -1 -1 --base-grid-size {grid_t} -1 -1 2 --base-grid-level 2
    --base-grid-level-scale 2. 1. 1. 0.5 --enc-type normalized+temp_local_grid --enc-grid-size -1 4
    --enc-grid-level 3 --enc-grid-level-scale 2. 0.5 --enc-grid-depth-scale 1. 0.5 --upsample-type trilinear
    --upsample-config matmul-th-w"""


def import_reference(ref_dir: str):
    """The reference's ``models.hinerv`` module, imported from the checkout at ``ref_dir``."""
    import importlib
    import types

    if not (Path(ref_dir) / "models" / "hinerv.py").is_file():
        raise SystemExit(f"--reference-dir {ref_dir}: no models/hinerv.py (a checkout of github.com/hmkx/HiNeRV?)")
    try:
        import timm.models.layers  # noqa: F401  (the reference imports DropPath from it)
    except ImportError:  # HiNeRV-S uses no drop path: a stand-in lets the import succeed without timm
        class DropPath(torch.nn.Identity):
            def __init__(self, drop_prob: float = 0.0, *args, **kwargs) -> None:
                if drop_prob:
                    raise SystemExit("the reference's drop path needs timm installed")
                super().__init__()

        layers = types.ModuleType("timm.models.layers")
        layers.DropPath = DropPath
        for name, mod in (("timm", types.ModuleType("timm")), ("timm.models", types.ModuleType("timm.models")),
                          ("timm.models.layers", layers)):
            sys.modules.setdefault(name, mod)
    sys.path.insert(0, str(Path(ref_dir).resolve()))
    return importlib.import_module("models.hinerv")


def reference_step(ref_dir: str, config: HiNeRVConfig, batch: int, patch: int, where: str, device: str):
    """One training step of the reference HiNeRV-S on ``batch`` patches of ``patch``² from frames 0..batch-1."""
    import logging

    hinerv_ref = import_reference(ref_dir)
    parser = argparse.ArgumentParser()
    hinerv_ref.set_args(parser)
    args = parser.parse_args(REFERENCE_OPTIONS.format(grid_t=max(1, config.frames // 4)).split())
    video, size = (config.frames, config.height, config.width), (1, patch, patch)
    cells = (config.frames, config.height // patch, config.width // patch)  # its patch grid (idx_max)
    torch.manual_seed(0)
    model = hinerv_ref.build_model(args, logging.getLogger("reference"), {
        "video_size": video, "patch_size": size, "idx_max": cells}).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=(device != "cpu") or None)
    target = torch.rand(batch, 3, *size, device=device)
    t = torch.arange(batch) % config.frames
    cells_drawn = torch.Generator().manual_seed(0)

    def step() -> None:
        hw = (torch.stack([torch.randint(cells[1], (batch,), generator=cells_drawn),
                           torch.randint(cells[2], (batch,), generator=cells_drawn)], 1)
              if where == "random" else torch.zeros(batch, 2, dtype=torch.int64))
        idx = torch.cat([t[:, None], hw], 1).to(device)
        out = model({"x": target, "idx": idx, "idx_max": cells, "video_size": video, "patch_size": size})
        loss = torch.nn.functional.mse_loss(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_steps(step, steps: int, warmup: int, device: str) -> list[float]:
    """Seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    times = []
    for i in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def our_step(name: str, config: HiNeRVConfig, batch: int, patch: int, where: str, device: str):
    """One training step of our HiNeRV as the variant ``name`` sets it up."""
    torch.manual_seed(0)
    model = HiNeRV(config).to(device)
    if "onepass" in name:
        model.chunk_bytes = 0  # the CPU batch in one pass, not in chunks (inr.model.CPU_CHUNK_BYTES)
    model.set_kernels(variant_kernels(name))
    foreach = "foreach" in name  # Adam refuses foreach and fused together: foreach wins where named
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=foreach or None,
                           fused=("fused" in name or (device != "cpu" and not foreach)) or None)
    corners = torch.Generator().manual_seed(0)
    h, w = (patch, patch) if patch else (config.height, config.width)
    target = torch.rand(batch, h, w, config.out_channels, device=device)
    t = torch.arange(batch, device=device) % config.frames
    loss_fn = torch.nn.functional.mse_loss  # the loss barely matters for speed; keeps the bench torch-only
    dtype = torch.bfloat16 if "bf16" in name else None
    step_fn = model
    if "compile" in name:  # -cg: CUDA graphs too (mode reduce-overhead), for a step bound by kernel launches
        step_fn = torch.compile(model, mode="reduce-overhead" if name.endswith("-cg") else None)

    def step() -> None:
        region = None
        if patch:
            y0, x0 = ((torch.randint(0, config.height - patch + 1, (1,), generator=corners).item(),
                       torch.randint(0, config.width - patch + 1, (1,), generator=corners).item())
                      if where == "random" else (0, 0))
            region = (y0, y0 + patch, x0, x0 + patch)
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            out = step_fn(t, region)
            loss = loss_fn(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="hinerv-s-240", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", default=None, help="comma-separated; first is the baseline "
                    "(fp32, fp32-torch, fp32-foreach, fp32-fused, fp32-onepass, bf16, bf16-triton, bf16-compile, "
                    "bf16-compile-cg; "
                    "kernels: 'auto' as the codec picks them, '-torch' plain PyTorch (no oneDNN linears on a CPU), "
                    "'-triton' forced; foreach / fused: Adam's multi-tensor / fused CPU path; onepass: the CPU "
                    "batch not split in chunks; compile-cg: torch.compile with CUDA graphs)")
    ap.add_argument("--batch", type=int, default=None, help="patches (or frames) per step instead of the config's")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=1, help="run the variants in turn this many times")
    ap.add_argument("--reference-dir", default=None,
                    help="a checkout of github.com/hmkx/HiNeRV: its HiNeRV-S becomes the baseline 'reference'")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    make, batch, patch, where = (CONFIGS[args.config] + ("corner",))[:4]
    if args.batch is not None:
        if args.batch < 1:
            raise SystemExit("--batch must be at least 1")
        batch = args.batch
    config = make()
    variants = (args.variants or ("fp32" if args.device == "cpu" else "fp32-torch,bf16-torch,bf16-triton")).split(",")
    with torch.device("meta"):
        params = count_parameters(HiNeRV(config))
    px = batch * (patch * patch if patch else config.height * config.width)
    print(f"{args.config}: {params / 1e6:.2f} M params, batch {batch} x "
          f"{f'{patch}x{patch} patches' if patch else 'frames'}, device {args.device}, "
          f"threads {torch.get_num_threads()}")
    if args.reference_dir:
        if not (patch and args.config.startswith("hinerv-s-")):
            raise SystemExit("--reference-dir: only the hinerv-s-* patch configs have a reference")
        variants = ["reference"] + variants
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name in variants:
            step = (reference_step(args.reference_dir, config, batch, patch, where, args.device)
                    if name == "reference" else our_step(name, config, batch, patch, where, args.device))
            times[name] += time_steps(step, args.steps, args.warmup, args.device)
            # at once, so that a run stopped at a time limit (tools/gpu_check.sh) keeps what it measured
            print(f"  round {r + 1}: {name} {statistics.median(times[name][-args.steps:]):.4f} s/step", flush=True)
    base = None
    print(f"{'variant':<16} {'s/step (median)':>16} {'steps/s':>8} {'Mpixel/s':>9} {'speed-up':>8}")
    for name in variants:
        med = statistics.median(times[name])
        base = base or med
        print(f"{name:<16} {med:>16.4f} {1 / med:>8.2f} {px / med / 1e6:>9.2f} {base / med:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
