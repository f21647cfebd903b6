"""``python -m eval.uvg --data DIR --out DIR``: the rate-distortion sweep on UVG (7 sequences, 1080p).

Users bring the files (``Beauty_1920x1080_120fps_420_8bit_YUV.yuv`` ... or Y4M twins; see
:func:`eval.datasets.find_sequences`). Quick runs: ``--frames 30 --downscale 4``. The published HiNeRV UVG curves
(RGB PSNR, full length at 1080p) are drawn on the PSNR-RGB panels for reference; they are never in a BD table.
Options as :mod:`eval.rd`, plus ``--sequences`` to run a subset.
"""
from __future__ import annotations

import sys
from typing import Sequence

from eval.datasets import UVG, Manifest


def dataset_main(argv: Sequence[str] | None, manifest: Manifest, published: Sequence[str], prog: str,
                 doc: str) -> int:
    """Shared entry point of the data-set sweeps."""
    import argparse

    from eval.rd import add_sweep_arguments, guarded, sweep_from_args

    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help=f"folder holding the {manifest.name} files")
    parser.add_argument("--sequences", help="comma-separated subset of sequence names (default: all)")
    parser.add_argument("--no-published", action="store_true", help="do not draw the published HiNeRV curves")
    add_sweep_arguments(parser)
    args = parser.parse_args(argv)

    def sequences() -> list:
        from eval.datasets import find_sequences
        from eval.sweep import dataset_input

        only = None if not args.sequences else [s.strip() for s in args.sequences.split(",") if s.strip()]
        try:
            sources = find_sequences(args.data, manifest, frames=args.frames, downscale=args.downscale, only=only)
        except KeyError as e:  # an unknown --sequences name
            raise LookupError(e.args[0]) from None
        return [dataset_input(s, args.out) for s in sources]

    scale = f", 1/{args.downscale} scale" if args.downscale and args.downscale > 1 else ""
    frames = f", first {args.frames} frames" if args.frames else ""
    return guarded(lambda: sweep_from_args(args, sequences, published=() if args.no_published else published,
                                           title=f"{manifest.name}{frames}{scale}"))


def main(argv: Sequence[str] | None = None) -> int:
    return dataset_main(argv, UVG, ("hinerv-uvg", "hinerv-uvg-new"), "python -m eval.uvg", __doc__)


if __name__ == "__main__":
    sys.exit(main())
