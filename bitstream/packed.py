"""The PACKED_TENSORS section: the TENSORS records with their per-tensor overhead taken out.

At a few KB a file, the TENSORS layout spends a third of its bytes on side information: a name byte, the shape,
a payload length and a flushed range-coder word for every tensor. This layout stores the same tensors with

* no names (the reader knows the tensors by their order);
* no shapes when the reader supplies them (flag bit 0: hinerv files without coded plugins, whose shapes follow
  from the MODEL section);
* one range-coder stream for every range-coded array of the section (no lengths, one flush in all); raw arrays
  inline, their length implied by the count and the support;
* no scales for an all-zero tensor (its value is zero whatever they were; they read back as 0);
* no meta byte when no record needs one (flag bit 1, format version 3): every tensor has one scale and the
  nominal width of its symbols (``nominal_bits``), as learned-step (``--quant entropy``) tensors do, so the
  reader knows both from the symbols' model spec. At 1-2 KB a file the meta bytes were 3-5% of it;
* compact side information when every step and learned model is on ``bitstream.compact``'s grids (flag bit 2,
  format version 4; learned-step tensors are trained on them): a single step in one byte instead of two, a
  laplace or gaussian spec's loc and scale in about two bytes instead of four;
* the records in bits, not bytes, when the shapes are implicit and the section compact (flag bit 3, format
  version 5; ``bitstream.bitpacked``): model ids in 3 bits, supports and locs as Exp-Golomb codes, raw payloads
  unpadded, one byte of padding at most before the stream.

Layout (see ``bitstream/FORMAT.md`` §5b)::

    flags                u8: bit 0 = shapes implicit; bit 1 = no meta bytes; bit 2 = compact steps and
                         parametric specs; bit 3 = records in bits (needs bits 0 and 2); other bits
                         reserved (refused)
    count                uvarint
    (bit 3: the records below as bitstream.bitpacked codes them, zero-padded to a byte)
    per tensor:
      meta               u8: bits | (axis + 1 or 0) << 5, as in TENSORS      (only without flag bit 1)
      shape              uvarint ndim, ndim uvarint dims    (only without flag bit 0)
      symbols            model spec, then the raw payload inline for raw (and gcd of raw) models
      scales             absent when the symbols' model is zero; else one float16 (flag bit 2: one minifloat
                         byte), or (per channel) a model
                         spec + inline raw payload for the scales' ordered integers (as TENSORS)
    stream               the rest of the section: the range coder's words, little-endian, trailing zero bytes
                         dropped; every streamed array in record order (a record's symbols before its scales)
"""
from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any, Sequence

import numpy as np

from bitstream.bitpacked import BitReader, BitWriter, raw_bits, read_raw, read_spec, spec_size_bits, write_raw
from bitstream.bitpacked import write_spec
from bitstream.entropy import (
    RANGE_CODER_OVERHEAD_BYTES,
    ModelSpec,
    StreamDecoder,
    StreamEncoder,
    decode,
    encode,
    fit_packed,
    inline_payload_size,
    is_streamed,
    spec_payload_bits,
)
from bitstream.compact import SCALE_EXP_MIN, STEP_EXP_MIN, loc_code, minifloat_code, minifloat_from_code
from bitstream.errors import BitstreamError
from bitstream.fields import Reader, write_uvarint
from bitstream.tensors import (
    SEARCH_MAX_SYMBOLS,
    QuantizedTensor,
    TensorLimits,
    _given_spec,
    _ints_to_scales,
    _scales_to_ints,
    _symbol_bound,
    nominal_bits,
    read_layout,
)

__all__ = ["BITS", "COMPACT", "IMPLICIT_SHAPES", "NO_META", "decode_packed", "encode_packed", "is_compact",
           "packed_breakdown"]

IMPLICIT_SHAPES = 0x01  # flag bit: the reader supplies the shapes
NO_META = 0x02  # flag bit: no record has a meta byte (one scale each, bits = nominal_bits of the support); v3 on
COMPACT = 0x04  # flag bit: steps and parametric specs in bitstream.compact's encoding; v4 on
BITS = 0x08  # flag bit: the records in bits (bitstream.bitpacked); needs IMPLICIT_SHAPES and COMPACT; v5 on
_KNOWN_FLAGS = IMPLICIT_SHAPES | NO_META | COMPACT | BITS


@dataclasses.dataclass
class _Array:
    """One coded array of a record: its spec, inline bytes, and (streamed) its symbols or stand-in bits."""

    spec: ModelSpec
    symbols: np.ndarray
    inline: bytes = b""
    stream_bits: float = 0.0  # its share of the shared stream (estimated), 0 when not streamed


def _stored_bits(spec: ModelSpec, n: int, compact: bool, in_bits: bool) -> float:
    """Bits a record spends on an array of ``n`` symbols besides its share of the stream: its spec and its inline
    payload, in the byte layout (``compact``: flag bit 2) or in bits (flag bit 3)."""
    if in_bits:
        return float(spec_size_bits(spec) + raw_bits(spec, n))
    return 8.0 * (len(spec.to_bytes(compact)) + (0 if is_streamed(spec) else inline_payload_size(spec, n)))


def _choose(symbols: np.ndarray, entropy: tuple[str, float, float] | None, bits: float | None,
            compact: bool = False, in_bits: bool = False) -> _Array:
    """The array as the packed layout stores it: by the smallest model, or by the learned ``entropy`` model --
    unless the array is small (at most ``SEARCH_MAX_SYMBOLS``) and another model stores it in fewer bits.
    ``bits``: the learned model's payload in bits as training estimated it (a stand-in: nothing is coded).
    ``compact``: specs are stored compactly (flag bit 2); ``in_bits``: the records are in bits (flag bit 3)."""
    flat = symbols.reshape(-1)

    def stored(spec: ModelSpec) -> float:
        return _stored_bits(spec, flat.size, compact, in_bits)

    candidates = []
    if entropy is not None:
        spec = _given_spec(flat, entropy)
        if not is_streamed(spec):
            return _array(flat, spec, 0.0, in_bits)
        payload = spec_payload_bits(flat, spec) if bits is None else float(bits)
        candidates.append((stored(spec) + payload, spec, payload))
        if flat.size > SEARCH_MAX_SYMBOLS:
            return _array(flat, spec, payload, in_bits)
    elif bits is not None:
        raise ValueError("stand-in bits need a tensor with a learned entropy model")
    spec, payload = fit_packed(flat, compact, stored)
    candidates.append((stored(spec) + (payload if is_streamed(spec) else 0.0), spec, payload))
    _, spec, payload = min(candidates, key=lambda c: c[0])
    return _array(flat, spec, payload, in_bits)


def _array(flat: np.ndarray, spec: ModelSpec, payload_bits: float, in_bits: bool) -> _Array:
    """``in_bits``: the records are written in bits, which code a raw payload themselves: no inline bytes."""
    if is_streamed(spec):
        return _Array(spec, flat, stream_bits=payload_bits)
    return _Array(spec, flat, inline=encode(flat, spec) if spec.has_payload and not in_bits else b"")


def spec_bits(spec: ModelSpec) -> int:
    """The nominal width of the symbols a spec's support holds: what a record without a meta byte reads."""
    return nominal_bits(max(abs(spec.lo), abs(spec.hi)))


def is_compact(t: QuantizedTensor) -> bool:
    """Whether a tensor's stored numbers are on ``bitstream.compact``'s grids: its single step (when it stores
    one: not all-zero symbols) and its learned entropy model's loc and scale. Per-channel steps are coded as
    integers either way."""
    if t.axis is None and t.symbols.any() and minifloat_code(float(t.scales[0]), STEP_EXP_MIN) is None:
        return False
    if t.entropy is not None:
        _, loc, scale = t.entropy
        return loc_code(loc) is not None and minifloat_code(scale, SCALE_EXP_MIN) is not None
    return True


def encode_packed(tensors: Sequence[QuantizedTensor], implicit_shapes: bool = False,
                  payload_bits: Sequence[float | None] | None = None, compact: bool | None = None,
                  in_bits: bool | None = None) -> bytes:
    """The PACKED_TENSORS section payload for ``tensors`` (in order; names are not stored).

    ``implicit_shapes``: leave the shapes out (the reader must supply them to ``decode_packed``).
    ``payload_bits``: lay the section out with a stand-in stream instead of coding it: per tensor, the bits its
    learned entropy model codes the symbols in (None: code that tensor as usual; its bits count as estimated).
    The result has the exact size of every byte but the stream's, which is the bits summed, /8, plus the
    coder's flush (``RANGE_CODER_OVERHEAD_BYTES``) -- how rate-aware training counts the side information.
    ``compact``: store the steps and parametric specs compactly (flag bit 2; ValueError unless every tensor
    ``is_compact``); None: whenever every tensor is. ``in_bits``: the records in bits (flag bit 3; ValueError
    unless the section is compact with implicit shapes); None: whenever it is.
    """
    tensors = list(tensors)
    if payload_bits is not None and len(payload_bits) != len(tensors):
        raise ValueError(f"expected {len(tensors)} payload bit counts, got {len(payload_bits)}")
    for t in tensors:
        if not isinstance(t, QuantizedTensor):
            raise TypeError(f"expected QuantizedTensor, got {type(t).__name__}")
    fits = bool(tensors) and all(is_compact(t) for t in tensors)
    if compact and not fits:
        raise ValueError("a compact section needs every step and learned model on bitstream.compact's grids")
    compact = fits if compact is None else compact
    bits_allowed = compact and implicit_shapes
    if in_bits and not bits_allowed:
        raise ValueError("records in bits need a compact section with implicit shapes")
    in_bits = bits_allowed if in_bits is None else in_bits
    chosen = [_choose(t.symbols, t.entropy, None if payload_bits is None else payload_bits[i], compact, in_bits)
              for i, t in enumerate(tensors)]
    no_meta = bool(tensors) and all(t.axis is None and t.bits == spec_bits(a.spec) for t, a in zip(tensors, chosen))
    out = bytearray([(IMPLICIT_SHAPES if implicit_shapes else 0) | (NO_META if no_meta else 0)
                     | (COMPACT if compact else 0) | (BITS if in_bits else 0)])
    out += write_uvarint(len(tensors))
    streamed: list[_Array] = []
    records = BitWriter()
    for t, symbols in zip(tensors, chosen):
        meta = t.bits | ((0 if t.axis is None else t.axis + 1) << 5)
        arrays = [symbols]
        if symbols.spec.model != "zero" and t.axis is not None:
            arrays.append(_choose(_scales_to_ints(t.scales), None, None, compact, in_bits))
        step = minifloat_code(float(t.scales[0]), STEP_EXP_MIN) if compact and t.axis is None else None
        if in_bits:
            if not no_meta:
                records.u(meta, 8)
            _write_array_bits(records, symbols)
            if symbols.spec.model != "zero":
                if step is not None:
                    records.u(step, 8)
                else:
                    _write_array_bits(records, arrays[1])
        else:
            if not no_meta:
                out.append(meta)
            if not implicit_shapes:
                out += write_uvarint(len(t.shape))
                for d in t.shape:
                    out += write_uvarint(d)
            out += symbols.spec.to_bytes(compact) + symbols.inline
            if symbols.spec.model != "zero":
                if t.axis is None:
                    out += bytes([step]) if compact else t.scales.astype("<f2").tobytes()
                else:
                    out += arrays[1].spec.to_bytes(compact) + arrays[1].inline
        streamed += [a for a in arrays if is_streamed(a.spec)]
    out += records.to_bytes()
    if payload_bits is not None:
        total = sum(a.stream_bits for a in streamed)
        out += bytes(max(0, round(total / 8 + RANGE_CODER_OVERHEAD_BYTES)) if streamed else 0)
    else:
        stream = StreamEncoder()
        for a in streamed:
            stream.add(a.symbols, a.spec)
        out += stream.finish()
    return bytes(out)


def _write_array_bits(w: BitWriter, a: _Array) -> None:
    write_spec(w, a.spec)
    if raw_bits(a.spec, 1):
        write_raw(w, a.symbols, a.spec)


# ----------------------------------------------------------------------------------------------- decode


@dataclasses.dataclass
class _Parsed:
    """A record parsed: its arrays' specs and inline payloads, the streamed ones still to decode."""

    shape: tuple[int, ...]
    bits: int
    axis: int | None
    spec: ModelSpec
    inline: bytes
    scale_raw: bytes | None  # the single scale as fp16 bytes
    scale_size: float  # the bytes the file spends on its scales (2, or 1 compact; per channel: spec + inline)
    scale_spec: ModelSpec | None  # per-channel scales
    scale_inline: bytes
    side: float  # bytes of the record that are neither payload nor scales (records in bits: fractions)
    inline_bytes: float  # the inline payload's bytes (records in bits: its bits / 8)
    symbols: np.ndarray | None = None  # records in bits: a raw array's symbols, read with the record
    scale_symbols: np.ndarray | None = None  # ... and its per-channel scales' integers


def _read_array(r: Reader, n: int, what: str, compact: bool) -> tuple[ModelSpec, bytes]:
    spec = ModelSpec.from_bytes(r, compact)
    if is_streamed(spec) or not spec.has_payload:
        return spec, b""
    return spec, r.read(inline_payload_size(spec, n), f"{what} payload")


def _parse(payload: bytes, shapes: Sequence[tuple[int, ...]] | None,
           limits: TensorLimits) -> tuple[list[_Parsed], Reader, float]:
    """The records, the reader at the stream, and the bytes of padding after records in bits (else 0)."""
    r = Reader(payload, what="PACKED_TENSORS section")
    flags = r.u8("flags")
    if flags & ~_KNOWN_FLAGS:
        raise BitstreamError(f"bad PACKED_TENSORS section: unknown flags 0x{flags:02x}")
    implicit, no_meta, compact = bool(flags & IMPLICIT_SHAPES), bool(flags & NO_META), bool(flags & COMPACT)
    in_bits = bool(flags & BITS)
    if in_bits and not (implicit and compact):
        raise BitstreamError("bad PACKED_TENSORS section: records in bits need implicit shapes and compact specs")
    if implicit and shapes is None:
        raise BitstreamError("bad PACKED_TENSORS section: its shapes are implicit and the reader has none")
    count = r.uvarint("tensor count", max_value=limits.max_tensors)
    min_bits = (3 if in_bits else 8) + (0 if no_meta else 8)  # a record's model id (and meta byte)
    if count * min_bits > 8 * r.remaining:
        raise BitstreamError(f"bad PACKED_TENSORS section: {count} tensors cannot fit in {r.remaining} bytes")
    if implicit and count != len(shapes):
        raise BitstreamError(f"the model needs {len(shapes)} tensors, the file has {count}")
    if in_bits:
        return _parse_bits(r, count, shapes, no_meta, limits)
    records: list[_Parsed] = []
    budget = limits.max_elements
    for i in range(count):
        start = r.pos
        given = tuple(int(d) for d in shapes[i]) if implicit else None
        bits, axis, shape, n_scales = read_layout(r, str(i), limits, budget, given, 0 if no_meta else None)
        n = math.prod(shape)
        budget -= n + n_scales
        spec, inline = _read_array(r, n, f"tensor {i} symbols", compact)
        if no_meta:
            bits = spec_bits(spec)
        _check_symbol_range(spec, bits, n, i)
        scale_raw, scale_spec, scale_inline, scale_at = None, None, b"", r.pos
        if spec.model != "zero":
            if axis is None and compact:
                scale_raw = struct.pack("<e", minifloat_from_code(r.u8("step"), STEP_EXP_MIN))
            elif axis is None:
                scale_raw = r.read(2, "scale")
            else:
                scale_spec, scale_inline = _read_array(r, n_scales, f"tensor {i} scales", compact)
        scale_bytes = r.pos - scale_at
        side = r.pos - start - len(inline) - scale_bytes
        records.append(_Parsed(shape, bits, axis, spec, inline, scale_raw, scale_bytes, scale_spec, scale_inline,
                               side, len(inline)))
    return records, r, 0.0


def _bit_array(b: BitReader, n: int, what: str) -> tuple[ModelSpec, np.ndarray | None, int]:
    """An array's spec and, for raw, its symbols, read from a record in bits; the bits its payload took."""
    try:
        spec = read_spec(b)
    except (ValueError, TypeError) as e:
        raise BitstreamError(f"bad {what} model spec: {e}") from None
    if not raw_bits(spec, 1):
        return spec, None, 0
    return spec, read_raw(b, spec, n, f"{what} payload"), raw_bits(spec, n)


def _parse_bits(r: Reader, count: int, shapes: Sequence[tuple[int, ...]], no_meta: bool,
                limits: TensorLimits) -> tuple[list[_Parsed], Reader, float]:
    """The records of a section in bits (flag bit 3); the reader is left at the stream, and the padding's bytes
    (a fraction) returned."""
    at = r.pos
    b = BitReader(bytes(r.read(r.remaining, "records")), what="PACKED_TENSORS records")
    records: list[_Parsed] = []
    budget = limits.max_elements
    for i in range(count):
        start = b.pos
        meta = 0 if no_meta else b.u(8, "tensor meta")
        bits, axis, shape, n_scales = read_layout(r, str(i), limits, budget, tuple(int(d) for d in shapes[i]), meta)
        n = math.prod(shape)
        budget -= n + n_scales
        spec, symbols, payload_bits = _bit_array(b, n, f"tensor {i} symbols")
        if no_meta:
            bits = spec_bits(spec)
        _check_symbol_range(spec, bits, n, i)
        scale_raw, scale_spec, scale_symbols, scale_at = None, None, None, b.pos
        if spec.model != "zero":
            if axis is None:
                scale_raw = struct.pack("<e", minifloat_from_code(b.u(8, "step"), STEP_EXP_MIN))
            else:
                scale_spec, scale_symbols, _ = _bit_array(b, n_scales, f"tensor {i} scales")
        scale_bits = b.pos - scale_at
        side_bits = b.pos - start - payload_bits - scale_bits
        records.append(_Parsed(shape, bits, axis, spec, b"", scale_raw, scale_bits / 8, scale_spec, b"",
                               side_bits / 8, payload_bits / 8, symbols, scale_symbols))
    end_of_records = b.pos
    r.seek(at + b.end_of_bits())
    return records, r, (r.pos - at) - end_of_records / 8


def _check_symbol_range(spec: ModelSpec, bits: int, n: int, i: int) -> None:
    bound = _symbol_bound(bits)
    if n and (spec.lo < -bound or spec.hi > bound):
        raise BitstreamError(f"bad tensor {i}: symbol range [{spec.lo}, {spec.hi}] exceeds ±{bound} for "
                             f"{bits} bits")


def _decode_all(payload: bytes, shapes: Sequence[tuple[int, ...]] | None,
                limits: TensorLimits) -> tuple[list[_Parsed], list[QuantizedTensor], int, float]:
    records, r, padding = _parse(payload, shapes, limits)
    stream_bytes = r.remaining
    stream = StreamDecoder(r.read(stream_bytes, "stream"))
    out = []
    for i, rec in enumerate(records):
        n = math.prod(rec.shape)
        if is_streamed(rec.spec):
            sym = stream.take(rec.spec, n)
        else:
            sym = rec.symbols if rec.symbols is not None else decode(rec.spec, rec.inline, n)
        n_scales = 1 if rec.axis is None else rec.shape[rec.axis]
        if rec.scale_raw is not None:
            scales = np.frombuffer(rec.scale_raw, dtype="<f2").astype(np.float16)
        elif rec.scale_spec is not None:
            if is_streamed(rec.scale_spec):
                ints = stream.take(rec.scale_spec, n_scales)
            elif rec.scale_symbols is not None:
                ints = rec.scale_symbols
            else:
                ints = decode(rec.scale_spec, rec.scale_inline, n_scales)
            scales = _ints_to_scales(ints)
        else:  # an all-zero tensor stores no scales
            scales = np.zeros(n_scales, np.float16)
        if not np.isfinite(scales).all():
            raise BitstreamError(f"bad tensor {i}: a scale is inf or NaN")
        try:
            out.append(QuantizedTensor("", rec.shape, sym.reshape(rec.shape), scales, rec.axis, rec.bits))
        except (ValueError, TypeError) as e:
            raise BitstreamError(f"bad tensor {i}: {e}") from None
    stream.finish()
    return records, out, stream_bytes, padding


def decode_packed(payload: bytes, shapes: Sequence[tuple[int, ...]] | None = None,
                  limits: TensorLimits = TensorLimits()) -> list[QuantizedTensor]:
    """Decode a PACKED_TENSORS payload (``shapes``: each tensor's, required when the section leaves them out).
    Any malformation raises BitstreamError."""
    return _decode_all(payload, shapes, limits)[1]


def packed_breakdown(payload: bytes, shapes: Sequence[tuple[int, ...]] | None = None,
                     limits: TensorLimits = TensorLimits()) -> tuple[list[dict[str, Any]], int]:
    """Per-tensor byte accounting of a PACKED_TENSORS payload, as ``tensor_breakdown`` rows, and the stream's
    bytes that no tensor's share accounts for (its flush and rounding; records in bits: their padding too).

    A streamed array's share is its ideal code length under its model (its symbols are decoded for that),
    rounded to bytes; inline payloads count exactly.
    """
    records, tensors, stream_bytes, padding = _decode_all(payload, shapes, limits)
    rows, shares = [], 0
    for rec, t in zip(records, tensors):
        n = t.numel
        b_payload = (round(spec_payload_bits(t.symbols, rec.spec) / 8) if is_streamed(rec.spec)
                     else rec.inline_bytes)
        if rec.scale_raw is not None:
            b_scales, scale_model = rec.scale_size, "fp16" if rec.scale_size == 2 else "minifloat"
        elif rec.scale_spec is not None:
            b_scales = rec.scale_size
            if is_streamed(rec.scale_spec):
                share = round(spec_payload_bits(_scales_to_ints(t.scales), rec.scale_spec) / 8)
                b_scales += share
                shares += share
            scale_model = rec.scale_spec.describe()
        else:
            b_scales, scale_model = 0, "none"
        if is_streamed(rec.spec):
            shares += b_payload
        params = rec.spec.params[1].params if rec.spec.model == "gcd" else rec.spec.params
        parametric = (rec.spec.params[1] if rec.spec.model == "gcd" else rec.spec).model in ("laplace", "gaussian")
        rows.append({
            "name": "", "shape": rec.shape, "numel": n, "bits": rec.bits, "axis": rec.axis,
            "model": rec.spec.describe(), "scale_model": scale_model, "bytes_payload": b_payload,
            "bytes_scales": b_scales, "bytes_name": 0, "bytes_side": rec.side,
            "bytes": rec.side + b_payload + b_scales,
            "bits_per_symbol": 8.0 * b_payload / n if n else 0.0,
            "step": float(t.scales[0]) if rec.axis is None else None,
            "model_params": {"loc": float(params[0]), "scale": float(params[1])} if parametric else None,
        })
    return rows, stream_bytes - shares + padding
