"""``python -m eval.mcljcv --data DIR --out DIR``: the rate-distortion sweep on MCL-JCV (30 sequences, 1080p).

Users bring the files (``videoSRC01_1920x1080_30.yuv`` ... or Y4M twins; see :func:`eval.datasets.find_sequences`).
Quick runs: ``--frames 30 --downscale 4``. The published HiNeRV MCL-JCV curves (RGB PSNR) are drawn on the
PSNR-RGB panels for reference; they are never in a BD table. Options as :mod:`eval.rd`, plus ``--sequences``.
"""
from __future__ import annotations

import sys
from typing import Sequence

from eval.datasets import MCL_JCV
from eval.uvg import dataset_main


def main(argv: Sequence[str] | None = None) -> int:
    return dataset_main(argv, MCL_JCV, ("hinerv-mcljcv",), "python -m eval.mcljcv", __doc__)


if __name__ == "__main__":
    sys.exit(main())
