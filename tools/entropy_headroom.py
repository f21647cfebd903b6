#!/usr/bin/env python3
"""Benchmark (not a test): how many bits better entropy models could save on a file's tensors, before building one.

    python tools/entropy_headroom.py runs/rd_x265/bikes-b/hinerv_0.0503.bin [more files] [--tensors]

Reads the file's tensors and prices their symbols under four coders, every one fitted to the symbols themselves
(so each is a bound a real coder of that kind approaches from above):

* ``tensor``: one quantized Laplace a tensor (loc and scale fitted; what the file's models are),
* ``histogram``: the symbols' own histogram, its side information free (n times the empirical entropy): the
  floor of every per-tensor model without context,
* ``rows``: one Laplace a row (the first axis: a layer's output channel), 20 bits of loc and scale a row,
* ``dpcm``: for the feature grids, the differences along the axis that predicts best (time, height, width or
  channel), one Laplace: a first-order context model, as NVRC's grid models condition on a neighbour.

``rows`` and ``dpcm`` count only where they beat ``tensor``. The totals print the file's payload (its models'
side information apart) and each coder's bits against ``tensor``'s (docs/results.md quotes them for the bench's
files).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bitstream.entropy import empirical_entropy_bits, fit_model, spec_payload_bits  # noqa: E402

MODEL_SIDE_BITS = 20  # a Laplace's loc (quarter symbols, 12 bits) and scale (an 8-bit minifloat)


def laplace_bits(symbols: np.ndarray) -> float:
    """Bits of ``symbols`` under a quantized Laplace fitted as the coder fits the file's (``bitstream.entropy``),
    side information not included; 0 for equal symbols."""
    s = np.asarray(symbols, dtype=np.int64).ravel()
    spec = fit_model("laplace", s) if s.size else None
    return 0.0 if spec is None else spec_payload_bits(s, spec)


def row_bits(symbols: np.ndarray) -> float:
    """One fitted Laplace a row (first axis), each with its side information."""
    rows = np.asarray(symbols).reshape(symbols.shape[0], -1)
    return sum(laplace_bits(r) + MODEL_SIDE_BITS for r in rows)


def dpcm_bits(symbols: np.ndarray) -> tuple[float, int | None]:
    """The fewest bits of coding the first slice along an axis, then each slice's difference from the one before
    (one fitted Laplace each, and which axis: 2 bits), over the axes of length 2 or more; (inf, None) if none."""
    s = np.asarray(symbols, dtype=np.int64)
    best: tuple[float, int | None] = (math.inf, None)
    for axis in range(s.ndim):
        if s.shape[axis] < 2:
            continue
        first = np.take(s, [0], axis=axis)
        bits = laplace_bits(first) + laplace_bits(np.diff(s, axis=axis)) + 2 * MODEL_SIDE_BITS + 2
        best = min(best, (bits, axis), key=lambda b: b[0])
    return best


def headroom(named: list[tuple[str, np.ndarray, float]]) -> dict[str, float]:
    """Totals in bits over ``(name, symbols, the file's payload bits)``: the file's payload and each coder's
    bits (tensors whose symbols are all equal cost nothing under any of them, and are left out)."""
    total = dict(file=0.0, tensor=0.0, histogram=0.0, rows=0.0, dpcm=0.0, symbols=0)
    for name, symbols, file_bits in named:
        s = np.asarray(symbols)
        if s.size == 0 or s.min() == s.max():
            continue
        one = laplace_bits(s) + MODEL_SIDE_BITS
        total["symbols"] += s.size
        total["file"] += file_bits
        total["tensor"] += one
        total["histogram"] += empirical_entropy_bits(s)
        total["rows"] += min(one, row_bits(s)) if s.ndim > 1 else one
        total["dpcm"] += min(one, dpcm_bits(s)[0]) if "grid" in name else one
    return total


def file_tensors(path: Path) -> list[tuple[str, np.ndarray, float]]:
    """(parameter name, symbols, payload bits in the file) for each tensor of a hinerv file."""
    import torch

    from bitstream.container import SectionType, read_container
    from bitstream.packed import packed_breakdown
    from codec.bitstream_io import parameter_shapes, read_bitstream, read_file_bytes
    from inr.model import HiNeRV

    data = read_file_bytes(path)
    parsed = read_bitstream(data)  # validates the file (one section of each kind)
    found = {s.type: s.payload for s in read_container(data)}
    if SectionType.PACKED_TENSORS not in found or parsed.plugins:
        raise SystemExit(f"{path}: only files with a PACKED_TENSORS section and no coded plugins are read")
    rows, _ = packed_breakdown(found[SectionType.PACKED_TENSORS], parameter_shapes(parsed.config))
    with torch.device("meta"):
        names = [n for n, _ in HiNeRV(parsed.config).named_parameters()]
    return [(n, t.symbols, 8.0 * r["bytes_payload"]) for n, t, r in zip(names, parsed.tensors, rows)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--tensors", action="store_true", help="a line per tensor too")
    args = ap.parse_args()
    for path in args.files:
        named = file_tensors(path)
        if args.tensors:
            for name, s, file_bits in named:
                if s.size and s.min() != s.max():
                    dpcm, axis = dpcm_bits(s) if "grid" in name else (math.nan, None)
                    n = s.size
                    print(f"  {name:40s} {str(s.shape):16s} file {file_bits / n:5.2f}  tensor "
                          f"{(laplace_bits(s) + MODEL_SIDE_BITS) / n:5.2f}  histogram {empirical_entropy_bits(s) / n:5.2f}"
                          f"  rows {row_bits(s) / n if s.ndim > 1 else math.nan:5.2f}  dpcm {dpcm / n:5.2f}"
                          f"{'' if axis is None else f' (axis {axis})'}  bits a symbol")
        t = headroom(named)
        ref = t["tensor"]
        parts = ", ".join(f"{k} {t[k] / 8:,.0f} B ({100 * (t[k] / ref - 1):+.1f}%)" for k in ("histogram", "rows", "dpcm"))
        print(f"{path}: {int(t['symbols']):,} symbols; the file's payload {t['file'] / 8:,.0f} B, "
              f"one Laplace a tensor {ref / 8:,.0f} B; against it {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
