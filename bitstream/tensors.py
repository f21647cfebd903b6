"""Quantized tensors and the TENSORS section that stores them.

A :class:`QuantizedTensor` is integer symbols plus float16 scales (one per channel along ``axis``, or one for
the whole tensor); its value is ``symbols * scales``. :func:`encode_tensors` writes a list of them as the
TENSORS section payload, each tensor's symbols (and per-channel scales) entropy-coded with whichever model is
smallest (:func:`bitstream.entropy.fit_and_encode`), or with the learned model a tensor carries (a small one by
whichever of the two is smaller). Record layout (see ``bitstream/FORMAT.md``)::

    count                uvarint
    per tensor:
      name               uvarint v = 2 * byte length (even), then the UTF-8 name; an empty name (v = 0) is
                         allowed (hinerv files: the model's parameter order names the tensors)
      meta               u8: bits (low 5 bits, 0..16) | (axis + 1 or 0 for none) << 5
      shape              uvarint ndim (<= 7), ndim uvarint dims
      scales             one scale: float16 LE;  per channel: model spec [+ uvarint length + payload]
                         coding the scales' float16 bit patterns as ordered integers
      symbols            model spec [+ uvarint length + payload]   (length + payload only for coded models)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from bitstream.distributions import DISTRIBUTIONS, SYMBOL_MAX
from bitstream.entropy import ModelSpec, decode, encode, fit_and_encode
from bitstream.errors import BitstreamError
from bitstream.fields import Reader, uvarint_size, write_uvarint

__all__ = [
    "MAX_BITS",
    "MAX_NDIM",
    "QuantizedTensor",
    "TensorLimits",
    "decode_tensors",
    "encode_tensors",
    "nominal_bits",
    "tensor_breakdown",
]

MAX_NDIM = 7  # axis + 1 must fit in 3 bits
MAX_BITS = 16
MAX_NAME_BYTES = 255
# A tensor coded with a given (learned) entropy model is also coded every other way when it has at most this many
# symbols, and stored by whichever is smaller: a small tensor's learned model costs more in its spec (support, loc,
# scale: 7-8 bytes) and its range coder's flush (the payload's last word) than raw bits or a constant would; at
# 0.03 bpp on a 16-frame clip such tensors were half the file (issue #19). Bigger tensors keep the learned model
# (the search costs ~1.5 ms a tensor and could only win a few bytes there).
SEARCH_MAX_SYMBOLS = 4096


@dataclasses.dataclass(frozen=True)
class TensorLimits:
    """Bounds checked while decoding, before anything is allocated."""

    max_tensors: int = 4096
    max_elements: int = 1 << 28  # symbols + scales over the whole section
    max_name_bytes: int = MAX_NAME_BYTES





def _check_entropy(name: str, entropy: object) -> tuple[str, float, float]:
    try:
        model, loc, scale = entropy  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: entropy must be (model, loc, scale), got {entropy!r}") from None
    if model not in DISTRIBUTIONS:
        raise ValueError(f"{name}: entropy model must be one of {DISTRIBUTIONS}, got {model!r}")
    return model, float(loc), float(scale)


def _symbol_bound(bits: int) -> int:
    return min((1 << bits) - 1, SYMBOL_MAX)


def nominal_bits(max_abs: int) -> int:
    """The smallest symmetric width (symbols within ±(2**(bits-1) - 1)) covering ``max_abs``, at least 2 (the
    smallest width a quantizer uses; an all-zero tensor costs no payload whatever its width). The width a
    learned-step tensor records, and the one a PACKED_TENSORS record without a meta byte reads back."""
    return max(2, int(max_abs).bit_length() + 1)


@dataclasses.dataclass(eq=False)
class QuantizedTensor:
    """A quantized tensor: ``value = symbols * scales`` (scales broadcast along ``axis``).

    Attributes:
        name: parameter name, e.g. ``"stages.0.blocks.1.pw1.weight"`` (<= 255 UTF-8 bytes), unique within a
            section; or ``""`` when the reader knows the tensors by their order (costs 1 byte).
        shape: the tensor's shape (<= 7 dims).
        symbols: integer array of that shape, stored as int32; |s| <= min(2**bits - 1, 32767).
        scales: float16, shape ``(shape[axis],)`` for per-channel scales, ``(1,)`` for one scale. Other float
            dtypes are rounded to float16; non-finite values are refused. -0.0 is stored as +0.0.
        axis: the channel axis of the scales, or None for a single scale.
        bits: the quantizer's nominal bit width, 0..16 (0: a pruned, all-zero tensor). Informational apart
            from the bound on |s| above.
        entropy: ``(model, loc, scale)``: code the symbols with this parametric model ('laplace' or
            'gaussian', float16 loc and scale) over their support, as rate-aware training estimated them, instead
            of the best fitted model; None: fit. Writing only (a decoded tensor has None); not part of equality.
    """

    name: str
    shape: tuple[int, ...]
    symbols: np.ndarray
    scales: np.ndarray
    axis: int | None
    bits: int
    entropy: tuple[str, float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if len(self.name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ValueError(f"name {self.name[:40]!r}... is longer than {MAX_NAME_BYTES} UTF-8 bytes")
        shape = tuple(self.shape)
        if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
            raise ValueError(f"{self.name}: shape must be non-negative ints, got {self.shape!r}")
        if len(shape) > MAX_NDIM:
            raise ValueError(f"{self.name}: at most {MAX_NDIM} dims, got {len(shape)}")
        self.shape = tuple(int(d) for d in shape)
        bits_ok = isinstance(self.bits, (int, np.integer)) and not isinstance(self.bits, bool)
        if not bits_ok or not 0 <= self.bits <= MAX_BITS:
            raise ValueError(f"{self.name}: bits must be an int in [0, {MAX_BITS}], got {self.bits!r}")
        self.bits = int(self.bits)
        if self.axis is not None:
            if isinstance(self.axis, bool) or not isinstance(self.axis, (int, np.integer)):
                raise TypeError(f"{self.name}: axis must be an int or None, got {self.axis!r}")
            if not 0 <= self.axis < len(self.shape):
                raise ValueError(f"{self.name}: axis {self.axis} out of range for shape {self.shape}")
            self.axis = int(self.axis)
        sym = np.asarray(self.symbols)
        if sym.dtype == np.bool_ or not np.issubdtype(sym.dtype, np.integer):
            raise TypeError(f"{self.name}: symbols must be an integer array, got dtype {sym.dtype}")
        if sym.shape != self.shape:
            raise ValueError(f"{self.name}: symbols shape {sym.shape} != shape {self.shape}")
        bound = _symbol_bound(self.bits)
        if sym.size and (int(sym.min()) < -bound or int(sym.max()) > bound):
            raise ValueError(
                f"{self.name}: symbols [{int(sym.min())}, {int(sym.max())}] exceed ±{bound} for {self.bits} bits"
            )
        self.symbols = np.asarray(sym, dtype=np.int32, order="C")
        sc = np.asarray(self.scales)
        if not np.issubdtype(sc.dtype, np.floating):
            raise TypeError(f"{self.name}: scales must be a float array, got dtype {sc.dtype}")
        with np.errstate(over="ignore"):
            sc = sc.astype(np.float16).reshape(-1)
        expected = 1 if self.axis is None else self.shape[self.axis]
        if sc.size != expected:
            raise ValueError(f"{self.name}: expected {expected} scales for axis {self.axis}, got {sc.size}")
        if not np.isfinite(sc).all():
            raise ValueError(f"{self.name}: scales must be finite in float16")
        self.scales = sc + np.float16(0.0)  # -0.0 -> +0.0 (the format stores one zero)
        if self.entropy is not None:
            self.entropy = _check_entropy(self.name, self.entropy)

    def dequantize(self) -> np.ndarray:
        """``symbols * scales`` in float32, scales broadcast along ``axis``."""
        sc = self.scales.astype(np.float32)
        if self.axis is not None:
            sc = sc.reshape([-1 if i == self.axis else 1 for i in range(len(self.shape))])
        else:
            sc = sc.reshape(())
        return np.asarray(self.symbols.astype(np.float32) * sc)  # an array for 0-D tensors too

    @property
    def numel(self) -> int:
        return int(self.symbols.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantizedTensor):
            return NotImplemented
        return (
            (self.name, self.shape, self.axis, self.bits) == (other.name, other.shape, other.axis, other.bits)
            and np.array_equal(self.symbols, other.symbols)
            and np.array_equal(self.scales.view(np.uint16), other.scales.view(np.uint16))
        )

    __hash__ = None  # type: ignore[assignment]


# ----------------------------------------------------------------------------------------------- scales

# Scales travel as their float16 bit patterns mapped to ordered integers (sign-magnitude -> signed), so
# nearby scales are nearby integers: finite values map into [-31743, 31743], within the coder's range.


def _scales_to_ints(scales: np.ndarray) -> np.ndarray:
    u = scales.astype(np.float16).view(np.uint16).astype(np.int32)
    mag = u & 0x7FFF
    return np.where(u & 0x8000, -mag, mag).astype(np.int32)


def _ints_to_scales(v: np.ndarray) -> np.ndarray:
    if v.size and int(np.abs(v).max()) > 0x7BFF:
        raise BitstreamError("bad scales: a float16 pattern is inf or NaN")
    u = np.where(v < 0, (-v) | 0x8000, v).astype(np.uint16)
    return u.view(np.float16)


# ----------------------------------------------------------------------------------------------- encode


def _encode_name(name: bytes) -> bytes:
    return write_uvarint(2 * len(name)) + name


def _given_spec(symbols: np.ndarray, entropy: tuple[str, float, float]) -> ModelSpec:
    """The parametric model over the symbols' support (zero/const when there is nothing to code)."""
    lo, hi = (int(symbols.min()), int(symbols.max())) if symbols.size else (0, 0)
    if lo == hi:
        return ModelSpec("zero" if lo == 0 else "const", lo, hi)
    model, loc, scale = entropy
    return ModelSpec(model, lo, hi, (loc, scale))


def _stored(spec: ModelSpec, payload: bytes) -> bytes:
    """A coded array as a record stores it: the spec, then (for models with a payload) length + payload."""
    return spec.to_bytes() + (write_uvarint(len(payload)) + payload if spec.has_payload else b"")


def _coded(symbols: np.ndarray, entropy: tuple[str, float, float] | None = None) -> bytes:
    """The stored array: by the smallest model, or by the ``entropy`` model given -- unless the array is small
    (at most ``SEARCH_MAX_SYMBOLS``) and another model stores it in fewer bytes."""
    if entropy is None:
        return _stored(*fit_and_encode(symbols))
    spec = _given_spec(symbols, entropy)
    if not spec.has_payload:
        return _stored(spec, b"")
    given = _stored(spec, encode(symbols, spec))
    if symbols.size > SEARCH_MAX_SYMBOLS:
        return given
    searched = _stored(*fit_and_encode(symbols))
    return searched if len(searched) < len(given) else given


def encode_tensors(tensors: list[QuantizedTensor]) -> bytes:
    """The TENSORS section payload for ``tensors`` (in the given order; names must be unique). hinerv files of
    format version 2 keep their tensors in a PACKED_TENSORS section instead (``bitstream.packed``)."""
    tensors = list(tensors)
    out = bytearray(write_uvarint(len(tensors)))
    seen: set[str] = set()
    for t in tensors:
        if not isinstance(t, QuantizedTensor):
            raise TypeError(f"expected QuantizedTensor, got {type(t).__name__}")
        if t.name and t.name in seen:
            raise ValueError(f"tensor name {t.name!r} appears twice")
        seen.add(t.name)
        out += _encode_name(t.name.encode("utf-8"))
        out.append(t.bits | ((0 if t.axis is None else t.axis + 1) << 5))
        out += write_uvarint(len(t.shape))
        for d in t.shape:
            out += write_uvarint(d)
        if t.axis is None:  # one scale: raw float16
            out += t.scales.astype("<f2").tobytes()
        else:
            out += _coded(_scales_to_ints(t.scales))
        out += _coded(t.symbols, t.entropy)
    return bytes(out)


# ----------------------------------------------------------------------------------------------- decode


@dataclasses.dataclass
class _Record:
    """One tensor record, parsed but with its payloads still coded."""

    name: str
    shape: tuple[int, ...]
    bits: int
    axis: int | None
    n_scales: int
    raw_scale: bytes | None  # the single fp16 scale, or None when coded
    scale_spec: ModelSpec | None
    scale_payload: bytes
    spec: ModelSpec
    payload: bytes
    start: int
    end: int
    name_bytes: int  # bytes the name took


def _read_coded(r: Reader, what: str) -> tuple[ModelSpec, bytes]:
    spec = ModelSpec.from_bytes(r)
    if not spec.has_payload:
        return spec, b""
    n = r.uvarint(f"{what} payload length", max_value=r.remaining)
    return spec, r.read(n, f"{what} payload")


def read_layout(r: Reader, label: str, limits: TensorLimits, budget: int,
                shape: tuple[int, ...] | None = None,
                meta: int | None = None) -> tuple[int, int | None, tuple[int, ...], int]:
    """A record's meta byte and shape (each read here unless given), checked: (bits, axis, shape, scale count).
    ``budget``: the elements the section may still hold; ``label`` names the tensor in errors."""
    if meta is None:
        meta = r.u8("tensor meta")
    bits, axis_code = meta & 0x1F, meta >> 5
    if bits > MAX_BITS:
        raise BitstreamError(f"bad tensor {label}: {bits} bits (at most {MAX_BITS})")
    if shape is None:
        ndim = r.uvarint("ndim", max_value=MAX_NDIM)
        shape = tuple(r.uvarint("dim", max_value=limits.max_elements) for _ in range(ndim))
    axis = None if axis_code == 0 else axis_code - 1
    if axis is not None and axis >= len(shape):
        raise BitstreamError(f"bad tensor {label}: axis {axis} out of range for shape {shape}")
    n_scales = 1 if axis is None else shape[axis]
    if math.prod(shape) + n_scales > budget:
        raise BitstreamError(f"bad tensor {label}: shape {shape} exceeds the limit of {limits.max_elements} elements")
    return bits, axis, shape, n_scales


def _parse(payload: bytes, limits: TensorLimits) -> list[_Record]:
    r = Reader(payload, what="TENSORS section")
    count = r.uvarint("tensor count", max_value=limits.max_tensors)
    if count * 4 > r.remaining:  # a record takes at least 4 bytes (name, meta, ndim, spec)
        raise BitstreamError(f"bad TENSORS section: {count} tensors cannot fit in {r.remaining} bytes")
    records: list[_Record] = []
    names: set[str] = set()
    budget = limits.max_elements
    for i in range(count):
        start = r.pos
        v = r.uvarint("name code", max_value=2 * limits.max_name_bytes)
        if v % 2:  # odd codes were name references, a form no writer ever used: retired
            raise BitstreamError(f"bad TENSORS section: tensor {i} name code {v} is odd (references are retired)")
        raw = r.read(v // 2, "name")
        name_bytes = r.pos - start
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError(f"bad TENSORS section: tensor {i} name is not valid UTF-8") from None
        if name in names:
            raise BitstreamError(f"bad TENSORS section: duplicate tensor name {name!r}")
        if name:
            names.add(name)
        bits, axis, shape, n_scales = read_layout(r, repr(name), limits, budget)
        n = math.prod(shape)
        budget -= n + n_scales
        raw_scale, sspec, spay = None, None, b""
        if axis is None:
            raw_scale = r.read(2, "scale")
        else:
            sspec, spay = _read_coded(r, f"{name!r} scales")
        spec, pay = _read_coded(r, f"{name!r} symbols")
        records.append(
            _Record(name, shape, bits, axis, n_scales, raw_scale, sspec, spay, spec, pay, start, r.pos, name_bytes)
        )
    r.expect_end("the last tensor")
    return records


def decode_tensors(payload: bytes, limits: TensorLimits = TensorLimits()) -> list[QuantizedTensor]:
    """Decode a TENSORS section payload. Any malformation raises BitstreamError."""
    out: list[QuantizedTensor] = []
    for rec in _parse(payload, limits):
        where = f"tensor {rec.name!r}"
        if rec.raw_scale is not None:
            scales = np.frombuffer(rec.raw_scale, dtype="<f2").astype(np.float16)
        else:
            assert rec.scale_spec is not None
            scales = _ints_to_scales(decode(rec.scale_spec, rec.scale_payload, rec.n_scales))
        if not np.isfinite(scales).all():
            raise BitstreamError(f"bad {where}: a scale is inf or NaN")
        bound = _symbol_bound(rec.bits)
        if rec.spec.lo < -bound or rec.spec.hi > bound:
            n = math.prod(rec.shape)
            if n:  # an empty tensor's spec is irrelevant
                raise BitstreamError(
                    f"bad {where}: symbol range [{rec.spec.lo}, {rec.spec.hi}] exceeds ±{bound} for {rec.bits} bits"
                )
        sym = decode(rec.spec, rec.payload, math.prod(rec.shape)).reshape(rec.shape)
        try:
            out.append(QuantizedTensor(rec.name, rec.shape, sym, scales, rec.axis, rec.bits))
        except (ValueError, TypeError) as e:
            raise BitstreamError(f"bad {where}: {e}") from None
    return out


def _model_params(spec: ModelSpec) -> dict[str, float] | None:
    """loc and scale of a parametric model (inside a gcd wrapper too), else None."""
    if spec.model == "gcd":
        return _model_params(spec.params[1])
    if spec.model in DISTRIBUTIONS:
        return {"loc": float(spec.params[0]), "scale": float(spec.params[1])}
    return None


def tensor_breakdown(payload: bytes, limits: TensorLimits = TensorLimits()) -> list[dict[str, Any]]:
    """Per-tensor byte accounting of a TENSORS payload, without entropy decoding.

    Each entry: ``name, shape, numel, bits, axis, model`` (the symbols' model), ``scale_model``,
    ``bytes_payload`` (coded symbols), ``bytes_scales`` (scales: raw fp16 or spec + payload), ``bytes_side``
    (everything else in the record: name, meta, shape, symbols' model spec and payload length), of which
    ``bytes_name`` is the front-coded name, ``bytes``
    (the whole record), ``bits_per_symbol`` (bytes_payload * 8 / numel), ``step`` (the single scale, or None
    for per-channel scales) and ``model_params`` (loc and scale of a laplace/gaussian model, else None).
    Records plus the count varint sum to ``len(payload)``.
    """
    rows = []
    for rec in _parse(payload, limits):
        if rec.raw_scale is not None:
            b_scales = 2
            scale_model = "fp16"
        else:
            assert rec.scale_spec is not None
            b_scales = len(rec.scale_spec.to_bytes())
            if rec.scale_spec.has_payload:
                b_scales += uvarint_size(len(rec.scale_payload)) + len(rec.scale_payload)
            scale_model = rec.scale_spec.describe()
        size = rec.end - rec.start
        n = math.prod(rec.shape)
        rows.append(
            {
                "name": rec.name,
                "shape": rec.shape,
                "numel": n,
                "bits": rec.bits,
                "axis": rec.axis,
                "model": rec.spec.describe(),
                "scale_model": scale_model,
                "bytes_payload": len(rec.payload),
                "bytes_scales": b_scales,
                "bytes_name": rec.name_bytes,
                "bytes_side": size - len(rec.payload) - b_scales,
                "bytes": size,
                "bits_per_symbol": 8.0 * len(rec.payload) / n if n else 0.0,
                "step": float(np.frombuffer(rec.raw_scale, dtype="<f2")[0]) if rec.raw_scale is not None else None,
                "model_params": _model_params(rec.spec),
            }
        )
    return rows
