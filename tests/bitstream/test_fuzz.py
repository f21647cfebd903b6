"""Random mutations of valid data never raise anything but BitstreamError (and never hang or blow up)."""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstream import (
    BitstreamError,
    QuantizedTensor,
    SectionType,
    TensorLimits,
    decode_tensors,
    describe,
    encode_tensors,
    pack_dataclass,
    read_container,
    require,
    unpack_dataclass,
    write_container,
)
from bitstream.container import reseal_crcs

LIMITS = TensorLimits(max_elements=1 << 20)  # keeps a mutated shape from decoding 2**28 symbols per example


@dataclasses.dataclass(frozen=True)
class Video:
    width: int
    height: int
    fps: float
    chroma: str
    tags: tuple[str, ...]
    crop: tuple[int, int] | None

    def __post_init__(self) -> None:
        if not (0 < self.width <= 16384 and 0 < self.height <= 16384):
            raise ValueError(f"bad size {self.width}x{self.height}")


def _tensors() -> list[QuantizedTensor]:
    rng = np.random.default_rng(3)
    lap = lambda shape, s: np.clip(np.round(rng.laplace(0, s, shape)), -31, 31).astype(np.int32)  # noqa: E731
    sparse = lap((40, 40), 4)
    sparse[rng.random((40, 40)) < 0.8] = 0
    return [
        QuantizedTensor("stem.weight", (8, 3, 3, 3), lap((8, 3, 3, 3), 5), rng.uniform(0.01, 0.02, 8), 0, 6),
        QuantizedTensor("stem.bias", (8,), lap((8,), 5), np.array([0.03]), None, 6),
        QuantizedTensor("blocks.0.pw.weight", (40, 40), sparse, rng.uniform(0.01, 0.02, 40), 1, 6),
        QuantizedTensor("blocks.0.pw.bias", (40,), lap((40,), 2) * 4, rng.uniform(0.01, 0.02, 40), 0, 6),
        QuantizedTensor("blocks.0.gauss", (300,), np.clip(np.round(rng.normal(0, 6, 300)), -31, 31).astype(np.int32),
                        np.array([0.5]), None, 6),
        QuantizedTensor("pruned", (4, 4), np.zeros((4, 4), np.int32), np.ones(4), 0, 0),
        QuantizedTensor("const", (5,), np.full(5, 3, np.int32), np.ones(5), 0, 4),
    ]


TENSORS = encode_tensors(_tensors())
VIDEO = pack_dataclass(Video(176, 144, 29.97, "420", ("carphone", "bt709"), (2, 2)))
FILE = write_container([(SectionType.VIDEO, VIDEO), (SectionType.TENSORS, TENSORS)])


def test_models_covered() -> None:
    models = {r["model"] for r in describe(FILE)["tensors"]} | {r["scale_model"] for r in describe(FILE)["tensors"]}
    assert {"laplace", "gaussian", "categorical", "raw", "zero", "const", "fp16"} <= models, models
    assert any(m.startswith("gcd") for m in models), models


mutation = st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]), st.integers(0, 1 << 30),
                     st.integers(0, 255))


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, pos, value in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= 1 << (value % 8)
        elif kind == "set":
            b[i] = value
        elif kind == "insert":
            b.insert(i, value)
        elif kind == "delete":
            del b[i]
        else:
            del b[i:]
    return bytes(b)


def decode_all(data: bytes) -> None:
    """The reading side of a decoder, as far as the bitstream package goes."""
    sections = read_container(data)
    video = unpack_dataclass(Video, require(sections, SectionType.VIDEO))
    assert isinstance(video, Video)
    for t in decode_tensors(require(sections, SectionType.TENSORS), LIMITS):
        t.dequantize()
    describe(data, tensor_limits=LIMITS)


reseal = reseal_crcs  # the container module owns the layout


def test_valid_file_decodes() -> None:
    decode_all(FILE)
    assert decode_tensors(TENSORS) == _tensors()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_tensors_payload(ops: list[tuple[str, int, int]]) -> None:
    data = mutate(TENSORS, ops)
    try:
        out = decode_tensors(data, LIMITS)
    except BitstreamError as e:
        assert str(e) and "\n" not in str(e)
        return
    for t in out:  # a mutation can yield another valid payload; it must still be a consistent one
        assert t.symbols.shape == t.shape and t.dequantize().shape == t.shape


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3), st.booleans())
def test_mutated_file(ops: list[tuple[str, int, int]], resealed: bool) -> None:
    data = mutate(FILE, ops)
    if resealed:
        data = reseal(data)
    try:
        decode_all(data)
    except BitstreamError as e:
        assert str(e) and "\n" not in str(e)


def test_every_single_byte_flip_of_the_file_is_detected() -> None:
    for i in range(len(FILE)):
        bad = bytearray(FILE)
        bad[i] ^= 0x04
        try:
            read_container(bytes(bad))
        except BitstreamError:
            continue
        raise AssertionError(f"flip at byte {i} went unnoticed")
