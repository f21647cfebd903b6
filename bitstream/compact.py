"""The compact side information of format version 4: a step in one byte, an entropy model's loc and scale in two.

At 1-2 KB a file (short clips at x265's rates) a learned-step tensor's side information was 8-9 bytes: an fp16
step, an fp16 loc and an fp16 scale besides its support. None of them needs fp16's 0.05% resolution: a step or a
model scale off by a few percent costs a fraction of a bit a tensor, and training uses the stored values anyway
(``compress.entropy_quant`` rounds to these grids, so the file holds what the model was trained with). So:

* a **step** is an 8-bit minifloat, ``(16 + m) * 2**(e + STEP_EXP_MIN - 4)`` for the code ``e << 4 | m`` (4
  exponent bits, 4 mantissa bits: a relative resolution of 1/16 to 1/32), from 2^-14 to 31 * 2^-3 = 3.875;
* a model **scale** the same minifloat from 2^-4 (``SCALE_EXP_MIN``) to 31 * 2^7 = 3968 symbols;
* a model **loc** a quarter of a symbol: the integer ``4 * loc`` (a zigzag varint, 1 byte within ±16 symbols),
  within ±512 symbols.

Every such value is exactly a float16 value, so a ``QuantizedTensor``'s fp16 steps and a ``ModelSpec``'s fp16
params hold them unchanged; only their encoding in the file differs (``bitstream/FORMAT.md`` §5b, flag bit 2).
The rounding functions work on numpy arrays; ``compress.numerics`` has the torch twins that training uses, and a
test holds the two equal.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "LOC_MAX",
    "LOC_UNITS",
    "SCALE_EXP_MIN",
    "STEP_EXP_MIN",
    "loc_code",
    "loc_from_code",
    "minifloat_code",
    "minifloat_from_code",
    "minifloat_max",
    "round_loc",
    "round_minifloat",
]

STEP_EXP_MIN = -14  # the smallest step, 2^-14 (~6e-5); the largest 31 * 2^-3
SCALE_EXP_MIN = -4  # the smallest model scale, 1/16 of a symbol; the largest 31 * 2^7
LOC_UNITS = 4  # a loc is stored in quarters of a symbol
LOC_MAX = 512.0  # |loc| at most this (quarters stay exact in float16 up to 2^9)
_MANTISSA = 16  # 4 mantissa bits
_EXPONENTS = 16  # 4 exponent bits


def minifloat_from_code(code: int, exp_min: int) -> float:
    """The value of an 8-bit code: ``(16 + m) * 2**(e + exp_min - 4)``."""
    if not 0 <= code <= 255:
        raise ValueError(f"a minifloat code is a byte, got {code!r}")
    e, m = code >> 4, code & 15
    return float((_MANTISSA + m) * 2.0 ** (e + exp_min - 4))


def minifloat_max(exp_min: int) -> float:
    return minifloat_from_code(255, exp_min)


def minifloat_code(value: float, exp_min: int) -> int | None:
    """The code of ``value`` when it is exactly on the grid, else None."""
    v = float(value)
    if not (np.isfinite(v) and v > 0):
        return None
    mant, exp = np.frexp(v)  # v = mant * 2**exp, mant in [0.5, 1)
    k = mant * 2 * _MANTISSA  # in [16, 32)
    e = int(exp) - 1 - exp_min
    if k != int(k) or not 0 <= e < _EXPONENTS:
        return None
    return e << 4 | (int(k) - _MANTISSA)


def round_minifloat(values: np.ndarray, exp_min: int) -> np.ndarray:
    """Each positive value to the nearest grid value (ties to even), clamped to the grid's range (float64)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 2.0**exp_min, minifloat_max(exp_min))
    mant, exp = np.frexp(v)  # the largest value is on the grid: rounding never passes it
    return np.round(mant * 2 * _MANTISSA) * np.exp2(exp - 5.0)


def loc_code(value: float) -> int | None:
    """``4 * loc`` when ``value`` is a quarter of a symbol within ±``LOC_MAX``, else None."""
    q = float(value) * LOC_UNITS
    if not (np.isfinite(q) and q == int(q) and abs(q) <= LOC_MAX * LOC_UNITS):
        return None
    return int(q)


def loc_from_code(code: int) -> float:
    if abs(code) > LOC_MAX * LOC_UNITS:
        raise ValueError(f"a loc code is within ±{int(LOC_MAX * LOC_UNITS)}, got {code}")
    return code / LOC_UNITS


def round_loc(values: np.ndarray) -> np.ndarray:
    """Each value to the nearest quarter of a symbol (ties to even), clamped to ±``LOC_MAX`` (float64)."""
    v = np.clip(np.asarray(values, dtype=np.float64), -LOC_MAX, LOC_MAX)
    return np.round(v * LOC_UNITS) / LOC_UNITS
