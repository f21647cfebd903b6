"""Entropy coding of integer symbol arrays with constriction's range coder.

A symbol array is coded as a *model spec* (the model's id and parameters: the side information) plus a
*payload*. :func:`fit_and_encode` fits every registered model, codes the symbols with each, and keeps whichever
gives the fewest bytes in total (spec + payload length varint + payload) -- measured, not estimated.

Models (ids are frozen, written into files; registration order never matters)::

    id  name         side information                       payload
    0   zero         -                                      none (all symbols 0)
    1   const        value                                  none (all symbols equal)
    2   raw          lo, hi                                 fixed-width bit packing, ceil(log2(hi-lo+1)) bits
    3   laplace      lo, hi, loc fp16, scale fp16           range-coded, constriction QuantizedLaplace
    4   gaussian     lo, hi, loc fp16, scale fp16           range-coded, constriction QuantizedGaussian
    5   categorical  lo, hi, 6-bit log-count per bin        range-coded, constriction Categorical
    6   gcd          g >= 2, inner spec                     the inner model's payload for symbols / g

Parameters are stored as float16 and the coder is always built from the fp16-rounded values, on both sides,
so encoder and decoder agree bit-exactly; a packed section with flag bit 2 (format version 4) stores laplace and
gaussian params compactly instead (``compact=True``: a quarter-symbol loc and an 8-bit minifloat scale,
``bitstream.compact``), values that are fp16 values too. Symbols lie in [-32767, 32767]; the support [lo, hi] is
part of the side information so the coder covers exactly the needed range. See ``bitstream/FORMAT.md``.

The coder protocol (docs/design.md §8): ``encode(symbols, spec) -> bytes`` and ``decode(spec, payload, n)``,
vectorised numpy in and out; models are looked up by name in :data:`MODELS` or by id in a frozen table.
"""
from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any, Callable, ClassVar

import constriction
import numpy as np

from bitstream.compact import (
    LOC_MAX,
    LOC_UNITS,
    SCALE_EXP_MIN,
    loc_code,
    loc_from_code,
    minifloat_code,
    minifloat_from_code,
    round_loc,
    round_minifloat,
)
from bitstream.distributions import PROB_FLOOR, SCALE_MIN, SYMBOL_MAX, log_interval_prob
from bitstream.errors import BitstreamError
from bitstream.fields import Reader, unzigzag, uvarint_size, write_uvarint, zigzag
from common.registry import Registry

__all__ = [
    "MAX_SYMBOLS",
    "MODELS",
    "RANGE_CODER_OVERHEAD_BYTES",
    "SYMBOL_MAX",
    "EntropyModel",
    "ModelSpec",
    "StreamDecoder",
    "StreamEncoder",
    "decode",
    "empirical_entropy_bits",
    "encode",
    "estimate_bits",
    "fit_and_encode",
    "fit_model",
    "fit_packed",
    "inline_payload_size",
    "is_streamed",
    "model_by_id",
    "spec_payload_bits",
]

MAX_SYMBOLS = 1 << 28  # most symbols one decode call accepts
CAT_MAX_BINS = 4096  # widest support the categorical model takes
CAT_LEVELS = 63  # log-count levels 1..63 (0 = symbol absent)
CAT_STEPS_PER_OCTAVE = 4  # level step = 2**(1/4) in probability
# A range-coded payload is its ideal length (-log2 P summed, /8) plus about this many bytes: the coder flushes
# whole 32-bit words and only trailing zero bytes are dropped. Measured on Laplace symbols, 4 to 5000 per
# payload: mean 1.85-2.5 bytes, std ~1.2, independent of the length.
RANGE_CODER_OVERHEAD_BYTES = 2.0
_FP16_MAX = 65504.0

MODELS: Registry[EntropyModel] = Registry("entropy model")
_BY_ID: dict[int, EntropyModel] = {}

_RangeEncoder = constriction.stream.queue.RangeEncoder
_RangeDecoder = constriction.stream.queue.RangeDecoder
_cm = constriction.stream.model


# ----------------------------------------------------------------------------------------------- spec


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """An entropy model with its parameters: the side information stored before a payload.

    Attributes:
        model: registered model name (``"laplace"``...).
        lo, hi: the support, inclusive; every symbol lies in it.
        params: model-specific: ``(loc, scale)`` (fp16-representable floats) for laplace/gaussian, the
            per-bin levels for categorical, ``(g, inner_spec)`` for gcd, ``()`` otherwise.
    """

    model: str
    lo: int
    hi: int
    params: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        m = MODELS.get(self.model)  # LookupError listing the known names
        m.check(self)

    @property
    def model_id(self) -> int:
        return MODELS.get(self.model).model_id

    @property
    def has_payload(self) -> bool:
        return MODELS.get(self.model).has_payload

    def to_bytes(self, compact: bool = False) -> bytes:
        """The spec as stored; ``compact``: laplace and gaussian params on format version 4's grids
        (``bitstream.compact``; ValueError when they are not on them)."""
        m = MODELS.get(self.model)
        return bytes([m.model_id]) + m.write_params(self, compact)

    @classmethod
    def from_bytes(cls, reader: Reader, compact: bool = False) -> ModelSpec:
        """Read a spec at the reader's cursor (advancing it); BitstreamError when it is malformed."""
        start = reader.pos
        model = model_by_id(reader.u8("entropy model id"))
        try:
            return model.read_params(reader, compact)
        except BitstreamError:
            raise
        except (ValueError, TypeError) as e:
            raise BitstreamError(f"bad {model.name} model spec at offset {reader.base + start}: {e}") from None

    def describe(self) -> str:
        if self.model == "gcd":
            return f"gcd{self.params[0]}*{self.params[1].describe()}"
        return self.model


def model_by_id(model_id: int) -> EntropyModel:
    try:
        return _BY_ID[model_id]
    except KeyError:
        known = ", ".join(f"{i}={m.name}" for i, m in sorted(_BY_ID.items()))
        raise BitstreamError(f"unknown entropy model id {model_id} (known: {known})") from None


# ----------------------------------------------------------------------------------------------- helpers


def _check_symbols(symbols: Any) -> np.ndarray:
    """Validate an integer array in [-SYMBOL_MAX, SYMBOL_MAX]; return it flattened as int32."""
    a = np.asarray(symbols)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"symbols must be an integer array, got dtype {a.dtype}")
    a = a.reshape(-1)
    if a.size > MAX_SYMBOLS:
        raise ValueError(f"too many symbols: {a.size} > {MAX_SYMBOLS}")
    if a.size and (int(a.min()) < -SYMBOL_MAX or int(a.max()) > SYMBOL_MAX):
        raise ValueError(
            f"symbols out of range: expected [-{SYMBOL_MAX}, {SYMBOL_MAX}], got [{int(a.min())}, {int(a.max())}]"
        )
    return a.astype(np.int32, copy=False)


def _fp16(x: float) -> float:
    """Round to the nearest float16 and back: the value both sides build the coder from."""
    return float(np.float16(x))


def _fp16_bytes(x: float) -> bytes:
    return struct.pack("<e", x)


@dataclasses.dataclass
class _Stats:
    """What every model's fit needs, computed once: the support and a histogram over it."""

    n: int
    lo: int
    hi: int
    hist: np.ndarray  # int64 counts of lo..hi
    values: np.ndarray  # the symbols present (float64)
    counts: np.ndarray  # their counts (float64)
    mean: float
    median: float
    mean_abs_dev: float  # mean |x - median|
    std: float

    @staticmethod
    def of(sym: np.ndarray) -> _Stats:
        lo, hi = int(sym.min()), int(sym.max())
        hist = np.bincount((sym.astype(np.int64) - lo), minlength=hi - lo + 1)
        nz = np.flatnonzero(hist)
        values = (nz + lo).astype(np.float64)
        counts = hist[nz].astype(np.float64)
        n = int(sym.size)
        mean = float((values * counts).sum() / n)
        cum = np.cumsum(counts)
        median = float(values[np.searchsorted(cum, (n + 1) / 2)])
        mad = float((np.abs(values - median) * counts).sum() / n)
        std = float(math.sqrt(max(((values - mean) ** 2 * counts).sum() / n, 0.0)))
        return _Stats(n, lo, hi, hist, values, counts, mean, median, mad, std)


def _entropy_of_counts(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    n = counts.sum()
    if n <= 0:
        return 0.0
    return max(0.0, float(-(counts * np.log2(counts / n)).sum()))


def empirical_entropy_bits(symbols: Any) -> float:
    """Total bits of the symbols under their own histogram (n times the empirical entropy); 0 for none."""
    a = _check_symbols(symbols)
    if a.size == 0:
        return 0.0
    return _entropy_of_counts(np.bincount(a.astype(np.int64) - int(a.min()))) + 0.0


def _coded_words(enc: Any) -> bytes:
    """A range encoder's output: its words, little-endian, trailing zero bytes dropped (the decoder reads zeros
    past the end of its data)."""
    return enc.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def _range_decoder(payload: bytes) -> Any:
    padded = bytes(payload) + b"\0" * (-len(payload) % 4)
    return _RangeDecoder(np.frombuffer(padded, dtype="<u4").astype(np.uint32))


def _guarded(what: str, call: Callable[[], Any]) -> Any:
    """``call()``, with constriction's failures (a ValueError, or a Rust panic surfacing as PanicException) as one
    BitstreamError about ``what``."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BitstreamError(f"corrupt {what}: {msg}") from None


def _rc_encode(sym: np.ndarray, model: Any) -> bytes:
    enc = _RangeEncoder()
    enc.encode(sym, model)
    return _coded_words(enc)


def _rc_decode(payload: bytes, model: Any, n: int, what: str) -> np.ndarray:
    def run() -> tuple[Any, bool]:
        dec = _range_decoder(payload)
        out = dec.decode(model, n) if n else np.zeros(0, np.int32)
        return out, dec.maybe_exhausted()

    out, exhausted = _guarded(f"{what} payload", run)
    if not exhausted:
        raise BitstreamError(f"corrupt {what} payload: data left over after {n} symbols")
    return np.asarray(out, dtype=np.int32)


def _read_support(r: Reader, name: str, max_bins: int = 2 * SYMBOL_MAX + 1) -> tuple[int, int]:
    """lo (zigzag varint) and hi - lo - 1 (uvarint): a support of at least 2 symbols."""
    lo = r.varint(f"{name} lo")
    span = r.uvarint(f"{name} span", max_value=max_bins - 2) + 1
    hi = lo + span
    if lo < -SYMBOL_MAX or hi > SYMBOL_MAX:
        raise BitstreamError(f"bad {name} model spec: support [{lo}, {hi}] exceeds ±{SYMBOL_MAX}")
    return lo, hi


def _write_support(spec: ModelSpec) -> bytes:
    return write_uvarint(zigzag(spec.lo)) + write_uvarint(spec.hi - spec.lo - 1)


def _check_support(spec: ModelSpec, max_bins: int = 2 * SYMBOL_MAX + 1) -> None:
    if not (isinstance(spec.lo, int) and isinstance(spec.hi, int)):
        raise TypeError(f"{spec.model}: lo/hi must be ints")
    if not -SYMBOL_MAX <= spec.lo < spec.hi <= SYMBOL_MAX:
        raise ValueError(f"{spec.model}: need -{SYMBOL_MAX} <= lo < hi <= {SYMBOL_MAX}, got [{spec.lo}, {spec.hi}]")
    if spec.hi - spec.lo + 1 > max_bins:
        raise ValueError(f"{spec.model}: support of {spec.hi - spec.lo + 1} bins exceeds {max_bins}")


# ----------------------------------------------------------------------------------------------- models


class EntropyModel:
    """Protocol of an entropy model: fit, (de)serialise its parameters, encode and decode symbols.

    Subclasses set a frozen ``model_id`` and a ``name`` and are registered in :data:`MODELS`.
    """

    model_id: ClassVar[int]
    name: ClassVar[str]
    has_payload: ClassVar[bool] = True

    def fit(self, sym: np.ndarray, st: _Stats, compact: bool = False) -> ModelSpec | None:
        """The best spec of this family for the symbols, or None when the family does not apply. ``compact`` (here
        and in ``write_params``/``read_params``): the params as a compact packed section stores them (format
        version 4; only the parametric models' differ)."""
        raise NotImplementedError

    def check(self, spec: ModelSpec) -> None:
        """Raise ValueError/TypeError when the spec's parameters are invalid for this model."""
        raise NotImplementedError

    def write_params(self, spec: ModelSpec, compact: bool = False) -> bytes:
        raise NotImplementedError

    def read_params(self, r: Reader, compact: bool = False) -> ModelSpec:
        raise NotImplementedError

    def encode(self, sym: np.ndarray, spec: ModelSpec) -> bytes:
        raise NotImplementedError

    def decode(self, payload: bytes, spec: ModelSpec, n: int) -> np.ndarray:
        raise NotImplementedError

    def estimate_payload_bits(self, st: _Stats, spec: ModelSpec) -> float:
        """Cheap estimate of the payload size in bits (no coding)."""
        raise NotImplementedError


def _register(model: EntropyModel) -> EntropyModel:
    if model.model_id in _BY_ID:
        raise ValueError(f"entropy model id {model.model_id} is taken by {_BY_ID[model.model_id].name!r}")
    MODELS.register(model.name)(model)
    _BY_ID[model.model_id] = model
    return model


class ZeroModel(EntropyModel):
    """All symbols are 0: no parameters, no payload."""

    model_id = 0
    name = "zero"
    has_payload = False

    def fit(self, sym: np.ndarray, st: _Stats, compact: bool = False) -> ModelSpec | None:
        return ModelSpec("zero", 0, 0) if st.lo == st.hi == 0 else None

    def check(self, spec: ModelSpec) -> None:
        if spec.lo != 0 or spec.hi != 0 or spec.params:
            raise ValueError("zero model has lo = hi = 0 and no params")

    def write_params(self, spec: ModelSpec, compact: bool = False) -> bytes:
        return b""

    def read_params(self, r: Reader, compact: bool = False) -> ModelSpec:
        return ModelSpec("zero", 0, 0)

    def encode(self, sym: np.ndarray, spec: ModelSpec) -> bytes:
        return b""

    def decode(self, payload: bytes, spec: ModelSpec, n: int) -> np.ndarray:
        return np.zeros(n, np.int32)

    def estimate_payload_bits(self, st: _Stats, spec: ModelSpec) -> float:
        return 0.0


class ConstModel(EntropyModel):
    """All symbols equal one value: the value (zigzag varint), no payload."""

    model_id = 1
    name = "const"
    has_payload = False

    def fit(self, sym: np.ndarray, st: _Stats, compact: bool = False) -> ModelSpec | None:
        return ModelSpec("const", st.lo, st.lo) if st.lo == st.hi else None

    def check(self, spec: ModelSpec) -> None:
        if spec.lo != spec.hi or not -SYMBOL_MAX <= spec.lo <= SYMBOL_MAX or spec.params:
            raise ValueError(f"const model needs lo == hi within ±{SYMBOL_MAX} and no params, got {spec}")

    def write_params(self, spec: ModelSpec, compact: bool = False) -> bytes:
        return write_uvarint(zigzag(spec.lo))

    def read_params(self, r: Reader, compact: bool = False) -> ModelSpec:
        v = r.varint("const value")
        if not -SYMBOL_MAX <= v <= SYMBOL_MAX:
            raise BitstreamError(f"bad const model spec: value {v} exceeds ±{SYMBOL_MAX}")
        return ModelSpec("const", v, v)

    def encode(self, sym: np.ndarray, spec: ModelSpec) -> bytes:
        return b""

    def decode(self, payload: bytes, spec: ModelSpec, n: int) -> np.ndarray:
        return np.full(n, spec.lo, np.int32)

    def estimate_payload_bits(self, st: _Stats, spec: ModelSpec) -> float:
        return 0.0


class RawModel(EntropyModel):
    """Fixed-width bit packing of ``s - lo`` (LSB first); wins for a handful of symbols."""

    model_id = 2
    name = "raw"
    max_fit_symbols = 1 << 16  # never better than the range coder beyond this

    def fit(self, sym: np.ndarray, st: _Stats, compact: bool = False) -> ModelSpec | None:
        if st.lo == st.hi or st.n > self.max_fit_symbols:
            return None
        return ModelSpec("raw", st.lo, st.hi)

    def check(self, spec: ModelSpec) -> None:
        _check_support(spec)
        if spec.params:
            raise ValueError("raw model has no params")

    def write_params(self, spec: ModelSpec, compact: bool = False) -> bytes:
        return _write_support(spec)

    def read_params(self, r: Reader, compact: bool = False) -> ModelSpec:
        lo, hi = _read_support(r, "raw")
        return ModelSpec("raw", lo, hi)

    @staticmethod
    def _width(spec: ModelSpec) -> int:
        return (spec.hi - spec.lo).bit_length()

    def encode(self, sym: np.ndarray, spec: ModelSpec) -> bytes:
        w = self._width(spec)
        v = (sym.astype(np.int64) - spec.lo).astype(np.uint32)
        bits = ((v[:, None] >> np.arange(w, dtype=np.uint32)) & 1).astype(np.uint8)
        return np.packbits(bits.reshape(-1), bitorder="little").tobytes()

    def decode(self, payload: bytes, spec: ModelSpec, n: int) -> np.ndarray:
        w = self._width(spec)
        need = (n * w + 7) // 8
        if len(payload) != need:
            raise BitstreamError(
                f"corrupt raw payload: {len(payload)} bytes for {n} symbols of {w} bits, expected {need}"
            )
        bits = np.unpackbits(np.frombuffer(payload, np.uint8), bitorder="little")
        if bits[n * w :].any():
            raise BitstreamError("corrupt raw payload: nonzero padding bits")
        v = bits[: n * w].reshape(n, w).astype(np.int64) @ (np.int64(1) << np.arange(w, dtype=np.int64))
        if n and int(v.max()) > spec.hi - spec.lo:
            raise BitstreamError(f"corrupt raw payload: symbol beyond the support [{spec.lo}, {spec.hi}]")
        return (v + spec.lo).astype(np.int32)

    def estimate_payload_bits(self, st: _Stats, spec: ModelSpec) -> float:
        return 8.0 * ((st.n * self._width(spec) + 7) // 8)


# -- parametric models: quantized Laplace / Gaussian with fp16 loc and scale (compact: quarter loc, minifloat scale)


_OPEN = 1e30  # a bound past any tail: the first and last bins of the support reach it


def _parametric_xent(kind: str, st: _Stats, loc: float, scales: Any) -> np.ndarray:
    """Bits of the symbols under the quantized distribution on [lo, hi] as constriction codes it, one per scale:
    the first and last bins also take the tails beyond the support (no renormalisation), as training counts
    them (``compress.entropy_quant.symbol_bits``)."""
    sc = np.atleast_1d(np.asarray(scales, dtype=np.float64))[:, None]  # (S, 1)
    a = (st.values[None, :] - 0.5 - loc) / sc  # (S, V)
    b = a + 1.0 / sc
    a[:, st.values == st.lo] = -_OPEN
    b[:, st.values == st.hi] = _OPEN
    log_p = np.maximum(log_interval_prob(kind, a, b), math.log(PROB_FLOOR))
    return -(log_p @ st.counts) / math.log(2.0)


class _ParametricModel(EntropyModel):
    """Shared by laplace and gaussian: support + loc + scale (fp16, or compact); the coder is constriction's."""

    kind: ClassVar[str]

    def _constriction_model(self, spec: ModelSpec) -> Any:
        loc, scale = spec.params
        cls = _cm.QuantizedLaplace if self.kind == "laplace" else _cm.QuantizedGaussian
        return cls(spec.lo, spec.hi, float(loc), float(scale))

    def fit(self, sym: np.ndarray, st: _Stats, compact: bool = False) -> ModelSpec | None:
        if st.lo == st.hi:
            return None
        if self.kind == "laplace":
            locs, s0 = (st.median, st.mean), st.mean_abs_dev
        else:
            locs, s0 = (st.mean, st.median), st.std
        to_grid = (lambda x: float(round_loc(x))) if compact else _fp16
        best: tuple[float, float, float] | None = None
        for loc in dict.fromkeys(to_grid(x) for x in locs):
            scale, bits = self._best_scale(st, loc, max(s0, SCALE_MIN), compact)
            if best is None or bits < best[0]:
                best = (bits, loc, scale)
        assert best is not None
        return ModelSpec(self.name, st.lo, st.hi, (best[1], best[2]))

    def _best_scale(self, st: _Stats, loc: float, s0: float, compact: bool) -> tuple[float, float]:
        """(scale, estimated bits): a coarse then a fine log-spaced grid around ``s0``, the candidates rounded to
        what the spec stores (fp16, or the compact minifloat)."""
        lo_s, hi_s = math.log(max(s0 / 32, SCALE_MIN)), math.log(min(s0 * 32, _FP16_MAX))
        grid = np.linspace(lo_s, hi_s, 33)
        i = int(np.argmin(_parametric_xent(self.kind, st, loc, np.exp(grid))))
        step = grid[1] - grid[0]
        grid = np.linspace(grid[i] - step, grid[i] + step, 33)
        if compact:
            cands = np.unique(round_minifloat(np.exp(grid), SCALE_EXP_MIN))
        else:
            cands = np.unique(np.clip(np.exp(grid), SCALE_MIN, _FP16_MAX).astype(np.float16)).astype(np.float64)
        bits = _parametric_xent(self.kind, st, loc, cands)
        j = int(np.argmin(bits))
        return float(cands[j]), float(bits[j])

    def check(self, spec: ModelSpec) -> None:
        _check_support(spec)
        if len(spec.params) != 2:
            raise ValueError(f"{self.name} model needs params (loc, scale), got {spec.params!r}")
        loc, scale = spec.params
        for label, v in (("loc", loc), ("scale", scale)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{self.name} {label} must be a finite float, got {v!r}")
            if _fp16(v) != v:
                raise ValueError(f"{self.name} {label} {v!r} is not representable in float16")
        if not scale > 0:
            raise ValueError(f"{self.name} scale must be positive, got {scale!r}")

    def write_params(self, spec: ModelSpec, compact: bool = False) -> bytes:
        loc, scale = spec.params
        if not compact:
            return _write_support(spec) + _fp16_bytes(loc) + _fp16_bytes(scale)
        loc_q, scale_code = loc_code(loc), minifloat_code(scale, SCALE_EXP_MIN)
        if loc_q is None or scale_code is None:
            raise ValueError(f"{self.name} loc {loc!r} / scale {scale!r} are not on the compact grids")
        return _write_support(spec) + write_uvarint(zigzag(loc_q)) + bytes([scale_code])

    def read_params(self, r: Reader, compact: bool = False) -> ModelSpec:
        lo, hi = _read_support(r, self.name)
        if compact:
            q = unzigzag(r.uvarint(f"{self.name} loc", max_value=2 * int(LOC_MAX * LOC_UNITS)))
            loc, scale = loc_from_code(q), minifloat_from_code(r.u8(f"{self.name} scale"), SCALE_EXP_MIN)
            return ModelSpec(self.name, lo, hi, (loc, scale))
        loc, scale = r.f16(f"{self.name} loc"), r.f16(f"{self.name} scale")
        if not math.isfinite(loc):
            raise BitstreamError(f"bad {self.name} model spec: loc {loc} is not finite")
        if not (math.isfinite(scale) and scale > 0):
            raise BitstreamError(f"bad {self.name} model spec: scale {scale} is not finite and positive")
        return ModelSpec(self.name, lo, hi, (loc, scale))

    def encode(self, sym: np.ndarray, spec: ModelSpec) -> bytes:
        return _rc_encode(sym, self._constriction_model(spec))

    def decode(self, payload: bytes, spec: ModelSpec, n: int) -> np.ndarray:
        return _rc_decode(payload, self._constriction_model(spec), n, self.name)

    def estimate_payload_bits(self, st: _Stats, spec: ModelSpec) -> float:
        loc, scale = spec.params
        return float(_parametric_xent(self.kind, st, loc, scale)[0])


class LaplaceModel(_ParametricModel):
    """Quantized Laplace on [lo, hi], loc and scale in float16."""

    model_id = 3
    name = "laplace"
    kind = "laplace"


class GaussianModel(_ParametricModel):
    """Quantized Gaussian on [lo, hi], loc and scale (std) in float16."""

    model_id = 4
    name = "gaussian"
    kind = "gaussian"


# -- categorical with quantized log-counts


def _level_weights() -> np.ndarray:
    """Exact integer weight per level: floor(2**((v - 1) / 4 + 4)) for v >= 1, 0 for v = 0.

    Integer 4th roots (no libm) so every platform builds the same table, hence the same coder.
    """
    w = [0]
    for v in range(1, CAT_LEVELS + 1):
        w.append(math.isqrt(math.isqrt(1 << (v - 1 + 4 * CAT_STEPS_PER_OCTAVE))))
    return np.array(w, dtype=np.float64)


_WEIGHTS = _level_weights()


def _exp_golomb(values: np.ndarray, k: int) -> np.ndarray:
    """Exp-Golomb order-k codes of non-negative ints as a flat 0/1 uint8 array (most significant bit first)."""
    y = values.astype(np.int64) + (1 << k)
    nb = np.floor(np.log2(y)).astype(np.int64) + 1  # bit length (y < 2**20: exact in float64)
    lens = 2 * nb - 1 - k  # (nb - 1 - k) zeros, then y in nb bits
    total = int(lens.sum())
    ends = np.cumsum(lens)
    # bit j of code i (counting from the code's end) is bit j of y; the leading zeros are bits >= nb, i.e. 0
    pos_from_end = (ends[np.repeat(np.arange(y.size), lens)] - 1) - np.arange(total)
    return ((np.repeat(y, lens) >> pos_from_end) & 1).astype(np.uint8)


class CategoricalModel(EntropyModel):
    """Explicit histogram over [lo, hi]: per bin a level 0..63, p ∝ 2**((level-1)/4) (0 = absent).

    Levels are delta-coded, zigzag, Exp-Golomb of order k (0..3, whichever is shortest); k is packed
    with the support's span in one varint. Worth its side information for big tensors only -- the
    selection measures that.
    """

    model_id = 5
    name = "categorical"

    def levels_of(self, st: _Stats) -> tuple[int, ...]:
        hist = st.hist.astype(np.float64)
        m = hist.max()
        lv = np.zeros(hist.size, np.int64)
        nz = hist > 0
        lv[nz] = np.clip(np.round(CAT_LEVELS + CAT_STEPS_PER_OCTAVE * np.log2(hist[nz] / m)), 1, CAT_LEVELS)
        return tuple(int(v) for v in lv)

    def fit(self, sym: np.ndarray, st: _Stats, compact: bool = False) -> ModelSpec | None:
        if st.lo == st.hi or st.hi - st.lo + 1 > CAT_MAX_BINS:
            return None
        return ModelSpec(self.name, st.lo, st.hi, self.levels_of(st))

    def check(self, spec: ModelSpec) -> None:
        _check_support(spec, CAT_MAX_BINS)
        lv = spec.params
        if len(lv) != spec.hi - spec.lo + 1:
            raise ValueError(f"categorical needs {spec.hi - spec.lo + 1} levels, got {len(lv)}")
        if any(not isinstance(v, int) or not 0 <= v <= CAT_LEVELS for v in lv):
            raise ValueError(f"categorical levels must be ints in [0, {CAT_LEVELS}]")
        if not any(lv):
            raise ValueError("categorical levels are all zero")

    def write_params(self, spec: ModelSpec, compact: bool = False) -> bytes:
        lv = np.asarray(spec.params, dtype=np.int64)
        d = np.diff(lv, prepend=0)
        z = np.where(d >= 0, 2 * d, -2 * d - 1)  # zigzag
        codes = [_exp_golomb(z, k) for k in range(4)]
        k = min(range(4), key=lambda i: codes[i].size)
        packed = np.packbits(codes[k]).tobytes()  # MSB first, zero padding
        head = write_uvarint(zigzag(spec.lo)) + write_uvarint((spec.hi - spec.lo - 1) * 4 + k)
        return head + packed

    def read_params(self, r: Reader, compact: bool = False) -> ModelSpec:
        lo = r.varint("categorical lo")
        sk = r.uvarint("categorical span", max_value=(CAT_MAX_BINS - 2) * 4 + 3)
        hi, k = lo + sk // 4 + 1, sk % 4
        if lo < -SYMBOL_MAX or hi > SYMBOL_MAX:
            raise BitstreamError(f"bad categorical model spec: support [{lo}, {hi}] exceeds ±{SYMBOL_MAX}")
        nbins = hi - lo + 1
        cur, nbits = 0, 0  # bit buffer, most significant first

        def bit() -> int:
            nonlocal cur, nbits
            if nbits == 0:
                cur, nbits = r.u8("categorical levels"), 8
            nbits -= 1
            return (cur >> nbits) & 1

        lv, prev = [], 0
        for _ in range(nbins):
            zeros = 0
            while bit() == 0:
                zeros += 1
                if zeros > 8:
                    raise BitstreamError("bad categorical model spec: level code too long")
            y = 1
            for _ in range(zeros + k):
                y = (y << 1) | bit()
            prev += unzigzag(y - (1 << k))
            if not 0 <= prev <= CAT_LEVELS:
                raise BitstreamError(f"bad categorical model spec: level {prev} outside [0, {CAT_LEVELS}]")
            lv.append(prev)
        if cur & ((1 << nbits) - 1):
            raise BitstreamError("bad categorical model spec: nonzero padding bits")
        if not any(lv):
            raise BitstreamError("bad categorical model spec: all levels are zero")
        return ModelSpec(self.name, lo, hi, tuple(lv))

    def _constriction_model(self, spec: ModelSpec) -> Any:
        return _cm.Categorical(_WEIGHTS[np.asarray(spec.params, dtype=np.int64)], perfect=False)

    def encode(self, sym: np.ndarray, spec: ModelSpec) -> bytes:
        return _rc_encode(sym - np.int32(spec.lo), self._constriction_model(spec))

    def decode(self, payload: bytes, spec: ModelSpec, n: int) -> np.ndarray:
        out = _rc_decode(payload, self._constriction_model(spec), n, self.name)
        return out + np.int32(spec.lo)

    def estimate_payload_bits(self, st: _Stats, spec: ModelSpec) -> float:
        w = _WEIGHTS[np.asarray(spec.params, dtype=np.int64)]
        p = np.maximum(w / w.sum(), PROB_FLOOR)
        return float(-(st.hist * np.log2(p)).sum())


class GcdModel(EntropyModel):
    """Every symbol is a multiple of g >= 2: code ``s // g`` with an inner model (any but gcd)."""

    model_id = 6
    name = "gcd"

    def fit(self, sym: np.ndarray, st: _Stats, compact: bool = False) -> ModelSpec | None:
        return None  # built by fit_and_encode around the best inner model

    def check(self, spec: ModelSpec) -> None:
        if len(spec.params) != 2 or not isinstance(spec.params[1], ModelSpec):
            raise ValueError("gcd model needs params (g, inner_spec)")
        g, inner = spec.params
        if not isinstance(g, int) or not 2 <= g <= SYMBOL_MAX:
            raise ValueError(f"gcd factor must be an int in [2, {SYMBOL_MAX}], got {g!r}")
        if inner.model in ("gcd", "zero"):
            raise ValueError(f"gcd cannot wrap a {inner.model} model")
        if (spec.lo, spec.hi) != (inner.lo * g, inner.hi * g):
            raise ValueError("gcd support must be the inner support times g")
        if not -SYMBOL_MAX <= spec.lo <= spec.hi <= SYMBOL_MAX:
            raise ValueError(f"gcd support [{spec.lo}, {spec.hi}] exceeds ±{SYMBOL_MAX}")

    def write_params(self, spec: ModelSpec, compact: bool = False) -> bytes:
        g, inner = spec.params
        return write_uvarint(g - 2) + inner.to_bytes(compact)

    def read_params(self, r: Reader, compact: bool = False) -> ModelSpec:
        g = r.uvarint("gcd factor", max_value=SYMBOL_MAX - 2) + 2
        start = r.pos
        inner_model = model_by_id(r.u8("gcd inner model id"))
        if inner_model.name in ("gcd", "zero"):
            raise BitstreamError(f"bad gcd model spec at offset {r.base + start}: cannot wrap {inner_model.name}")
        inner = inner_model.read_params(r, compact)
        lo, hi = inner.lo * g, inner.hi * g
        if lo < -SYMBOL_MAX or hi > SYMBOL_MAX:
            raise BitstreamError(f"bad gcd model spec: support [{lo}, {hi}] exceeds ±{SYMBOL_MAX}")
        return ModelSpec(self.name, lo, hi, (g, inner))

    def encode(self, sym: np.ndarray, spec: ModelSpec) -> bytes:
        g, inner = spec.params
        return MODELS.get(inner.model).encode(sym // np.int32(g), inner)

    def decode(self, payload: bytes, spec: ModelSpec, n: int) -> np.ndarray:
        g, inner = spec.params
        return MODELS.get(inner.model).decode(payload, inner, n) * np.int32(g)

    def estimate_payload_bits(self, st: _Stats, spec: ModelSpec) -> float:
        raise NotImplementedError  # estimated through the inner model in estimate_bits


for _m in (ZeroModel(), ConstModel(), RawModel(), LaplaceModel(), GaussianModel(), CategoricalModel(), GcdModel()):
    _register(_m)
del _m


# ----------------------------------------------------------------------------------------------- API


def _stored_size(spec: ModelSpec, payload: bytes) -> int:
    """Bytes as stored in a tensor record: spec, then (only for models with a payload) length + payload."""
    n = len(spec.to_bytes())
    if spec.has_payload:
        n += uvarint_size(len(payload)) + len(payload)
    return n


def _gcd(sym: np.ndarray) -> int:
    return int(np.gcd.reduce(np.abs(sym.astype(np.int64)))) if sym.size else 0


def _candidates(sym: np.ndarray) -> list[tuple[np.ndarray, _Stats, int]]:
    """(symbols, stats, g): the plain symbols, plus the symbols divided by their gcd when it is >= 2."""
    st = _Stats.of(sym)
    out = [(sym, st, 1)]
    if st.lo != st.hi:
        g = _gcd(sym)
        if g >= 2:
            q = sym // np.int32(g)
            out.append((q, _Stats.of(q), g))
    return out


def _wrap(spec: ModelSpec, g: int) -> ModelSpec:
    return spec if g == 1 else ModelSpec("gcd", spec.lo * g, spec.hi * g, (g, spec))


def _smallest(sym: np.ndarray, cost: Callable[[EntropyModel, ModelSpec, ModelSpec, np.ndarray, _Stats],
                                             tuple[float, Any]], compact: bool = False) -> tuple[ModelSpec, Any]:
    """The fitted spec (of every applicable model, each also wrapped in gcd) that ``cost(model, spec, wrapped,
    symbols, stats) -> (cost, extra)`` rates lowest, and its extra; ties: lower model id. ``compact``: fit the
    parametric models' params on format version 4's grids."""
    best: tuple[float, int, ModelSpec, Any] | None = None
    for q, st, g in _candidates(sym):
        for model in sorted(_BY_ID.values(), key=lambda m: m.model_id):
            spec = model.fit(q, st, compact)
            if spec is None:
                continue
            wrapped = _wrap(spec, g)
            size, extra = cost(model, spec, wrapped, q, st)
            if best is None or (size, wrapped.model_id) < (best[0], best[1]):
                best = (size, wrapped.model_id, wrapped, extra)
            if not model.has_payload:
                break  # zero / const: nothing can beat them
    assert best is not None
    return best[2], best[3]


def fit_and_encode(symbols: Any) -> tuple[ModelSpec, bytes]:
    """Code an integer array with whichever registered model gives the fewest stored bytes.

    Every applicable model (and each wrapped in ``gcd`` when the symbols share a factor) is fitted and
    actually coded; the smallest ``spec + payload length + payload`` wins (ties: lower model id).

    Args:
        symbols: integers in [-32767, 32767], any shape (flattened in C order).

    Returns:
        ``(spec, payload)``; ``decode(spec, payload, symbols.size)`` gives the symbols back.
    """
    sym = _check_symbols(symbols)
    if sym.size == 0:
        return ModelSpec("zero", 0, 0), b""

    def stored(model: EntropyModel, spec: ModelSpec, wrapped: ModelSpec, q: np.ndarray, st: _Stats):
        payload = model.encode(q, spec)
        return _stored_size(wrapped, payload), payload

    return _smallest(sym, stored)


def _fitting_symbols(symbols: Any, spec: ModelSpec) -> np.ndarray:
    """The symbols, flat int32, once checked to be what ``spec`` can code (ValueError otherwise)."""
    sym = _check_symbols(symbols)
    if sym.size and (int(sym.min()) < spec.lo or int(sym.max()) > spec.hi):
        raise ValueError(
            f"symbols [{int(sym.min())}, {int(sym.max())}] outside the spec's support [{spec.lo}, {spec.hi}]"
        )
    if spec.model in ("zero", "const") and sym.size and not (sym == spec.lo).all():
        raise ValueError(f"{spec.model} model needs every symbol equal to {spec.lo}")
    if spec.model == "gcd" and sym.size and (sym % np.int32(spec.params[0])).any():
        raise ValueError(f"gcd model needs every symbol to be a multiple of {spec.params[0]}")
    return sym


def _symbol_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_SYMBOLS:
        raise BitstreamError(f"bad symbol count {n!r}: expected 0 <= n <= {MAX_SYMBOLS}")
    return int(n)


def encode(symbols: Any, spec: ModelSpec) -> bytes:
    """Code symbols with a given spec (its support must cover them)."""
    return MODELS.get(spec.model).encode(_fitting_symbols(symbols, spec), spec)


def decode(spec: ModelSpec, payload: bytes, n: int) -> np.ndarray:
    """Decode ``n`` symbols (int32, 1-D). Everything is validated; a bad payload raises BitstreamError."""
    n = _symbol_count(n)
    m = MODELS.get(spec.model)
    if not m.has_payload and payload:
        raise BitstreamError(f"corrupt {spec.model} payload: expected none, got {len(payload)} bytes")
    out = m.decode(bytes(payload), spec, n)
    if out.shape != (n,):  # defensive: a coder must return exactly n symbols
        raise BitstreamError(f"corrupt {spec.model} payload: decoded {out.shape} symbols, expected {n}")
    return out


def estimate_bits(symbols: Any) -> float:
    """Cheap estimate of the stored size in bits of ``fit_and_encode(symbols)`` (no coding: fits + histograms).

    Usually within a few bytes of the measured size; use ``fit_and_encode`` for the exact rate.
    """
    sym = _check_symbols(symbols)
    if sym.size == 0:
        return 8.0
    best = math.inf
    for q, st, g in _candidates(sym):
        for model in sorted(_BY_ID.values(), key=lambda m: m.model_id):
            spec = model.fit(q, st)
            if spec is None:
                continue
            payload_bits = model.estimate_payload_bits(st, spec)
            nbytes = math.ceil(payload_bits / 8)
            side = len(_wrap(spec, g).to_bytes()) + (uvarint_size(nbytes) if model.has_payload else 0)
            best = min(best, 8.0 * side + payload_bits)
    return best


# ----------------------------------------------------------------------------------------------- shared stream
# The packed tensor layout (bitstream.packed) codes every range-coded array of a section into one range-coder
# stream: no payload length and no flushed word per array. Raw arrays are stored inline (their length follows
# from the count and the support), zero and const ones have no payload.

_STREAMED = ("laplace", "gaussian", "categorical")


def _inner(spec: ModelSpec) -> tuple[ModelSpec, int]:
    """The model that codes the symbols and the factor they are divided by first (gcd), else (spec, 1)."""
    return (spec.params[1], spec.params[0]) if spec.model == "gcd" else (spec, 1)


def is_streamed(spec: ModelSpec) -> bool:
    """Whether the packed layout codes this model's symbols into the section's shared range-coder stream."""
    return _inner(spec)[0].model in _STREAMED


def inline_payload_size(spec: ModelSpec, n: int) -> int:
    """Bytes a non-streamed array of ``n`` symbols stores inline in the packed layout (raw: packed bits)."""
    inner, _ = _inner(spec)
    if inner.model == "raw":
        return (n * RawModel._width(inner) + 7) // 8
    if inner.model in _STREAMED:
        raise ValueError(f"a {spec.describe()} array is coded in the shared stream, not inline")
    return 0


def _stream_model(spec: ModelSpec) -> tuple[Any, int, int]:
    """(constriction model, gcd factor, offset): the stream codes ``symbols // factor - offset`` (a categorical
    model's bins count from its support's low end, as its own payloads do)."""
    inner, g = _inner(spec)
    if inner.model not in _STREAMED:
        raise ValueError(f"a {spec.describe()} array is not range-coded")
    offset = inner.lo if inner.model == "categorical" else 0
    return MODELS.get(inner.model)._constriction_model(inner), g, offset


class StreamEncoder:
    """Range-codes many arrays, each with its own model, into one stream (decoded in the same order)."""

    def __init__(self) -> None:
        self._enc = _RangeEncoder()

    def add(self, symbols: Any, spec: ModelSpec) -> None:
        sym = _fitting_symbols(symbols, spec)
        model, g, offset = _stream_model(spec)
        if sym.size:
            self._enc.encode((sym // np.int32(g) - np.int32(offset)).astype(np.int32), model)

    def finish(self) -> bytes:
        """The stream (as a single array's payload is stored)."""
        return _coded_words(self._enc)


class StreamDecoder:
    """Reads back what a :class:`StreamEncoder` wrote, array by array; every failure is a BitstreamError."""

    def __init__(self, data: bytes) -> None:
        self._dec = _range_decoder(data)

    def take(self, spec: ModelSpec, n: int) -> np.ndarray:
        n = _symbol_count(n)
        if n == 0:
            return np.zeros(0, np.int32)
        model, g, offset = _stream_model(spec)
        out = np.asarray(_guarded("tensor stream", lambda: self._dec.decode(model, n)), dtype=np.int32)
        if out.shape != (n,):
            raise BitstreamError(f"corrupt tensor stream: decoded {out.shape} symbols, expected {n}")
        return (out + np.int32(offset)) * np.int32(g)

    def finish(self) -> None:
        """Refuse a stream with data left over after its last array."""
        if not self._dec.maybe_exhausted():
            raise BitstreamError("corrupt tensor stream: data left over after the last tensor")


def packed_payload_bits(spec: ModelSpec, st: _Stats) -> float:
    """Bits an array costs in the packed layout beyond its spec: its share of the shared stream (ideal code
    length) when streamed, its inline bytes otherwise. ``st``: the stats of the symbols the inner model codes."""
    inner, _ = _inner(spec)
    if inner.model in _STREAMED:
        return MODELS.get(inner.model).estimate_payload_bits(st, inner)
    return 8.0 * inline_payload_size(spec, st.n)


def fit_packed(symbols: Any, compact: bool, stored_bits: Callable[[ModelSpec], float]) -> tuple[ModelSpec, float]:
    """The model that stores an array in the fewest bits in the packed layout (spec + its payload bits), and
    those payload bits. Every applicable model is fitted (each also wrapped in gcd); ties: lower model id.
    ``compact``: the section stores parametric params compactly (flag bit 2), so they are fitted on its grids.
    ``stored_bits(spec)``: what the layout spends on the spec and the array's inline payload (the byte layout
    or the records in bits, ``bitstream.packed``); a streamed payload's share is added to it."""
    sym = _check_symbols(symbols)
    if sym.size == 0:
        return ModelSpec("zero", 0, 0), 0.0

    def packed(model: EntropyModel, spec: ModelSpec, wrapped: ModelSpec, q: np.ndarray, st: _Stats):
        payload = packed_payload_bits(spec, st)
        return stored_bits(wrapped) + (payload if is_streamed(wrapped) else 0.0), payload

    return _smallest(sym, packed, compact)


def fit_model(name: str, symbols: Any, compact: bool = True) -> ModelSpec | None:
    """The registered model ``name`` fitted to ``symbols`` as the coder fits it (``compact``: its parameters on
    the packed section's grids); None where that model does not apply (e.g. a parametric one to equal symbols)."""
    sym = _check_symbols(symbols)
    return MODELS.get(name).fit(sym, _Stats.of(sym), compact)


def spec_payload_bits(symbols: Any, spec: ModelSpec) -> float:
    """``packed_payload_bits`` of given symbols under a given spec."""
    sym = _check_symbols(symbols)
    inner, g = _inner(spec)
    q = sym // np.int32(g) if g > 1 else sym
    return packed_payload_bits(spec, _Stats.of(q)) if sym.size else 0.0
