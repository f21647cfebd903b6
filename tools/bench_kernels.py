"""Time the fused upsample + encoding kernels against the PyTorch references, side by side in one run.

On CUDA: forward (decode) and forward+backward (training) of, per stage shape and dtype,

* ``ref``    - ``upsample_add_encoding_ref``: the model's two-step path (``inr.layers.upsample_bilinear`` then
               ``+ HierarchicalEncoding``'s repeat-and-crop; ``tests/inr/test_kernels.py`` checks they agree),
* ``half``   - PyTorch's upsampling, then the fused ``phase_gather_add`` kernel,
* ``fused``  - ``upsample_add_encoding`` (one kernel forward, two backward),
* ``compile``- ``torch.compile(ref)`` (Inductor's own fusion), on the largest shapes only (``--compile N``),

printing median milliseconds and speed-ups over ``ref``, plus the largest deviation of the kernels from an fp32
reference at the real shapes. Shapes: HiNeRV-S at 1080p RGB (docs/design.md §3: strides 5,3,2,2, widths 280,
140, 70, 35, base 18x32, whole frames, B=1) and the repo's 4:2:0 grid (half resolution, preset ``s``) as whole
frames and as 120x120 training patches (B=2, the trainer's default). Dtypes: fp32, bf16 and ``mix`` (fp32
features + bf16 tiles, what autocast produces: LayerNorm runs in fp32, the projection in bf16).

On a CPU it only checks that everything runs: tiny shapes through the Triton interpreter (TRITON_INTERPRET=1),
which says nothing about speed.

Usage: ``PYTHONPATH=. python tools/bench_kernels.py [--reps 20] [--compile 2] [--quick]``
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

from inr.config import HiNeRVConfig  # noqa: E402
from inr.kernels import triton_available  # noqa: E402
from inr.kernels.reference import (phase_gather_add_ref, upsample_add_encoding_ref,  # noqa: E402
                                   upsample_bilinear_ref)
from inr.regions import plan_regions  # noqa: E402

DTYPES = {"fp32": (torch.float32, torch.float32), "bf16": (torch.bfloat16, torch.bfloat16),
          "mix": (torch.float32, torch.bfloat16)}


def stage_shapes(config: HiNeRVConfig, batch: int, patch: int | None, label: str) -> list[dict]:
    """(in_region, out_region, stride, C) of every stage of ``config`` (a luma stage too), frame mode or one
    interior patch of the last map."""
    sizes, stages = config.stage_sizes(), config.stage_shapes()
    if patch:
        h, w = sizes[-1]
        y0, x0 = (h // 2 - patch // 2), (w // 2 - patch // 2) + 1  # interior, not aligned to any stride
        plan = plan_regions((y0, y0 + patch, x0, x0 + patch), sizes, tuple(s.stride for s in stages),
                            tuple(s.depth for s in stages))
        regions = [plan.stem_out, *plan.keep]
        outs = list(plan.blocks)
    else:
        regions = [(0, hh, 0, ww) for hh, ww in sizes[:-1]]
        outs = [(0, hh, 0, ww) for hh, ww in sizes[1:]]
    return [dict(label=f"{label} stage{n + 1} s{s.stride}", batch=batch, rin=regions[n], rout=outs[n],
                 stride=s.stride, channels=s.in_channels) for n, s in enumerate(stages)]


def hinerv_s_1080p() -> HiNeRVConfig:
    return HiNeRVConfig(frames=600, height=1080, width=1920, out_channels=3, strides=(5, 3, 2, 2),
                        channels=(280, 140, 70, 35), depths=(3, 3, 3, 1), expansions=(4, 4, 4, 1),
                        grid_frames=150, grid_channels=2, local_frames=600, local_channels=4)


def yuv420_s() -> HiNeRVConfig:
    from inr.presets import build_config

    return build_config(540, 960, 600, 6, "s")  # UVG 1080p 4:2:0: grid of chroma size, 6 channels


def timer(fn, reps: int, device: str, warmup: int = 3) -> list[float]:
    """Milliseconds of each of ``reps`` calls (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def torch_phase_sum(g: torch.Tensor, s: int, y0: int, x0: int) -> torch.Tensor:
    """grad_tiles the PyTorch way: zero-pad to whole phase periods, reshape, sum (what the kernel replaces)."""
    b, h, w, c = g.shape
    oy, ox = y0 % s, x0 % s
    hp, wp = -(-(h + oy) // s) * s, -(-(w + ox) // s) * s
    pad = g.new_zeros(b, hp, wp, c)
    pad[:, oy:oy + h, ox:ox + w] = g
    return pad.view(b, hp // s, s, wp // s, s, c).sum((1, 3), dtype=torch.float32)


def bench_shape(shape: dict, dname: str, reps: int, device: str, compiled: bool, te) -> dict:
    xd, td = DTYPES[dname]
    rin, rout, s, c, b = shape["rin"], shape["rout"], shape["stride"], shape["channels"], shape["batch"]
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(b, rin[1] - rin[0], rin[3] - rin[2], c, device=device, generator=g).to(xd).requires_grad_()
    t = torch.randn(b, s, s, c, device=device, generator=g).to(td).requires_grad_()
    oh, ow = rout[1] - rout[0], rout[3] - rout[2]

    variants = {
        "ref": lambda x, t: upsample_add_encoding_ref(x, t, rin, rout, s),
        "half": lambda x, t: te.phase_gather_add(upsample_bilinear_ref(x, rin, rout, s), t, rout[0], rout[2]),
        "fused": lambda x, t: te.upsample_add_encoding(x, t, rin, rout, s),
    }
    if compiled:
        variants["compile"] = torch.compile(variants["ref"], dynamic=False)
    grad = torch.randn(b, oh, ow, c, device=device, generator=g).to(torch.promote_types(xd, td))

    def fwd(f):
        def run():
            with torch.no_grad():
                f(x, t)
        return run

    def fwd_bwd(f):
        def run():
            torch.autograd.grad(f(x, t), (x, t), grad)
        return run

    times: dict[str, dict[str, float]] = {"fwd": {}, "fwd+bwd": {}}
    # Interleave the variants round by round so clock and thermal drift hit them alike.
    runs = {(mode, name): (fwd if mode == "fwd" else fwd_bwd)(f) for mode in times for name, f in variants.items()}
    samples: dict[tuple[str, str], list[float]] = {k: [] for k in runs}
    for r in runs.values():
        timer(r, 0, device, warmup=2)  # compile everything (Triton, Inductor) before timing anything
    rounds = max(1, reps // 5)
    for _ in range(rounds):
        for k, r in runs.items():
            samples[k] += timer(r, max(1, reps // rounds), device, warmup=1)
    for (mode, name), v in samples.items():
        times[mode][name] = statistics.median(v)

    # grad_tiles alone: the phase-sum kernel against a PyTorch pad + reshape-sum
    gsum = {"kernel": statistics.median(timer(lambda: te.phase_sum(grad, s, rout[0], rout[2]), reps, device)),
            "torch": statistics.median(timer(lambda: torch_phase_sum(grad, s, rout[0], rout[2]), reps, device))}

    # deviation from an fp32 reference at the real shape (the tests use tiny shapes)
    x32, t32 = x.detach().float().requires_grad_(), t.detach().float().requires_grad_()
    ref = upsample_add_encoding_ref(x32, t32, rin, rout, s)
    rgx, rgt = torch.autograd.grad(ref, (x32, t32), grad.float())
    out = te.upsample_add_encoding(x, t, rin, rout, s)
    gx, gt = torch.autograd.grad(out, (x, t), grad)
    err = {"out": (out.float() - ref).abs().max().item(),
           "gx": (gx.float() - rgx).abs().max().item() / max(1e-12, rgx.abs().max().item()),
           "gt": (gt.float() - rgt).abs().max().item() / max(1e-12, rgt.abs().max().item())}
    half = te.phase_gather_add(x.detach(), t.detach(), rout[0], rout[2])
    err["half"] = (half.float() - phase_gather_add_ref(x32, t32, rout[0], rout[2]).detach()).abs().max().item()
    return dict(times=times, gsum=gsum, err=err)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20, help="timed calls per variant (median reported)")
    ap.add_argument("--compile", type=int, default=2, metavar="N",
                    help="also time torch.compile(ref) on the N largest shapes, bf16 (0: never)")
    ap.add_argument("--quick", action="store_true", help="RGB 1080p frame shapes only")
    args = ap.parse_args(argv)

    if not triton_available():
        print("triton is not importable here: nothing to benchmark (the model uses the PyTorch references)")
        return 0
    from inr.kernels import triton_encoding as te

    device = "cuda" if CUDA else "cpu"
    if CUDA:
        print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  "
              f"triton {__import__('triton').__version__}")
        shapes = stage_shapes(hinerv_s_1080p(), 1, None, "S-1080p-RGB frame")
        if not args.quick:
            cfg = yuv420_s()
            print(f"4:2:0 preset s: strides {cfg.strides} channels {cfg.channels} sizes {cfg.stage_sizes()}")
            shapes += stage_shapes(cfg, 2, None, "S-420 frame")
            shapes += stage_shapes(cfg, 2, 120, "S-420 patch120")
        dnames = list(DTYPES)
        reps = args.reps
    else:
        print("CPU: no CUDA device, running tiny shapes through the Triton INTERPRETER only to check that the "
              "benchmark works; the timings below mean nothing for speed.")
        tiny = HiNeRVConfig(frames=8, height=24, width=30, out_channels=3, strides=(3, 2), channels=(12, 6),
                            depths=(1, 1), expansions=(2, 1), grid_frames=2, grid_channels=2, local_frames=4,
                            local_channels=2)
        shapes = stage_shapes(tiny, 2, None, "tiny frame")[:1] + stage_shapes(tiny, 2, 8, "tiny patch8")[-1:]
        dnames = ["fp32"]
        reps = 1
    sizes = sorted({(sh["batch"] * (sh["rout"][1] - sh["rout"][0]) * (sh["rout"][3] - sh["rout"][2]) *
                     sh["channels"]) for sh in shapes}, reverse=True)
    compile_min = sizes[min(len(sizes), args.compile) - 1] if CUDA and args.compile > 0 else None

    header = (f"{'shape':34s} {'dtype':5s} {'in(BxhxwxC)->out':>30s} | {'mode':7s} {'ref':>8s} {'half':>8s} "
              f"{'fused':>8s} {'compile':>8s} | {'x half':>6s} {'x fused':>7s} {'x comp':>6s}")
    print(header)
    print("-" * len(header))
    t_start = time.perf_counter()
    for sh in shapes:
        rin, rout = sh["rin"], sh["rout"]
        numel = sh["batch"] * (rout[1] - rout[0]) * (rout[3] - rout[2]) * sh["channels"]
        io = (f"{sh['batch']}x{rin[1] - rin[0]}x{rin[3] - rin[2]}x{sh['channels']}->"
              f"{rout[1] - rout[0]}x{rout[3] - rout[2]}")
        for dname in dnames:
            compiled = compile_min is not None and numel >= compile_min and dname == "bf16"
            try:
                r = bench_shape(sh, dname, reps, device, compiled, te)
            except Exception as e:  # report and go on: one failing shape must not hide the others
                print(f"{sh['label']:34s} {dname:5s} FAILED: {type(e).__name__}: {e}")
                continue
            for mode, tm in r["times"].items():
                ref = tm["ref"]
                comp = tm.get("compile")
                print(f"{sh['label']:34s} {dname:5s} {io:>30s} | {mode:7s} {ref:8.3f} {tm['half']:8.3f} "
                      f"{tm['fused']:8.3f} {comp if comp is not None else float('nan'):8.3f} | "
                      f"{ref / tm['half']:6.2f} {ref / tm['fused']:7.2f} "
                      f"{(ref / comp) if comp else float('nan'):6.2f}")
            e, gs = r["err"], r["gsum"]
            print(f"{'':34s} {'':5s} grad_tiles: kernel {gs['kernel']:.3f} ms, torch pad+reshape-sum "
                  f"{gs['torch']:.3f} ms | max dev. from fp32 ref: out {e['out']:.2e}, grad_x {e['gx']:.2e} "
                  f"(rel), grad_tiles {e['gt']:.2e} (rel), half {e.get('half', float('nan')):.2e}")
            sys.stdout.flush()
    print(f"times in ms (median of {reps}); x = speed-up over ref; total {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
