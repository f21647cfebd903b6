"""Published HiNeRV rate-distortion figures, shipped as ``eval/data/published_hinerv.json``.

The numbers are copied from the per-sequence CSVs released with HiNeRV's implementation (see
``shared/anchors/README.md``): five rate points per sequence (models S → XXL, 6-bit). Their PSNR is **RGB PSNR**
(``psnr-rgb``, from ffmpeg-converted 8-bit PNGs, BT.601 limited → full range); never BD-compare them with
YUV-PSNR curves. Datasets:

* ``hinerv-uvg``      — UVG, the paper's numbers ("orig"), 7 sequences;
* ``hinerv-uvg-new``  — UVG, the released code's numbers ("new"), 7 sequences;
* ``hinerv-mcljcv``   — MCL-JCV, the paper's numbers, 30 sequences.

Each also stores the CSV's own "Average" rows as ``published_average`` (see :func:`published_info`).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

DATA_FILE = Path(__file__).resolve().parent / "data" / "published_hinerv.json"
PSNR_TYPE = "psnr-rgb"


@functools.lru_cache(maxsize=1)
def _load_file() -> dict[str, Any]:
    with open(DATA_FILE, encoding="utf-8") as f:
        return json.load(f)


def available() -> list[str]:
    """Names accepted by :func:`load_published`."""
    return list(_load_file()["datasets"])


def _dataset(name: str) -> dict[str, Any]:
    data = _load_file()["datasets"]
    if name not in data:
        raise LookupError(f"unknown published dataset {name!r}; known: {', '.join(data)}")
    return data[name]


def load_published(name: str) -> dict[str, dict[str, list[float]]]:
    """Per-sequence curves: ``{sequence: {"bpp": [...], "psnr_rgb": [...], "ms_ssim": [...]}}`` (a fresh copy).

    ``psnr_rgb`` is RGB PSNR in dB; points are in rate order (S → XXL).
    """
    seqs = _dataset(name)["sequences"]
    return {s: {k: list(v) for k, v in d.items()} for s, d in seqs.items()}


def published_info(name: str) -> dict[str, Any]:
    """Metadata of a dataset (title, dataset, source_file, psnr_type, rate_points, quant_bits,
    published_average) plus the file-level ``psnr_note``."""
    d = _dataset(name)
    info = {k: v for k, v in d.items() if k != "sequences"}
    info["psnr_note"] = _load_file()["psnr_note"]
    return json.loads(json.dumps(info))  # deep copy


def average_curve(perseq: dict[str, dict[str, list[float]]], metric: str = "psnr_rgb",
                  rate: str = "bpp") -> tuple[list[float], list[float]]:
    """Mean ``rate`` and mean ``metric`` over sequences per rate point (the i-th point of every sequence).

    Raises ValueError when sequences have different numbers of points.
    """
    if not perseq:
        raise ValueError("no sequences to average")
    counts = {len(d[rate]) for d in perseq.values()} | {len(d[metric]) for d in perseq.values()}
    if len(counts) != 1:
        raise ValueError(f"sequences have different point counts {sorted(counts)}; cannot average per rate point")
    rates = np.mean([d[rate] for d in perseq.values()], axis=0)
    vals = np.mean([d[metric] for d in perseq.values()], axis=0)
    return [float(x) for x in rates], [float(x) for x in vals]


def as_curves(perseq: dict[str, dict[str, list[float]]], metric: str = "psnr_rgb",
              rate: str = "bpp") -> dict[str, tuple[list[float], list[float]]]:
    """``{sequence: (rates, values)}``, the per-codec shape :func:`eval.bdrate.bd_table` takes."""
    return {s: (list(d[rate]), list(d[metric])) for s, d in perseq.items()}


__all__ = ["DATA_FILE", "PSNR_TYPE", "as_curves", "available", "average_curve", "load_published", "published_info"]
