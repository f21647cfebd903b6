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
  laplace or gaussian spec's loc and scale in about two bytes instead of four.

Layout (see ``bitstream/FORMAT.md`` §5b)::

    flags                u8: bit 0 = shapes implicit; bit 1 = no meta bytes; bit 2 = compact steps and
                         parametric specs; other bits reserved (refused)
    count                uvarint
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

__all__ = ["COMPACT", "IMPLICIT_SHAPES", "NO_META", "decode_packed", "encode_packed", "is_compact", "packed_breakdown"]

IMPLICIT_SHAPES = 0x01  # flag bit: the reader supplies the shapes
NO_META = 0x02  # flag bit: no record has a meta byte (one scale each, bits = nominal_bits of the support); v3 on
COMPACT = 0x04  # flag bit: steps and parametric specs in bitstream.compact's encoding; v4 on
_KNOWN_FLAGS = IMPLICIT_SHAPES | NO_META | COMPACT


@dataclasses.dataclass
class _Array:
    """One coded array of a record: its spec, inline bytes, and (streamed) its symbols or stand-in bits."""

    spec: ModelSpec
    symbols: np.ndarray
    inline: bytes = b""
    stream_bits: float = 0.0  # its share of the shared stream (estimated), 0 when not streamed


def _choose(symbols: np.ndarray, entropy: tuple[str, float, float] | None, bits: float | None,
            compact: bool = False) -> _Array:
    """The array as the packed layout stores it: by the smallest model, or by the learned ``entropy`` model --
    unless the array is small (at most ``SEARCH_MAX_SYMBOLS``) and another model stores it in fewer bits.
    ``bits``: the learned model's payload in bits as training estimated it (a stand-in: nothing is coded).
    ``compact``: specs are stored compactly (flag bit 2)."""
    flat = symbols.reshape(-1)
    candidates = []
    if entropy is not None:
        spec = _given_spec(flat, entropy)
        if not is_streamed(spec):
            return _array(flat, spec, 0.0)
        payload = spec_payload_bits(flat, spec) if bits is None else float(bits)
        candidates.append((8.0 * len(spec.to_bytes(compact)) + payload, spec, payload))
        if flat.size > SEARCH_MAX_SYMBOLS:
            return _array(flat, spec, payload)
    elif bits is not None:
        raise ValueError("stand-in bits need a tensor with a learned entropy model")
    spec, payload = fit_packed(flat, compact)
    candidates.append((8.0 * len(spec.to_bytes(compact)) + payload, spec, payload))
    _, spec, payload = min(candidates, key=lambda c: c[0])
    return _array(flat, spec, payload)


def _array(flat: np.ndarray, spec: ModelSpec, payload_bits: float) -> _Array:
    if is_streamed(spec):
        return _Array(spec, flat, stream_bits=payload_bits)
    return _Array(spec, flat, inline=encode(flat, spec) if spec.has_payload else b"")


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
                  payload_bits: Sequence[float | None] | None = None, compact: bool | None = None) -> bytes:
    """The PACKED_TENSORS section payload for ``tensors`` (in order; names are not stored).

    ``implicit_shapes``: leave the shapes out (the reader must supply them to ``decode_packed``).
    ``payload_bits``: lay the section out with a stand-in stream instead of coding it: per tensor, the bits its
    learned entropy model codes the symbols in (None: code that tensor as usual; its bits count as estimated).
    The result has the exact size of every byte but the stream's, which is the bits summed, /8, plus the
    coder's flush (``RANGE_CODER_OVERHEAD_BYTES``) -- how rate-aware training counts the side information.
    ``compact``: store the steps and parametric specs compactly (flag bit 2; ValueError unless every tensor
    ``is_compact``); None: whenever every tensor is.
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
    chosen = [_choose(t.symbols, t.entropy, None if payload_bits is None else payload_bits[i], compact)
              for i, t in enumerate(tensors)]
    no_meta = bool(tensors) and all(t.axis is None and t.bits == spec_bits(a.spec) for t, a in zip(tensors, chosen))
    out = bytearray([(IMPLICIT_SHAPES if implicit_shapes else 0) | (NO_META if no_meta else 0)
                     | (COMPACT if compact else 0)])
    out += write_uvarint(len(tensors))
    streamed: list[_Array] = []
    for t, symbols in zip(tensors, chosen):
        if not no_meta:
            out.append(t.bits | ((0 if t.axis is None else t.axis + 1) << 5))
        if not implicit_shapes:
            out += write_uvarint(len(t.shape))
            for d in t.shape:
                out += write_uvarint(d)
        arrays = [symbols]
        out += symbols.spec.to_bytes(compact) + symbols.inline
        if symbols.spec.model != "zero":
            if t.axis is None:
                step = float(t.scales[0])
                out += bytes([minifloat_code(step, STEP_EXP_MIN)]) if compact else t.scales.astype("<f2").tobytes()
            else:
                arrays.append(_choose(_scales_to_ints(t.scales), None, None, compact))
                out += arrays[1].spec.to_bytes(compact) + arrays[1].inline
        streamed += [a for a in arrays if is_streamed(a.spec)]
    if payload_bits is not None:
        total = sum(a.stream_bits for a in streamed)
        out += bytes(max(0, round(total / 8 + RANGE_CODER_OVERHEAD_BYTES)) if streamed else 0)
    else:
        stream = StreamEncoder()
        for a in streamed:
            stream.add(a.symbols, a.spec)
        out += stream.finish()
    return bytes(out)


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
    scale_size: int  # the bytes the file spends on it (2, or 1 compact)
    scale_spec: ModelSpec | None  # per-channel scales
    scale_inline: bytes
    side: int  # bytes of the record that are neither payload nor scales


def _read_array(r: Reader, n: int, what: str, compact: bool) -> tuple[ModelSpec, bytes]:
    spec = ModelSpec.from_bytes(r, compact)
    if is_streamed(spec) or not spec.has_payload:
        return spec, b""
    return spec, r.read(inline_payload_size(spec, n), f"{what} payload")


def _parse(payload: bytes, shapes: Sequence[tuple[int, ...]] | None,
           limits: TensorLimits) -> tuple[list[_Parsed], Reader]:
    r = Reader(payload, what="PACKED_TENSORS section")
    flags = r.u8("flags")
    if flags & ~_KNOWN_FLAGS:
        raise BitstreamError(f"bad PACKED_TENSORS section: unknown flags 0x{flags:02x}")
    implicit, no_meta, compact = bool(flags & IMPLICIT_SHAPES), bool(flags & NO_META), bool(flags & COMPACT)
    if implicit and shapes is None:
        raise BitstreamError("bad PACKED_TENSORS section: its shapes are implicit and the reader has none")
    count = r.uvarint("tensor count", max_value=limits.max_tensors)
    if count * (1 if no_meta else 2) > r.remaining:  # a record takes at least its model id (and meta byte)
        raise BitstreamError(f"bad PACKED_TENSORS section: {count} tensors cannot fit in {r.remaining} bytes")
    if implicit and count != len(shapes):
        raise BitstreamError(f"the model needs {len(shapes)} tensors, the file has {count}")
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
        bound = _symbol_bound(bits)
        if n and (spec.lo < -bound or spec.hi > bound):
            raise BitstreamError(f"bad tensor {i}: symbol range [{spec.lo}, {spec.hi}] exceeds ±{bound} for "
                                 f"{bits} bits")
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
                               side))
    return records, r


def _decode_all(payload: bytes, shapes: Sequence[tuple[int, ...]] | None,
                limits: TensorLimits) -> tuple[list[_Parsed], list[QuantizedTensor], int]:
    records, r = _parse(payload, shapes, limits)
    stream_bytes = r.remaining
    stream = StreamDecoder(r.read(stream_bytes, "stream"))
    out = []
    for i, rec in enumerate(records):
        n = math.prod(rec.shape)
        sym = stream.take(rec.spec, n) if is_streamed(rec.spec) else decode(rec.spec, rec.inline, n)
        n_scales = 1 if rec.axis is None else rec.shape[rec.axis]
        if rec.scale_raw is not None:
            scales = np.frombuffer(rec.scale_raw, dtype="<f2").astype(np.float16)
        elif rec.scale_spec is not None:
            ints = (stream.take(rec.scale_spec, n_scales) if is_streamed(rec.scale_spec)
                    else decode(rec.scale_spec, rec.scale_inline, n_scales))
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
    return records, out, stream_bytes


def decode_packed(payload: bytes, shapes: Sequence[tuple[int, ...]] | None = None,
                  limits: TensorLimits = TensorLimits()) -> list[QuantizedTensor]:
    """Decode a PACKED_TENSORS payload (``shapes``: each tensor's, required when the section leaves them out).
    Any malformation raises BitstreamError."""
    return _decode_all(payload, shapes, limits)[1]


def packed_breakdown(payload: bytes, shapes: Sequence[tuple[int, ...]] | None = None,
                     limits: TensorLimits = TensorLimits()) -> tuple[list[dict[str, Any]], int]:
    """Per-tensor byte accounting of a PACKED_TENSORS payload, as ``tensor_breakdown`` rows, and the stream's
    bytes that no tensor's share accounts for (its flush and rounding).

    A streamed array's share is its ideal code length under its model (its symbols are decoded for that),
    rounded to bytes; inline payloads count exactly.
    """
    records, tensors, stream_bytes = _decode_all(payload, shapes, limits)
    rows, shares = [], 0
    for rec, t in zip(records, tensors):
        n = t.numel
        b_payload = (round(spec_payload_bits(t.symbols, rec.spec) / 8) if is_streamed(rec.spec)
                     else len(rec.inline))
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
    return rows, stream_bytes - shares
