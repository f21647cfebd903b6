"""A PACKED_TENSORS section's record side information in bits, not bytes (flag bit 3, format version 5).

At 1-3 KB a file the records' specs and steps were a fifth of it, and most of their bytes were half empty: a model
id that needs 3 bits took 8, a support of a few symbols two varint bytes, a raw payload was padded to a byte per
tensor. Here every record field is a bit field or an Exp-Golomb code, written back to back, the raw payloads
inline among them, and the whole is padded to a byte once, before the range-coder stream.

Codes (bits are written most significant first, and packed into bytes most significant bit first):

* ``u(n)``: n bits, unsigned; ``ue(k)``: Exp-Golomb of order k (``bitlen(y) - 1 - k`` zero bits, then
  ``y = v + 2^k`` in binary); ``se(k)``: ``ue(k)`` of the zigzag of a signed value.
* spec: ``u(3)`` model id, then by model: zero nothing; const ``se(2)`` value; raw / laplace / gaussian the
  support as ``se(2)`` hi and ``se(0)`` lo + hi (supports sit about zero, so lo + hi is small), laplace and
  gaussian then ``se(0)`` 4·loc and ``u(8)`` the scale's minifloat code; categorical ``se(0)`` lo, ``ue(0)``
  hi - lo - 1, ``u(2)`` k, and the levels as the byte layout codes them (zigzag deltas, ``ue(k)``) without
  its padding; gcd ``ue(0)`` g - 2 and the inner spec (neither gcd nor zero).
* raw payload: each ``s - lo`` in ``u(bitlen(hi - lo))``.
* step: ``u(8)``, the minifloat code (``bitstream.compact``).

Every read is bounded by the bits left, and every value by what its field may hold, before anything is built.
"""
from __future__ import annotations

import numpy as np

from bitstream.compact import LOC_MAX, LOC_UNITS, SCALE_EXP_MIN, loc_code, loc_from_code, minifloat_code
from bitstream.compact import minifloat_from_code
from bitstream.entropy import CAT_LEVELS, CAT_MAX_BINS, SYMBOL_MAX, ModelSpec, RawModel, model_by_id
from bitstream.errors import BitstreamError
from bitstream.fields import unzigzag, zigzag

__all__ = ["BitReader", "BitWriter", "raw_bits", "read_raw", "read_spec", "spec_size_bits", "write_raw",
           "write_spec"]

MODEL_ID_BITS = 3
_MAX_ZEROS = 24  # the longest Exp-Golomb prefix any field needs (a 17-bit zigzagged symbol, order 0: 16)


class BitWriter:
    """Bits appended most significant first; ``to_bytes`` pads the last byte with zero bits."""

    def __init__(self) -> None:
        self._bits: list[int] = []

    def __len__(self) -> int:
        return len(self._bits)

    def u(self, value: int, n: int) -> None:
        if not 0 <= value < (1 << n):
            raise ValueError(f"{value} does not fit in {n} bits")
        self._bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def ue(self, value: int, k: int) -> None:
        if value < 0:
            raise ValueError(f"an Exp-Golomb code needs a non-negative value, got {value}")
        y = value + (1 << k)
        self.u(0, y.bit_length() - 1 - k)
        self.u(y, y.bit_length())

    def se(self, value: int, k: int) -> None:
        self.ue(zigzag(value), k)

    def array(self, bits: np.ndarray) -> None:
        """0/1 values, as they are."""
        self._bits.extend(int(b) for b in bits)

    def to_bytes(self) -> bytes:
        return np.packbits(np.asarray(self._bits, dtype=np.uint8)).tobytes()


class BitReader:
    """Reads what a :class:`BitWriter` wrote; every read is bounded by the bits left (BitstreamError), and only
    the bytes a read covers are unpacked."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = bytes(data)
        self._nbits = 8 * len(self._data)
        self.pos = 0
        self.what = what

    def _span(self, n: int, field: str) -> tuple[int, int, int]:
        """(first byte, end byte, bit offset in the first) of the next ``n`` bits, which the cursor passes."""
        if n > self._nbits - self.pos:
            raise BitstreamError(f"truncated {self.what}: {field} needs {n} bits at bit {self.pos}, "
                                 f"{self._nbits - self.pos} left")
        first, end, offset = self.pos // 8, (self.pos + n + 7) // 8, self.pos % 8
        self.pos += n
        return first, end, offset

    def u(self, n: int, field: str) -> int:
        first, end, offset = self._span(n, field)
        v = int.from_bytes(self._data[first:end], "big")
        return (v >> (8 * (end - first) - offset - n)) & ((1 << n) - 1)

    def ue(self, k: int, field: str, max_value: int) -> int:
        zeros = 0
        while self.u(1, field) == 0:
            zeros += 1
            if zeros > _MAX_ZEROS:
                raise BitstreamError(f"bad {self.what}: {field} code too long")
        y = (1 << (zeros + k)) | self.u(zeros + k, field)
        v = y - (1 << k)
        if v > max_value:
            raise BitstreamError(f"bad {self.what}: {field} {v} over the limit of {max_value}")
        return v

    def se(self, k: int, field: str, max_abs: int) -> int:
        return unzigzag(self.ue(k, field, 2 * max_abs))  # zigzag codes of at most 2·max_abs lie within ±max_abs

    def array(self, n: int, field: str) -> np.ndarray:
        """The next ``n`` bits as 0/1 values."""
        first, end, offset = self._span(n, field)
        return np.unpackbits(np.frombuffer(self._data, np.uint8, end - first, first))[offset:offset + n]

    def end_of_bits(self) -> int:
        """Check the padding to the byte boundary is zero; the byte offset after it."""
        if self.u(-self.pos % 8, "padding"):
            raise BitstreamError(f"bad {self.what}: nonzero padding bits")
        return self.pos // 8


# ----------------------------------------------------------------------------------------------- specs


def _write_support(w: BitWriter, spec: ModelSpec) -> None:
    w.se(spec.hi, 2)
    w.se(spec.lo + spec.hi, 0)


def _read_support(r: BitReader, name: str, max_bins: int = 2 * SYMBOL_MAX + 1) -> tuple[int, int]:
    hi = r.se(2, f"{name} hi", SYMBOL_MAX)
    lo = r.se(0, f"{name} lo + hi", 2 * SYMBOL_MAX) - hi
    if not -SYMBOL_MAX <= lo < hi or hi - lo + 1 > max_bins:
        raise BitstreamError(f"bad {name} model spec: support [{lo}, {hi}]")
    return lo, hi


def _level_deltas(levels: tuple[int, ...]) -> list[int]:
    """The categorical levels as the codes store them: zigzag deltas from the previous level (the first from 0)."""
    return [zigzag(v - prev) for prev, v in zip((0,) + tuple(levels), levels)]


def write_spec(w: BitWriter, spec: ModelSpec) -> None:
    """``spec`` as a record of a bit-packed section stores it (ValueError when its params are off the compact
    grids)."""
    w.u(spec.model_id, MODEL_ID_BITS)
    if spec.model == "const":
        w.se(spec.lo, 2)
    elif spec.model in ("raw", "laplace", "gaussian"):
        _write_support(w, spec)
        if spec.model != "raw":
            loc, scale = spec.params
            q, code = loc_code(loc), minifloat_code(scale, SCALE_EXP_MIN)
            if q is None or code is None:
                raise ValueError(f"{spec.model} loc {loc!r} / scale {scale!r} are not on the compact grids")
            w.se(q, 0)
            w.u(code, 8)
    elif spec.model == "categorical":
        w.se(spec.lo, 0)
        w.ue(spec.hi - spec.lo - 1, 0)
        deltas = _level_deltas(spec.params)
        k = min(range(4), key=lambda i: sum(_ue_size(v, i) for v in deltas))
        w.u(k, 2)
        for v in deltas:
            w.ue(v, k)
    elif spec.model == "gcd":
        g, inner = spec.params
        w.ue(g - 2, 0)
        write_spec(w, inner)


def read_spec(r: BitReader, inner: bool = False) -> ModelSpec:
    """A spec at the reader's cursor; BitstreamError when it is malformed. ``inner``: a gcd's inner spec."""
    model = model_by_id(r.u(MODEL_ID_BITS, "entropy model id")).name
    if inner and model in ("gcd", "zero"):
        raise BitstreamError(f"bad gcd model spec: cannot wrap {model}")
    if model == "zero":
        return ModelSpec("zero", 0, 0)
    if model == "const":
        v = r.se(2, "const value", SYMBOL_MAX)
        return ModelSpec("const", v, v)
    if model == "raw":
        return ModelSpec("raw", *_read_support(r, "raw"))
    if model in ("laplace", "gaussian"):
        lo, hi = _read_support(r, model)
        loc = loc_from_code(r.se(0, f"{model} loc", int(LOC_MAX * LOC_UNITS)))
        return ModelSpec(model, lo, hi, (loc, minifloat_from_code(r.u(8, f"{model} scale"), SCALE_EXP_MIN)))
    if model == "categorical":
        lo = r.se(0, "categorical lo", SYMBOL_MAX)
        hi = lo + 1 + r.ue(0, "categorical span", CAT_MAX_BINS - 2)
        if hi > SYMBOL_MAX:
            raise BitstreamError(f"bad categorical model spec: support [{lo}, {hi}] exceeds ±{SYMBOL_MAX}")
        k, levels, prev = r.u(2, "categorical k"), [], 0
        for _ in range(hi - lo + 1):
            prev += unzigzag(r.ue(k, "categorical level", 2 * CAT_LEVELS))
            if not 0 <= prev <= CAT_LEVELS:
                raise BitstreamError(f"bad categorical model spec: level {prev} outside [0, {CAT_LEVELS}]")
            levels.append(prev)
        if not any(levels):
            raise BitstreamError("bad categorical model spec: all levels are zero")
        return ModelSpec("categorical", lo, hi, tuple(levels))
    g = r.ue(0, "gcd factor", SYMBOL_MAX - 2) + 2
    wrapped = read_spec(r, inner=True)
    if wrapped.lo * g < -SYMBOL_MAX or wrapped.hi * g > SYMBOL_MAX:
        raise BitstreamError(f"bad gcd model spec: support [{wrapped.lo * g}, {wrapped.hi * g}] exceeds "
                             f"±{SYMBOL_MAX}")
    return ModelSpec("gcd", wrapped.lo * g, wrapped.hi * g, (g, wrapped))


def _ue_size(value: int, k: int) -> int:
    return 2 * (value + (1 << k)).bit_length() - 1 - k


def spec_size_bits(spec: ModelSpec) -> int:
    """Bits ``write_spec`` takes for ``spec``."""
    w = BitWriter()
    write_spec(w, spec)
    return len(w)


# ----------------------------------------------------------------------------------------------- raw payloads


def raw_bits(spec: ModelSpec, n: int) -> int:
    """Bits a raw array (or gcd of raw) of ``n`` symbols takes inline; 0 for models without an inline payload."""
    inner = spec.params[1] if spec.model == "gcd" else spec
    return n * RawModel._width(inner) if inner.model == "raw" else 0


def write_raw(w: BitWriter, symbols: np.ndarray, spec: ModelSpec) -> None:
    """A raw (or gcd of raw) array's symbols, each ``s - lo`` in the support's width."""
    g, inner = (spec.params[0], spec.params[1]) if spec.model == "gcd" else (1, spec)
    width = RawModel._width(inner)
    v = (symbols.astype(np.int64) // g - inner.lo).reshape(-1, 1)
    w.array(((v >> np.arange(width - 1, -1, -1)) & 1).reshape(-1))


def read_raw(r: BitReader, spec: ModelSpec, n: int, field: str) -> np.ndarray:
    g, inner = (spec.params[0], spec.params[1]) if spec.model == "gcd" else (1, spec)
    width = RawModel._width(inner)
    bits = r.array(n * width, field).reshape(n, width).astype(np.int64)
    v = bits @ (np.int64(1) << np.arange(width - 1, -1, -1, dtype=np.int64)) if n else np.zeros(0, np.int64)
    if n and int(v.max()) > inner.hi - inner.lo:
        raise BitstreamError(f"corrupt raw payload: symbol beyond the support [{inner.lo}, {inner.hi}]")
    return ((v + inner.lo) * g).astype(np.int32)
