"""The ``hinerv`` command line: encode, decode, info, plugins, ask.

Bad input (a malformed video or bitstream, a bad option, an unreadable path) ends with one line on stderr
and exit code 2; never a traceback, never a half-written output.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from inr.kernels import KERNEL_MODES
from inr.presets import LUMA_MIN_PARAMS, SHALLOW_MAX_PARAMS, SMALL_WIDTH_RATIO

from compress.quantizers import QUANTIZERS
from compress.sbs_rate import RATE_TERMS as SBS_RATE_TERMS

from .distributed import DEVICES
from .encoder import EncodeOptions
from .fileio import atomic_write_bytes

DEFAULTS = EncodeOptions()  # one source of truth for the encode defaults
KERNELS_HELP = ("Upsampling + hierarchical encoding: auto: the fused Triton kernel on a GPU where it pays, PyTorch "
                "elsewhere; torch: the PyTorch reference; triton: the Triton kernel required. Results agree to float "
                "rounding.")

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"hinerv: error: {message}", err=True)
    sys.exit(code)


def _guarded(fn):
    """Map the project's error types to one line and exit 2."""
    from functools import wraps

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from bitstream.errors import BitstreamError

        from .video import VideoFormatError

        try:
            return fn(*args, **kwargs)
        except (BitstreamError, VideoFormatError, ValueError, LookupError, TypeError) as exc:
            _fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        except MemoryError:
            _fail("out of memory (try --frames, a smaller preset, or a smaller --batch-size)")
        except OSError as exc:
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            _fail(f"{exc.strerror or exc.__class__.__name__}{where}")
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)

    return wrapper


class OneLineErrors(click.Group):
    """Click's usage errors (a bad option value, a missing argument) as one line and exit 2, like all bad input."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `hinerv`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("interrupted", EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hinerv")
def main() -> None:
    """HiNeRV neural video codec: the bitstream is a network trained to reproduce the video."""


@main.command()
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.argument("output_path", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--preset", default=DEFAULTS.preset, show_default=True,
              help="Model size: xxs, xs, s, m, l, xl; auto: s, or the size that suits --target-bpp/--target-size.")
@click.option("--params", type=int, default=None, help="Parameter budget (overrides the preset).")
@click.option("--epochs", type=int, default=DEFAULTS.epochs, show_default=True, help="Training epochs (+20% prune, +10% QAT).")
@click.option("--prune-epochs", type=int, default=None,
              help="Epochs of the prune stage (--quant entropy: the rate stage); default 20% of --epochs, and under "
                   "a target at least the quantizer's floor of steps (entropy "
                   f"{QUANTIZERS.get('entropy').min_steering_steps:,}). Longer buys quality for time.")
@click.option("--width-ratio", type=float, default=DEFAULTS.width_ratio,
              help="Each stage's width over the previous one's (the preset solves the first width for the budget); "
                   f"default {SMALL_WIDTH_RATIO} at {LUMA_MIN_PARAMS:,}-{SHALLOW_MAX_PARAMS:,} parameters, else 0.5 "
                   "(HiNeRV's).")
@click.option("--min-width", type=int, default=DEFAULTS.min_width, show_default=True,
              help="No stage narrower than this (the last one feeds the head: 6 outputs, 2 beside a luma stage).")
@click.option("--luma-stage", type=click.Choice(["auto", "on", "off"]), default=DEFAULTS.luma_stage,
              show_default=True,
              help="End 4:2:0 models with a stage at luma resolution for Y (auto: from 3,000 parameters).")
@click.option("--motion", type=click.Choice(["auto", "off", "global"]), default=DEFAULTS.motion, show_default=True,
              help="Estimate the camera's motion (phase correlation) and render each frame as a window of one larger "
                   "canvas: global takes any motion found, auto a path spanning 10% of the frame or more.")
@click.option("--bits", type=int, default=DEFAULTS.bits, show_default=True, help="Bits per quantized weight.")
@click.option("--prune", "prune_ratio", type=float, default=DEFAULTS.prune, show_default=True,
              help="Fraction of weights pruned (uniform; sbs and entropy prune by their rate term).")
@click.option("--loss", default=DEFAULTS.loss, show_default=True, help="Training loss: yuvlog, l1ssim, mse.")
@click.option("--frames", type=int, default=None, help="Encode only the first N frames.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--lr", type=float, default=DEFAULTS.lr, show_default=True,
              help="Peak learning rate of the train stage (--quant entropy's rate stage peaks at "
                   f"{QUANTIZERS.get('entropy').prune_lr_ratio:g}x it, QAT at a tenth).")
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True, help="Frames per training step.")
@click.option("--patch-size", type=int, default=None,
              help="Training patch side in output-grid pixels (0: whole frames; default: whole frames up to "
                   "256x256, else 120).")
@click.option("--quant", type=click.Choice(QUANTIZERS.names()), default=DEFAULTS.quant,
              show_default=True,
              help="uniform: --bits everywhere; sbs: per-layer widths and pruning searched (SBS); entropy: learned "
                   "steps and entropy models with the rate in the loss.")
@click.option("--lambda", "lam", type=float, default=None,
              help="Rate weight (larger = smaller), in units of the log of the distortion (the same trade under "
                   "every --loss). entropy and sbs: of bpp (default 5); sbs with --sbs-rate log: of log(bits) "
                   "(default 0.1).")
@click.option("--target-bpp", type=float, default=None,
              help="Target rate: entropy meets it within 2%; sbs steers its search to it; uniform picks the model "
                   "size for it (with --preset auto).")
@click.option("--target-size", type=int, default=None, help="The target as a file size in bytes.")
@click.option("--steps", type=click.Choice(["tensor", "channel"]), default=DEFAULTS.steps, show_default=True,
              help="entropy: one learned quantization step per tensor or per channel; sbs: one clipping range "
                   "v per tensor or per channel.")
@click.option("--sbs-rate", type=click.Choice(SBS_RATE_TERMS), default=DEFAULTS.sbs_rate, show_default=True,
              help="sbs: the rate term, linear (λ·bpp) or log (λ·log of the file's bits, the paper's; it meets "
                   "a target less reliably).")
@click.option("--sbs-prune/--no-sbs-prune", default=DEFAULTS.sbs_prune, show_default=True,
              help="sbs: learn pruning gates (whole channel groups as the 0-bit choice) in the search; measured "
                   "worse on carphone, so off by default.")
@click.option("--plugin", "plugins", multiple=True, metavar="NAME[:key=value,...]",
              help="A compression plugin with its options (repeatable; `hinerv plugins` lists them), e.g. "
                   "--plugin l1:weight=1e-6.")
@click.option("--device", type=click.Choice(DEVICES), default=DEFAULTS.device, show_default=True,
              help="Where to train (auto: CUDA when available). Under torchrun each rank takes its own GPU.")
@click.option("--bf16", is_flag=True, help="Train with bf16 autocast (GPU; the loss stays fp32).")
@click.option("--kernels", type=click.Choice(KERNEL_MODES), default=DEFAULTS.kernels, show_default=True,
              help=KERNELS_HELP)
@click.option("--time-budget", type=float, default=None, metavar="MINUTES",
              help="Train for the epochs that fit in this many minutes (timed on the clip; instead of --epochs).")
@click.option("--teacher-cache", type=click.Path(file_okay=False), default=None,
              help="Keep the teachers of distillation plugins (indistill, sharedproj) in this folder and reuse them "
                   "for the same clip and settings (default: beside OUT, removed when done).")
@click.option("--resume", is_flag=True, help="Continue an interrupted encode from OUT.ckpt.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write a JSON report (bytes, bpp, PSNR, MS-SSIM, params, times).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@_guarded
def encode(input_path, output_path, preset, params, epochs, prune_epochs, width_ratio, min_width, luma_stage, motion,
           bits, prune_ratio, loss, frames, seed, lr, batch_size, patch_size, quant, lam, target_bpp, target_size, steps,
           sbs_rate, sbs_prune, plugins, device, bf16, kernels, time_budget, teacher_cache, resume, json_path,
           quiet) -> None:
    """Encode IN (Y4M, or any container PyAV reads) into the bitstream OUT."""
    from eval.measure import measure

    from .encoder import encode as run_encode

    options = EncodeOptions(preset=preset, params=params, epochs=epochs, prune_epochs=prune_epochs,
                            width_ratio=width_ratio, min_width=min_width, luma_stage=luma_stage, motion=motion,
                            bits=bits, prune=prune_ratio, loss=loss, frames=frames, seed=seed, lr=lr,
                            batch_size=batch_size, patch_size=patch_size, quant=quant, lam=lam, target_bpp=target_bpp,
                            target_size=target_size, steps=steps, sbs_rate=sbs_rate, sbs_prune=sbs_prune,
                            plugins=plugins, device=device, bf16=bf16, kernels=kernels, time_budget=time_budget,
                            teacher_cache=teacher_cache)
    source = click.get_current_context().get_parameter_source("epochs")
    if time_budget is not None and source is not click.core.ParameterSource.DEFAULT:
        raise ValueError("give --epochs or --time-budget, not both")
    if not Path(input_path).is_file():
        raise FileNotFoundError(2, "no such file", input_path)
    log = (lambda *_: None) if quiet else (lambda msg: click.echo(msg, err=True))
    result = run_encode(input_path, output_path, options, resume=resume, progress=not quiet, log=log)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return
    report = measure(result)
    u = f", U {report.psnr_u:.2f}, V {report.psnr_v:.2f}" if report.psnr_u is not None else ""
    ssim = f", MS-SSIM {report.ms_ssim:.4f}" if report.ms_ssim is not None else ""
    click.echo(f"{output_path}: {report.bytes:,} bytes, {report.bpp:.4f} bpp, PSNR-YUV {report.psnr_yuv:.2f} dB "
               f"(Y {report.psnr_y:.2f}{u}){ssim}, {report.params:,} params, "
               f"encoded in {report.encode_seconds:.0f} s"
               + (f" (+ {report.teacher_seconds:.0f} s of teacher)" if report.teachers else ""))
    if report.estimated_bytes is not None:
        click.echo(f"rate estimated in training: {report.estimated_bytes:,} bytes "
                   f"({100 * (report.estimated_bytes / report.bytes - 1):+.2f}% of the file)")
    if json_path:
        atomic_write_bytes(json_path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())


@main.command()
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.argument("output_path", metavar="OUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--frames", "frame_range", metavar="A:B", default=None,
              help="Decode only frames A..B-1 (A: from A to the end, :B the first B): the same samples as those "
                   "frames of a whole decode.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="Where to render. cpu: the canonical decode, the same samples on every run and thread count; "
                   "cuda (auto: when available): faster, the same samples up to one rounded the other way.")
@click.option("--kernels", type=click.Choice(KERNEL_MODES), default="auto", show_default=True, help=KERNELS_HELP)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_guarded
def decode(input_path, output_path, frame_range, device, kernels, quiet) -> None:
    """Decode the bitstream IN into the Y4M file OUT (- : standard output, e.g. piped to a player:
    hinerv decode clip.bin - | ffplay -)."""
    from .decoder import stream_file

    to_stdout = output_path == "-"
    if to_stdout and sys.stdout.isatty():
        raise ValueError("will not write a Y4M stream to a terminal: pipe it (hinerv decode IN - | ffplay -) or "
                         "give a file")
    out = sys.stdout.buffer if to_stdout else output_path
    try:
        fmt, count = stream_file(input_path, out, frames=frame_range, progress=not quiet, kernels=kernels,
                                 device=device)
    except BrokenPipeError:  # the reader (a player) went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes it
        _fail("standard output was closed before the last frame", 1)
    name = "<stdout>" if to_stdout else output_path
    click.echo(f"{name}: {fmt.width}x{fmt.height} {fmt.chroma} {fmt.bit_depth}-bit, {count} frames",
               err=to_stdout)


@main.command()
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_guarded
def info(input_path, as_json) -> None:
    """Show a bitstream's header and where its bytes go."""
    from .info import describe_file

    desc = describe_file(input_path)
    if as_json:
        click.echo(json.dumps(desc, indent=2))
        return
    click.echo(format_info(desc))


@main.command()
@click.argument("question")
@click.option("--results", "folders", multiple=True, required=True, type=click.Path(file_okay=False),
              help="A sweep folder (eval.rd, eval.uvg, eval.mcljcv --out); repeatable.")
@click.option("--ranker", type=click.Choice(["baseline", "rana"]), default="baseline", show_default=True,
              help="How candidate answers are ranked: BuboQA's evidence product, or the RANA-trained ranker.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"answer", "value", "kind": measured|interpolated|none, "evidence": [[file, field]...]}.')
@_guarded
def ask(question, folders, ranker, as_json) -> None:
    """Answer a simple question about evaluation results from their records, e.g.
    hinerv ask "what PSNR does x265 reach on carphone at 0.05 bpp" --results runs/rd. Exit 1: no evidence."""
    try:
        from eval.ask import Asker
        from eval.kg import build_graph

        answer = Asker(build_graph(folders), ranker=ranker).ask(question)
    except ImportError as exc:
        _fail(f"hinerv ask needs the evaluation extras ({exc.name} is missing): pip install 'hinerv[eval]'")
    click.echo(json.dumps(answer.to_dict(), indent=2) if as_json else answer.answer)
    if answer.kind == "none":
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_guarded
def plugins(as_json) -> None:
    """List the compression plugins (--plugin) and quantizers (--quant) with their options."""
    from compress.hooks import PLUGINS
    from compress.plugin_spec import option_rows

    listing = {
        "plugins": [{"name": name, "doc": PLUGINS.get(name).describe(), "coded": PLUGINS.get(name).coded,
                     "options": [dict(zip(("name", "type", "default", "help"), row)) for row in option_rows(name)]}
                    for name in sorted(PLUGINS.names())],
        "quantizers": [{"name": name, "doc": (QUANTIZERS.get(name).__doc__ or "").strip().splitlines()[0]}
                       for name in sorted(QUANTIZERS.names())],
    }
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    lines = ["plugins (hinerv encode --plugin NAME[:key=value,...]):"]
    for p in listing["plugins"]:
        lines.append(f"  {p['name']:<12} {p['doc']}" + ("  [the decoder needs it]" if p["coded"] else ""))
        for o in p["options"]:
            lines.append(f"      {o['name'] + '=' + o['default']:<22} {'(' + o['type'] + ')':<23} {o['help']}")
    lines += ["", "quantizers (hinerv encode --quant NAME):"]
    lines += [f"  {q['name']:<12} {q['doc']}" for q in listing["quantizers"]]
    click.echo("\n".join(lines))


def _plugin_lines(p: dict) -> list[str]:
    """A plugin of ``hinerv info``: its options, then what its summary says (a list of records a line each)."""
    lines = [f"plugin      {p['options']}" + (f" ({p['data_bytes']:,} bytes of decode data)" if p["coded"] else "")]
    for key, value in p.get("summary", {}).items():
        rows = value if isinstance(value, list) else [value]
        for row in rows:
            text = ", ".join(f"{k} {v}" for k, v in row.items()) if isinstance(row, dict) else str(row)
            lines.append(f"            {key}: {text}")
    return lines


def _bytes(v: float) -> str:
    """A byte count; records stored in bits (format version 5) count in eighths of a byte."""
    return f"{v:,.3f}".rstrip("0").rstrip(".")


def format_info(desc: dict) -> str:
    """Human-readable rendering of ``describe_file``'s dictionary."""
    v, m = desc["video"], desc["model"]
    lines = [
        f"file        {desc['bytes']:,} bytes, {desc['bpp']:.5f} bpp, format version {desc['format_version']}",
        f"video       {v['width']}x{v['height']} {v['chroma']} {v['bit_depth']}-bit, {desc['frames']} frames "
        f"at {v['fps_num']}/{v['fps_den']} fps",
        f"model       HiNeRV {desc['params']:,} params, strides {tuple(m['strides'])}, "
        f"widths {tuple(m['channels'])}, depths {tuple(m['depths'])}"
        + (f", luma stage width {m['luma']['channels']} depth {m['luma']['depth']} expansion {m['luma']['expansion']}"
           if m.get("luma") else ""),
        f"            grid {m['grid_frames']}x{desc['base_size'][0]}x{desc['base_size'][1]}x{m['grid_channels']}, "
        f"local grids {m['local_frames']} frames x C_loc {m['local_channels']}",
        *([f"motion      global: frames are windows of a {desc['canvas'][0]}x{desc['canvas'][1]} canvas "
           f"({m['height']}x{m['width']} grid), {len(m['motion']['runs'])} runs of steps"] if m.get("motion") else []),
        "bytes       " + ", ".join(f"{k} {_bytes(v)}" for k, v in desc["breakdown"].items()),
        f"compute     {desc['macs_per_pixel']:,.0f} MACs per pixel to render a frame",
        *[line for p in desc.get("plugins", []) for line in _plugin_lines(p)],
        "",
        f"{'tensor':<34} {'shape':<18} {'bits':>4} {'zeros':>6} {'model':<10} {'payload':>8} {'scales':>6} "
        f"{'side':>5} {'bits/param':>10}  step, entropy model (loc, scale in steps)",
    ]
    for t in desc["tensors"]:
        n = max(1, t["numel"])
        mp = t.get("model_params")
        extra = "" if t.get("step") is None else f"  step {t['step']:.4g}"
        extra += "" if mp is None else f"  loc {mp['loc']:.3g} scale {mp['scale']:.3g}"
        lines.append(f"{t['name']:<34} {'x'.join(map(str, t['shape'])):<18} {t['bits']:>4} "
                     f"{100 * t['zero_fraction']:>5.1f}% {t['model']:<10} "
                     f"{_bytes(t['bytes_payload']):>8} {_bytes(t['bytes_scales']):>6} {_bytes(t['bytes_side']):>5} "
                     f"{8 * t['bytes'] / n:>10.3f}"
                     f"{extra}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
