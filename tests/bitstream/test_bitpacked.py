"""A PACKED_TENSORS section's records in bits (flag bit 3, format version 5): the codes, the specs, round trips
through the section, what it saves, and malformed input."""
from __future__ import annotations

import numpy as np
import pytest

from bitstream import BitstreamError, QuantizedTensor, SectionType
from bitstream.bitpacked import BitReader, BitWriter, raw_bits, read_raw, read_spec, spec_size_bits, write_raw
from bitstream.bitpacked import write_spec
from bitstream.compact import LOC_MAX
from bitstream.container import read_container, write_container
from bitstream.entropy import ModelSpec, spec_payload_bits
from bitstream.packed import BITS, COMPACT, IMPLICIT_SHAPES, decode_packed, encode_packed, packed_breakdown
from bitstream.tensors import _given_spec

from .test_packed import _nominal, _on_grid, _same_values

SPECS = [
    ModelSpec("zero", 0, 0),
    ModelSpec("const", -5, -5),
    ModelSpec("raw", -3, 4),
    ModelSpec("raw", 2, 9),  # a support away from zero
    ModelSpec("laplace", -31, 29, (0.25, 3.0)),
    ModelSpec("gaussian", -7, 7, (-1.5, 0.6875)),
    ModelSpec("categorical", -2, 3, (40, 63, 0, 51, 12, 1)),
    ModelSpec("gcd", -8, 12, (4, ModelSpec("raw", -2, 3))),
    ModelSpec("gcd", -30, 30, (3, ModelSpec("laplace", -10, 10, (0.0, 2.0)))),
]


def _reader(w: BitWriter) -> BitReader:
    return BitReader(w.to_bytes(), what="test bits")


def test_codes_round_trip_and_take_their_lengths() -> None:
    w = BitWriter()
    values = [(0, 0), (1, 0), (6, 0), (0, 2), (3, 2), (65534, 0), (5, 3)]
    for v, k in values:
        w.ue(v, k)
    w.se(-7, 1)
    w.u(0b101, 3)
    expected = sum(2 * (v + (1 << k)).bit_length() - 1 - k for v, k in values) + 6 + 3
    assert len(w) == expected  # zigzag(-7) = 13, order 1: y = 15, 4 bits -> 2*4 - 1 - 1 = 6 bits
    r = _reader(w)
    assert [r.ue(k, "v", 1 << 20) for _, k in values] == [v for v, _ in values]
    assert r.se(1, "s", 100) == -7 and r.u(3, "u") == 0b101
    assert r.end_of_bits() == len(w.to_bytes())


def test_bounded_reads() -> None:
    w = BitWriter()
    w.ue(300, 0)
    with pytest.raises(BitstreamError, match="over the limit"):
        _reader(w).ue(0, "count", 299)
    with pytest.raises(BitstreamError, match="code too long"):
        BitReader(bytes(8), what="x").ue(0, "count", 1 << 40)  # all zero bits: no end to the prefix
    with pytest.raises(BitstreamError, match="truncated"):
        BitReader(b"\x01", what="x").ue(0, "count", 1 << 20)  # 7 zeros, then the code runs past the end
    w = BitWriter()
    w.se(-9, 0)
    with pytest.raises(BitstreamError, match="over the limit"):
        _reader(w).se(0, "value", 8)
    with pytest.raises(BitstreamError, match="nonzero padding"):
        r = BitReader(b"\x81", what="x")
        r.u(1, "bit")
        r.end_of_bits()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_every_spec_round_trips_in_its_counted_bits(spec: ModelSpec) -> None:
    w = BitWriter()
    write_spec(w, spec)
    assert len(w) == spec_size_bits(spec)
    assert read_spec(_reader(w)) == spec
    assert spec_size_bits(spec) < 8 * len(spec.to_bytes(compact=True))  # never more than the byte layout


def test_a_spec_off_the_compact_grids_is_refused() -> None:
    with pytest.raises(ValueError, match="compact"):
        write_spec(BitWriter(), ModelSpec("laplace", -3, 3, (0.0999755859375, 2.0)))


def test_malformed_specs_are_refused() -> None:
    for model_id in (7,):
        w = BitWriter()
        w.u(model_id, 3)
        with pytest.raises(BitstreamError, match="unknown entropy model id"):
            read_spec(_reader(w))
    w = BitWriter()
    w.u(2, 3)  # raw, support hi = 3, lo + hi = 6: lo = 3, not below hi
    w.se(3, 2)
    w.se(6, 0)
    with pytest.raises(BitstreamError, match="support"):
        read_spec(_reader(w))
    w = BitWriter()
    w.u(3, 3)  # laplace with a loc one quarter beyond the bound
    w.se(3, 2)
    w.se(0, 0)
    w.se(int(LOC_MAX * 4) + 1, 0)
    w.u(0, 8)
    with pytest.raises(BitstreamError, match="loc"):
        read_spec(_reader(w))
    w = BitWriter()
    w.u(6, 3)  # gcd wrapping gcd
    w.ue(0, 0)
    w.u(6, 3)
    with pytest.raises(BitstreamError, match="cannot wrap"):
        read_spec(_reader(w))


def test_raw_payloads_round_trip_unpadded() -> None:
    rng = np.random.default_rng(0)
    for spec in (ModelSpec("raw", -3, 4), ModelSpec("gcd", -8, 12, (4, ModelSpec("raw", -2, 3)))):
        g = spec.params[0] if spec.model == "gcd" else 1
        inner = spec.params[1] if spec.model == "gcd" else spec
        symbols = rng.integers(inner.lo, inner.hi + 1, 37) * g
        w = BitWriter()
        write_raw(w, symbols, spec)
        assert len(w) == raw_bits(spec, 37) == 37 * 3
        assert np.array_equal(read_raw(_reader(w), spec, 37, "payload"), symbols)
    w = BitWriter()
    w.u(7, 3)  # 7 is beyond the support [-3, 2]'s 6
    with pytest.raises(BitstreamError, match="beyond the support"):
        read_raw(_reader(w), ModelSpec("raw", -3, 2), 1, "payload")


def _section() -> tuple[list[QuantizedTensor], list[tuple[int, ...]]]:
    rng = np.random.default_rng(4)
    small = np.clip(np.round(rng.laplace(0, 2, 40)), -7, 7).astype(np.int64)
    tensors = _on_grid() + _nominal([QuantizedTensor("", (40,), small, np.array([0.5]), None, 4),
                                     QuantizedTensor("", (6,), np.array([4, -8, 0, 12, 4, 4]), np.array([0.25]),
                                                     None, 5)])
    return tensors, [t.shape for t in tensors]


def test_a_compact_section_with_implicit_shapes_is_in_bits() -> None:
    tensors, shapes = _section()
    payload = encode_packed(tensors, implicit_shapes=True)
    assert payload[0] & BITS and payload[0] & COMPACT and payload[0] & IMPLICIT_SHAPES
    _same_values(tensors, decode_packed(payload, shapes))
    in_bytes = encode_packed(tensors, implicit_shapes=True, in_bits=False)
    assert not in_bytes[0] & BITS
    _same_values(tensors, decode_packed(in_bytes, shapes))
    assert len(payload) < len(in_bytes) - len(tensors)  # at least a byte a record
    assert write_container([(SectionType.PACKED_TENSORS, payload)])[4] == 5
    assert not encode_packed(tensors)[0] & BITS  # shapes stored: the byte layout
    with pytest.raises(ValueError, match="implicit shapes"):
        encode_packed(tensors, in_bits=True)


def test_the_breakdown_of_a_section_in_bits_accounts_for_every_byte() -> None:
    tensors, shapes = _section()
    payload = encode_packed(tensors, implicit_shapes=True)
    rows, unshared = packed_breakdown(payload, shapes)
    assert [r["model"] for r in rows][:4] == ["laplace", "const", "zero", "raw"]
    assert [r["bytes_scales"] for r in rows] == [1, 1, 0, 1, 1, 1]
    assert 2 + sum(r["bytes"] for r in rows) + unshared == pytest.approx(len(payload))
    assert 0 <= unshared <= 9


def test_the_stand_in_layout_in_bits_counts_every_byte_but_the_stream() -> None:
    tensors, shapes = _section()
    learned = tensors[0]
    bits = [spec_payload_bits(learned.symbols, _given_spec(learned.symbols.reshape(-1), learned.entropy))]
    stand_in = encode_packed(tensors, implicit_shapes=True, payload_bits=bits + [None] * (len(tensors) - 1))
    assert stand_in[0] & BITS
    assert abs(len(stand_in) - len(encode_packed(tensors, implicit_shapes=True))) <= 4


def test_records_in_bits_need_implicit_shapes_and_compact_specs() -> None:
    tensors, shapes = _section()
    payload = bytearray(encode_packed(tensors, implicit_shapes=True))
    for drop in (IMPLICIT_SHAPES, COMPACT):
        bad = bytes([payload[0] & ~drop]) + bytes(payload[1:])
        with pytest.raises(BitstreamError, match="records in bits need"):
            decode_packed(bad, shapes)


def test_a_count_the_bits_cannot_hold_is_refused() -> None:
    tensors, shapes = _section()
    payload = encode_packed(tensors, implicit_shapes=True)
    with pytest.raises(BitstreamError, match="cannot fit"):
        decode_packed(payload[:1] + bytes([120]) + payload[2:4], [(3,)] * 120)


def test_corrupted_records_in_bits_only_raise_bitstream_errors() -> None:
    tensors, shapes = _section()
    payload = encode_packed(tensors, implicit_shapes=True)
    rng = np.random.default_rng(5)
    refused = 0
    for _ in range(300):
        b = bytearray(payload)
        for i in rng.integers(2, len(b), size=int(rng.integers(1, 4))):
            b[i] = int(rng.integers(0, 256))
        try:
            decode_packed(bytes(b), shapes)
        except BitstreamError as e:
            refused += 1
            assert str(e) and "\n" not in str(e)
    assert refused > 100
    for cut in (1, 3, len(payload) - 3):
        with pytest.raises(BitstreamError):
            decode_packed(payload[:-cut], shapes)


def test_a_header_version_other_than_the_sections_need_is_refused() -> None:
    tensors, _ = _section()
    data = bytearray(write_container([(SectionType.PACKED_TENSORS, encode_packed(tensors, implicit_shapes=True))]))
    assert data[4] == 5
    read_container(bytes(data))
    for other in (2, 3, 4):
        data[4] = other
        with pytest.raises(BitstreamError, match="version"):
            read_container(bytes(data))
