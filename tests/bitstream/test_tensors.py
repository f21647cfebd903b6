"""bitstream.tensors and bitstream.info: round trips, exact dequantization, limits, byte accounting."""
from __future__ import annotations

import numpy as np
import pytest

from bitstream import (
    BitstreamError,
    QuantizedTensor,
    SectionType,
    TensorLimits,
    decode_tensors,
    describe,
    encode_tensors,
    tensor_breakdown,
    write_container,
)
from bitstream.fields import write_uvarint

RNG = np.random.default_rng(7)


def qt(name: str, shape: tuple[int, ...], bits: int = 6, axis: int | None = 0, zero: bool = False) -> QuantizedTensor:
    lim = (1 << (bits - 1)) - 1 if bits else 0
    sym = np.clip(np.round(RNG.laplace(0, lim / 6 + 0.1, shape)), -lim, lim).astype(np.int32)
    if zero:
        sym[:] = 0
    n_scales = 1 if axis is None else shape[axis]
    scales = (RNG.uniform(0.5, 2.0, n_scales) * 2.0**-6).astype(np.float16)
    return QuantizedTensor(name, shape, sym, scales, axis, bits)


def model_tensors() -> list[QuantizedTensor]:
    return [
        qt("grid.levels.0", (12, 5, 6, 2), axis=3),
        qt("stem.weight", (16, 6, 3, 3)),
        qt("stem.bias", (16,), axis=None),
        qt("stages.0.blocks.0.dw.weight", (16, 1, 3, 3), bits=8),
        qt("stages.0.blocks.0.dw.bias", (16,), axis=None, bits=8),
        qt("stages.0.blocks.0.pw1.weight", (64, 16), bits=4, axis=1),
        qt("stages.0.blocks.0.pw1.bias", (64,), axis=0),
        qt("stages.0.pruned.weight", (8, 8), bits=0, zero=True),
        qt("head.weight", (6, 8), bits=16),
        qt("scalar", (), axis=None),
        qt("empty", (0, 4), axis=1),
        qt("unicodé", (3,), axis=None, bits=2),
    ]


def test_round_trip() -> None:
    ts = model_tensors()
    payload = encode_tensors(ts)
    back = decode_tensors(payload)
    assert back == ts
    for a, b in zip(ts, back):
        assert b.symbols.dtype == np.int32 and b.scales.dtype == np.float16 and b.shape == a.shape


def test_dequantize_is_exact() -> None:
    for t in decode_tensors(encode_tensors(model_tensors())):
        sc = t.scales.astype(np.float32)
        if t.axis is None:
            expected = t.symbols.astype(np.float32) * sc[0]
        else:
            others = [i for i in range(t.symbols.ndim) if i != t.axis]
            expected = t.symbols.astype(np.float32) * np.expand_dims(sc, others)
        got = t.dequantize()
        assert got.dtype == np.float32 and got.shape == t.shape
        assert np.array_equal(got, expected)


def test_scales_are_fp16_rounded_and_signed_zero_normalised() -> None:
    t = QuantizedTensor("w", (2, 2), np.ones((2, 2), np.int32), np.array([0.1, -0.0]), 0, 4)
    assert t.scales.dtype == np.float16 and t.scales[0] == np.float16(0.1)
    assert not np.signbit(t.scales[1])
    assert decode_tensors(encode_tensors([t]))[0] == t
    neg = QuantizedTensor("n", (3,), np.ones(3, np.int32), np.array([-0.5, 0.25, 1.0], np.float16), 0, 4)
    assert decode_tensors(encode_tensors([neg]))[0] == neg


def test_validation() -> None:
    s = np.zeros((2, 3), np.int32)
    sc = np.ones(2, np.float16)
    with pytest.raises(ValueError, match="shape"):
        QuantizedTensor("a", (3, 2), s, sc, 0, 6)
    with pytest.raises(ValueError, match="scales"):
        QuantizedTensor("a", (2, 3), s, sc, 1, 6)
    with pytest.raises(ValueError, match="exceed"):
        QuantizedTensor("a", (2, 3), s + 4, sc, 0, 2)
    with pytest.raises(ValueError, match="finite"):
        QuantizedTensor("a", (2, 3), s, np.array([1.0, 1e6]), 0, 6)
    with pytest.raises(ValueError, match="axis"):
        QuantizedTensor("a", (2, 3), s, sc, 2, 6)
    with pytest.raises(ValueError, match="bits"):
        QuantizedTensor("a", (2, 3), s, sc, 0, 17)
    with pytest.raises(TypeError):
        QuantizedTensor("a", (2, 3), s.astype(float), sc, 0, 6)
    with pytest.raises(ValueError, match="twice"):
        t = QuantizedTensor("a", (2, 3), s, sc, 0, 6)
        encode_tensors([t, t])


def test_limits_checked_before_allocation() -> None:
    payload = encode_tensors([qt("big", (64, 64))])
    with pytest.raises(BitstreamError, match="limit"):
        decode_tensors(payload, TensorLimits(max_elements=1000))
    with pytest.raises(BitstreamError, match="limit"):
        decode_tensors(payload, TensorLimits(max_tensors=0))
    # a zero-model tensor claiming 2**40 elements: refused from the shape alone
    huge = write_uvarint(1) + b"\x02x" + bytes([6]) + b"\x02" + write_uvarint(2**20) * 2 + b"\x00\x3c" + b"\x00"
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        decode_tensors(huge)
    with pytest.raises(BitstreamError, match="cannot fit"):
        decode_tensors(write_uvarint(4000) + b"\x00" * 10)


def test_corrupt_records() -> None:
    good = encode_tensors([qt("a", (4,), axis=None)])
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        decode_tensors(good + b"\x00")
    for cut in range(len(good)):
        with pytest.raises(BitstreamError):
            decode_tensors(good[:cut])
    dup = write_uvarint(2) + good[1:] + good[1:]  # the same name twice
    with pytest.raises(BitstreamError, match="duplicate tensor name"):
        decode_tensors(dup)
    reference = write_uvarint(2) + good[1:] + b"\x01\x00\x00\x00" + good[3:]  # a retired name reference
    with pytest.raises(BitstreamError, match="references are retired"):
        decode_tensors(reference)


def test_unnamed_tensors() -> None:
    """The codec may leave names out (the model config gives them): each costs 1 byte, duplicates allowed."""
    ts = [QuantizedTensor("", t.shape, t.symbols, t.scales, t.axis, t.bits) for t in model_tensors()]
    payload = encode_tensors(ts)
    assert decode_tensors(payload) == ts
    assert all(r["bytes_name"] == 1 and r["name"] == "" for r in tensor_breakdown(payload))


def test_breakdown_and_describe() -> None:
    ts = model_tensors()
    payload = encode_tensors(ts)
    rows = tensor_breakdown(payload)
    assert [r["name"] for r in rows] == [t.name for t in ts]
    assert sum(r["bytes"] for r in rows) + 1 == len(payload)
    for r in rows:
        assert r["bytes"] == r["bytes_payload"] + r["bytes_scales"] + r["bytes_side"]
        assert 0 < r["bytes_name"] <= r["bytes_side"]
    assert rows[7]["model"] == "zero" and rows[7]["bytes_payload"] == 0
    data = write_container([(SectionType.VIDEO, b"v" * 10), (SectionType.TENSORS, payload)])
    info = describe(data)
    assert info["total_bytes"] == len(data)
    assert info["header_bytes"] + sum(s["bytes"] for s in info["sections"]) == len(data)
    assert [s["name"] for s in info["sections"]] == ["VIDEO", "TENSORS", "END"]
    assert info["tensor_totals"]["count"] == len(ts)
    assert info["tensors"] == rows


def test_per_tensor_overhead_is_small() -> None:
    """Side information of a typical weight as the codec writes it (unnamed): name code + meta + shape + model
    spec + length."""
    ts = [qt("", (64, 16)) for _ in range(8)]
    rows = tensor_breakdown(encode_tensors(ts))
    # name 1 + meta 1 + shape 3 + laplace spec 7 + payload length 2 = 14
    assert max(r["bytes_side"] for r in rows) <= 14, [r["bytes_side"] for r in rows]
    assert all(r["bytes_name"] == 1 for r in rows)


def learned(shape: tuple[int, ...], scale: float = 1.5, seed: int = 3) -> QuantizedTensor:
    """A tensor as entropy-aware training exports it: symbols plus the learned laplace model they are coded with."""
    rng = np.random.default_rng(seed)
    sym = np.clip(np.round(rng.laplace(0, scale, shape)), -30, 30).astype(np.int32)
    return QuantizedTensor("", shape, sym, np.array([0.01], np.float16), None, 6, entropy=("laplace", 0.0, scale))


def test_a_small_learned_tensor_is_stored_by_whatever_codes_it_smallest() -> None:
    """A bias of 8 symbols: the learned laplace (7-byte spec, a range coder's flushed word) loses to raw bits;
    the tensor still decodes exactly, and a stand-in layout of the file counts the smaller record."""
    from bitstream.entropy import ModelSpec, encode

    bias = learned((8,))
    lo, hi = int(bias.symbols.min()), int(bias.symbols.max())
    spec = ModelSpec("laplace", lo, hi, bias.entropy[1:])
    as_learned = len(spec.to_bytes()) + 1 + len(encode(bias.symbols, spec))  # spec, length, payload
    payload = encode_tensors([bias])
    row = tensor_breakdown(payload)[0]
    assert row["model"] != "laplace"
    assert row["bytes_payload"] + row["bytes_side"] - row["bytes_name"] - 1 - 2 < as_learned  # less meta, shape
    assert decode_tensors(payload)[0].symbols.tolist() == bias.symbols.tolist()


def test_a_large_learned_tensor_keeps_its_learned_model() -> None:
    """Above SEARCH_MAX_SYMBOLS the learned model is used as it is: what training estimated is what is written."""
    from bitstream.tensors import SEARCH_MAX_SYMBOLS

    big = learned((SEARCH_MAX_SYMBOLS + 1,))
    row = tensor_breakdown(encode_tensors([big]))[0]
    assert row["model"] == "laplace"
    small = learned((SEARCH_MAX_SYMBOLS,), scale=1.5)
    assert tensor_breakdown(encode_tensors([small]))[0]["bytes"] <= row["bytes"]  # searched, never larger
