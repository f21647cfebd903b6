"""The PACKED_TENSORS section: round trips, what it saves, the stand-in layout, and malformed input."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bitstream import BitstreamError, QuantizedTensor, SectionType, describe, encode_tensors, read_container
from bitstream.container import write_container
from bitstream.compact import LOC_MAX, SCALE_EXP_MIN, loc_code, minifloat_code
from bitstream.entropy import RANGE_CODER_OVERHEAD_BYTES, ModelSpec, spec_payload_bits
from bitstream.fields import Reader, write_uvarint, zigzag
from bitstream.packed import COMPACT, NO_META, decode_packed, encode_packed, packed_breakdown
from bitstream.tensors import TensorLimits, _given_spec, nominal_bits

from .test_golden import golden_file

# 2026-12-06: the golden tensors in the packed layout (shapes stored); a change here is a format change
PACKED_SHA256 = "5e8db2945650d60e9f210406e65e813882fb2bed7624cc202e76498581243de6"


def _tensors(seed: int = 0) -> list[QuantizedTensor]:
    rng = np.random.default_rng(seed)
    lap = np.clip(np.round(rng.laplace(0, 3, (24, 40))), -31, 31).astype(np.int64)
    return [
        QuantizedTensor("", (24, 40), lap, np.array([0.01]), None, 6, entropy=("laplace", 0.0, 3.0)),
        QuantizedTensor("", (5,), np.array([3, -1, 0, 2, -7]), np.array([0.125]), None, 6),
        QuantizedTensor("", (3, 3), np.zeros((3, 3), np.int64), np.array([0.5]), None, 4),
        QuantizedTensor("", (16, 8), np.clip(lap[:16, :8], -7, 7), np.linspace(0.01, 0.02, 16), 0, 4),
        QuantizedTensor("", (4,), np.full(4, 5), np.array([0.25]), None, 4),
        QuantizedTensor("", (300,), (lap.reshape(-1)[:300] % 5 - 2) * 4, np.array([1.5]), None, 8),
        QuantizedTensor("", (2, 3), np.zeros((2, 3), np.int64), np.ones(3), 1, 0),
    ]


def _same_values(a: list[QuantizedTensor], b: list[QuantizedTensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.shape, x.axis, x.bits) == (y.shape, y.axis, y.bits)
        assert np.array_equal(x.symbols, y.symbols)
        assert np.array_equal(x.dequantize(), y.dequantize())
        if x.symbols.any():  # an all-zero tensor stores no scales: they read back as 0
            assert np.array_equal(x.scales.view(np.uint16), y.scales.view(np.uint16))
        else:
            assert not y.scales.any()


@pytest.mark.parametrize("implicit", [False, True])
def test_round_trip(implicit: bool) -> None:
    tensors = _tensors()
    payload = encode_packed(tensors, implicit)
    shapes = [t.shape for t in tensors] if implicit else None
    _same_values(tensors, decode_packed(payload, shapes))


def test_golden_tensors_round_trip_and_pin() -> None:
    _, tensors = golden_file()
    payload = encode_packed(tensors)
    _same_values(tensors, decode_packed(payload))
    digest = hashlib.sha256(payload).hexdigest()
    assert digest == PACKED_SHA256, f"packed layout changed: {len(payload)} bytes, sha256 {digest}"


def test_golden_tensors_use_every_model() -> None:
    """The stream carries laplace, gaussian, categorical and gcd-wrapped arrays; raw ones lie inline."""
    rows, _ = packed_breakdown(encode_packed(golden_file()[1]))
    used = {r["model"] for r in rows} | {r["scale_model"] for r in rows}
    assert {"laplace", "gaussian", "categorical", "raw", "zero", "fp16"} <= used, used
    assert any(m.startswith("gcd") for m in used)


def test_smaller_than_the_tensors_layout() -> None:
    """Many small tensors: the per-tensor name, shape, lengths and flushes are what the layout saves."""
    rng = np.random.default_rng(1)
    tensors = [QuantizedTensor("", (20, 20), np.clip(np.round(rng.laplace(0, 2, (20, 20))), -15, 15).astype(int),
                               np.array([0.05]), None, 5, entropy=("laplace", 0.0, 2.0)) for _ in range(30)]
    old, new = len(encode_tensors(tensors)), len(encode_packed(tensors, implicit_shapes=True))
    assert new < old - 30 * 7, (old, new)  # >= 7 bytes a tensor: name 1, shape 3, length 1-2, flush ~2


def _nominal(tensors: list[QuantizedTensor]) -> list[QuantizedTensor]:
    """The tensors as learned-step quantization writes them: one scale each, the nominal width of the symbols."""
    return [QuantizedTensor("", t.shape, t.symbols, t.scales[:1], None, nominal_bits(int(abs(t.symbols).max())),
                            entropy=t.entropy) for t in tensors]


@pytest.mark.parametrize("implicit", [False, True])
def test_records_of_nominal_width_have_no_meta_byte(implicit: bool) -> None:
    """Every tensor one-scale and of its symbols' nominal width: the meta bytes go (flag bit 1, version 3), one
    byte a record, and the widths read back from the symbols' supports."""
    tensors = _nominal([t for t in _tensors() if t.axis is None])
    payload = encode_packed(tensors, implicit)
    shapes = [t.shape for t in tensors] if implicit else None
    _same_values(tensors, decode_packed(payload, shapes))
    assert payload[0] & NO_META
    last = tensors[-1]
    one_off = tensors[:-1] + [QuantizedTensor("", last.shape, last.symbols, last.scales, None, last.bits + 1)]
    with_meta = encode_packed(one_off, implicit)
    assert not with_meta[0] & NO_META
    assert len(with_meta) == len(payload) + len(tensors)
    assert write_container([(SectionType.PACKED_TENSORS, payload)])[4] == 3
    assert write_container([(SectionType.PACKED_TENSORS, with_meta)])[4] == 2  # version-2 decoders read it


def test_a_per_channel_tensor_keeps_the_meta_bytes() -> None:
    tensors = _tensors()
    assert tensors[3].axis == 0
    payload = encode_packed(_nominal(tensors[:3]) + [tensors[3]])
    assert not payload[0] & NO_META
    _same_values(_nominal(tensors[:3]) + [tensors[3]], decode_packed(payload))


def test_a_section_without_meta_bytes_too_short_for_its_count_is_refused() -> None:
    # three zero tensors, in bytes: 1 byte each
    payload = encode_packed(_nominal([_tensors()[2]] * 3), implicit_shapes=True, in_bits=False)
    assert len(payload) == 2 + 3
    assert len(decode_packed(payload, [(3, 3)] * 3)) == 3
    with pytest.raises(BitstreamError, match="cannot fit"):
        decode_packed(payload[:1] + bytes([9]) + payload[2:], [(3, 3)] * 9)


def test_implicit_shapes_need_the_reader() -> None:
    tensors = _tensors()
    payload = encode_packed(tensors, implicit_shapes=True)
    with pytest.raises(BitstreamError, match="implicit"):
        decode_packed(payload)
    with pytest.raises(BitstreamError, match="needs 6 tensors, the file has 7"):
        decode_packed(payload, [t.shape for t in tensors[:-1]])


def test_stand_in_counts_every_byte_but_the_stream() -> None:
    """Laid out with each learned tensor's exact bits, the section is the coded one's size within the flush."""
    rng = np.random.default_rng(2)
    tensors = []
    for k in range(6):
        sym = np.clip(np.round(rng.laplace(0, 1 + k, (50, 100))), -63, 63).astype(np.int64)
        tensors.append(QuantizedTensor("", sym.shape, sym, np.array([0.01]), None, 7,
                                       entropy=("laplace", 0.0, float(np.float16(1 + k)))))
    bits = [spec_payload_bits(t.symbols, _given_spec(t.symbols.reshape(-1), t.entropy)) for t in tensors]
    real = len(encode_packed(tensors, True))
    counted = len(encode_packed(tensors, True, payload_bits=bits))
    assert abs(counted - real) <= RANGE_CODER_OVERHEAD_BYTES + 2, (counted, real)
    # and it follows the bits it is given: 800 more bits, 100 more bytes
    assert len(encode_packed(tensors, True, payload_bits=[b + (800 if i == 0 else 0) for i, b in enumerate(bits)])) \
        == counted + 100


def test_stand_in_needs_learned_models() -> None:
    t = QuantizedTensor("", (5,), np.array([3, -1, 0, 2, -7]), np.array([0.125]), None, 6)
    with pytest.raises(ValueError, match="learned entropy model"):
        encode_packed([t], payload_bits=[10.0])
    assert encode_packed([t], payload_bits=[None]) == encode_packed([t])


def test_a_small_learned_tensor_is_stored_by_what_codes_it_smallest() -> None:
    """Five symbols under a learned laplace cost its 7-byte spec: raw bits store them in fewer."""
    t = QuantizedTensor("", (5,), np.array([3, -1, 0, 2, -7]), np.array([0.125]), None, 6,
                        entropy=("laplace", 0.0, 3.0))
    rows, _ = packed_breakdown(encode_packed([t]))
    assert rows[0]["model"] == "raw"


def test_breakdown_accounts_for_every_byte() -> None:
    tensors = _tensors()
    payload = encode_packed(tensors)
    rows, flush = packed_breakdown(payload)
    assert [r["shape"] for r in rows] == [t.shape for t in tensors]
    assert rows[2]["scale_model"] == "none" and rows[2]["model"] == "zero"
    count_bytes = 2  # flags + count varint
    assert count_bytes + sum(r["bytes"] for r in rows) + flush == len(payload)
    assert 0 <= flush <= 8


def test_describe_a_packed_file() -> None:
    tensors = _tensors()
    data = write_container([(SectionType.VIDEO, b"\x01"), (SectionType.PACKED_TENSORS, encode_packed(tensors))])
    assert data[4] == 2  # a packed section needs format version 2
    info = describe(data)
    assert len(info["tensors"]) == len(tensors)
    assert info["framing_bytes"] + sum(r["payload_bytes"] for r in info["sections"]) == len(data)
    section = next(r for r in info["sections"] if r["name"] == "PACKED_TENSORS")
    assert info["tensor_totals"]["bytes"] + 2 == section["payload_bytes"]


def test_version_1_files_have_no_packed_section() -> None:
    data = write_container([(SectionType.PACKED_TENSORS, encode_packed(_tensors()))])
    as_v1 = bytearray(data)
    as_v1[4] = 1
    from bitstream.container import reseal_crcs

    with pytest.raises(BitstreamError, match="unknown section type 7"):
        read_container(reseal_crcs(bytes(as_v1)))
    assert write_container([(SectionType.VIDEO, b"\x01")])[4] == 1  # nothing needs version 2


@pytest.mark.parametrize("cut", [1, 3, 8])
def test_truncated_stream_is_refused(cut: int) -> None:
    with pytest.raises(BitstreamError):
        decode_packed(encode_packed(_tensors())[:-cut])


def test_words_left_over_in_the_stream_are_refused() -> None:
    """(A byte or two within the coder's last word can go unnoticed, as in a TENSORS payload: the CRC is what
    guards a file against those.)"""
    with pytest.raises(BitstreamError, match="left over"):
        decode_packed(encode_packed(_tensors()) + b"\x5a" * 8)


def test_malformed_headers() -> None:
    payload = encode_packed(_tensors())
    with pytest.raises(BitstreamError, match="unknown flags"):
        decode_packed(b"\x80" + payload[1:])
    with pytest.raises(BitstreamError, match="cannot fit"):
        decode_packed(b"\x00\x80\x10\x00")
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        decode_packed(payload, limits=TensorLimits(max_elements=100))
    t = QuantizedTensor("", (4,), np.array([1, -1, 0, 1]), np.array([0.5]), None, 1)
    bad = bytearray(encode_packed([t]))
    assert bad[2] == 1  # meta: 1 bit
    bad[2] = 0  # 0 bits: no symbol may be nonzero
    with pytest.raises(BitstreamError, match="exceeds"):
        decode_packed(bytes(bad))


def test_random_corruption_never_escapes_as_another_error() -> None:
    payload = encode_packed(_tensors())
    rng = np.random.default_rng(3)
    for _ in range(300):
        b = bytearray(payload)
        for i in rng.integers(0, len(b), size=int(rng.integers(1, 4))):
            b[i] = int(rng.integers(0, 256))
        try:
            decode_packed(bytes(b))
        except BitstreamError:
            pass


def _on_grid() -> list[QuantizedTensor]:
    """Learned-step tensors as format version 4's training leaves them: steps and models on the compact grids.
    The learned one has more symbols than SEARCH_MAX_SYMBOLS, so it keeps its model whatever the layout."""
    rng = np.random.default_rng(3)
    lap = np.clip(np.round(rng.laplace(0.3, 3, (80, 60))), -31, 31).astype(np.int64)
    return _nominal([
        QuantizedTensor("", (80, 60), lap, np.array([2.0**-7 * 1.5]), None, 6, entropy=("laplace", 0.25, 3.0)),
        QuantizedTensor("", (4,), np.full(4, 5), np.array([0.25]), None, 4),
        QuantizedTensor("", (3, 3), np.zeros((3, 3), np.int64), np.array([0.01]), None, 4),  # stores no step
        QuantizedTensor("", (5,), np.array([3, -1, 0, 2, -7]), np.array([0.125]), None, 4),
    ])


@pytest.mark.parametrize("implicit", [False, True])
def test_steps_and_models_on_the_compact_grids_make_a_compact_section(implicit: bool) -> None:
    """Flag bit 2 (version 4): a step in one byte instead of two, the learned laplace's loc and scale in two
    (loc 0.25: zigzag(1) in one byte, the scale's minifloat code) instead of four; the same values come back."""
    tensors = _on_grid()
    payload = encode_packed(tensors, implicit, in_bits=False)  # bitstream.bitpacked's layout: its own tests
    shapes = [t.shape for t in tensors] if implicit else None
    _same_values(tensors, decode_packed(payload, shapes))
    assert payload[0] & COMPACT and payload[0] & NO_META
    fp16 = encode_packed(tensors, implicit, compact=False)
    assert not fp16[0] & COMPACT
    _same_values(tensors, decode_packed(fp16, shapes))
    models = [[r["model"] for r in packed_breakdown(p, shapes)[0]] for p in (payload, fp16)]
    assert models[0] == models[1] == ["laplace", "const", "zero", "raw"]
    steps = 3  # every tensor but the zero one
    assert len(fp16) - len(payload) == steps + 2
    rows = packed_breakdown(payload, shapes)[0]
    assert [r["bytes_scales"] for r in rows] == [1, 1, 0, 1] and rows[0]["scale_model"] == "minifloat"
    assert write_container([(SectionType.PACKED_TENSORS, payload)])[4] == 4
    assert write_container([(SectionType.PACKED_TENSORS, fp16)])[4] == 3


def test_one_step_off_the_grid_keeps_the_fp16_layout() -> None:
    tensors = _on_grid()
    off = tensors[:1] + [QuantizedTensor("", (4,), np.full(4, 5), np.array([0.26]), None, 4)] + tensors[2:]
    payload = encode_packed(off)
    assert not payload[0] & COMPACT
    _same_values(off, decode_packed(payload))
    with pytest.raises(ValueError, match="compact"):
        encode_packed(off, compact=True)
    learned = tensors[0]
    off_model = [QuantizedTensor("", learned.shape, learned.symbols, learned.scales, None, learned.bits,
                                 entropy=("laplace", 0.0999755859375, 3.0))] + tensors[1:]  # fp16 of 0.1
    assert not encode_packed(off_model)[0] & COMPACT


def test_a_compact_section_fits_its_small_tensors_on_the_grids() -> None:
    """Small tensors are searched for their smallest model; in a compact section a parametric fit is stored
    compactly, so its params are fitted on the compact grids."""
    rng = np.random.default_rng(5)
    small = np.clip(np.round(rng.laplace(0, 6, 400)), -40, 40).astype(np.int64)
    tensors = _on_grid() + _nominal([QuantizedTensor("", (400,), small, np.array([0.5]), None, 7)])
    payload = encode_packed(tensors)
    assert payload[0] & COMPACT
    _same_values(tensors, decode_packed(payload))
    row = packed_breakdown(payload)[0][-1]
    assert row["model"] in ("laplace", "gaussian"), row["model"]
    assert loc_code(row["model_params"]["loc"]) is not None
    assert minifloat_code(row["model_params"]["scale"], SCALE_EXP_MIN) is not None


def test_a_compact_spec_with_a_loc_beyond_the_bound_is_refused() -> None:
    spec = ModelSpec("laplace", -3, 3, (LOC_MAX, 2.0))
    raw = bytearray(spec.to_bytes(compact=True))
    assert ModelSpec.from_bytes(Reader(bytes(raw)), compact=True) == spec
    raw[3:5] = write_uvarint(zigzag(int(LOC_MAX * 4) + 1))  # one quarter beyond: 2049
    with pytest.raises(BitstreamError, match="loc"):
        ModelSpec.from_bytes(Reader(bytes(raw)), compact=True)
    with pytest.raises(ValueError, match="compact"):
        ModelSpec("laplace", -3, 3, (0.0999755859375, 2.0)).to_bytes(compact=True)
