"""bitstream.fields: varints, the bounded reader, dataclass packing round trips and corruption."""
from __future__ import annotations

import dataclasses
import enum
from typing import Literal

import pytest

from bitstream import BitstreamError, Reader, pack_dataclass, read_uvarint, read_varint, unpack_dataclass
from bitstream.fields import write_uvarint, write_varint


class Chroma(enum.IntEnum):
    C420 = 0
    C444 = 2


@dataclasses.dataclass(frozen=True)
class Inner:
    a: int
    b: float | None = None

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError(f"a must be >= 0, got {self.a}")


@dataclasses.dataclass(frozen=True)
class Config:
    version: int
    name: str
    lr: float
    flag: bool
    strides: tuple[int, ...]
    weights: tuple[float, ...]
    tags: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    inner: Inner
    maybe: Inner | None
    opt_int: int | None
    fixed: tuple[int, str]
    chroma: Chroma
    mode: Literal["patch", "frame"]
    blob: bytes
    items: list[Inner]
    derived: int = dataclasses.field(default=0, init=False)


def make() -> Config:
    return Config(
        version=1,
        name="hinerv-s ✓",
        lr=2e-3,
        flag=True,
        strides=(5, 3, 2, 2),
        weights=(0.7, -0.3, float("inf")),
        tags=("a", "", "ü"),
        pairs=((1, -2), (3, 4)),
        inner=Inner(7, 1.5),
        maybe=None,
        opt_int=-(2**40),
        fixed=(-1, "x"),
        chroma=Chroma.C444,
        mode="frame",
        blob=b"\x00\xff",
        items=[Inner(1), Inner(2, None)],
    )


@pytest.mark.parametrize("v", [0, 1, 127, 128, 300, 2**32, 2**64 - 1])
def test_uvarint_round_trip(v: int) -> None:
    b = write_uvarint(v)
    assert read_uvarint(b) == (v, len(b))


@pytest.mark.parametrize("v", [0, -1, 1, -64, 64, -(2**63), 2**63 - 1])
def test_varint_round_trip(v: int) -> None:
    b = write_varint(v)
    assert read_varint(b + b"zz") == (v, len(b))


def test_varint_errors() -> None:
    with pytest.raises(ValueError):
        write_uvarint(-1)
    with pytest.raises(ValueError):
        write_varint(2**63)
    with pytest.raises(BitstreamError, match="truncated"):
        read_uvarint(b"\x80\x80")
    with pytest.raises(BitstreamError, match="non-canonical"):
        read_uvarint(b"\x80\x00")
    with pytest.raises(BitstreamError, match="64 bits|too long"):
        read_uvarint(b"\xff" * 9 + b"\x7f")


def test_reader_bounds() -> None:
    r = Reader(b"\x01\x02\x03", base=10, what="thing")
    assert r.u8() == 1 and r.read(1) == b"\x02"
    with pytest.raises(BitstreamError, match=r"truncated thing: .* offset 12, 1 left"):
        r.read(2)
    assert r.u8() == 3 and r.at_end()
    with pytest.raises(BitstreamError, match="limit"):
        Reader(write_uvarint(1000)).uvarint(max_value=999)


def test_round_trip() -> None:
    c = make()
    data = pack_dataclass(c)
    back = unpack_dataclass(Config, data)
    assert back == c and isinstance(back.chroma, Chroma) and isinstance(back.strides, tuple)
    assert pack_dataclass(back) == data


def test_compact() -> None:
    @dataclasses.dataclass(frozen=True)
    class Small:
        a: int
        b: tuple[int, ...]
        c: bool | None

    assert pack_dataclass(Small(3, (1, 2, 3), None)) == bytes([6, 3, 2, 4, 6, 0])


def test_pack_type_errors() -> None:
    with pytest.raises(TypeError):
        pack_dataclass(Inner)  # a class, not an instance
    with pytest.raises(TypeError, match="Config.lr"):
        pack_dataclass(dataclasses.replace(make(), lr="x"))
    with pytest.raises(ValueError):
        pack_dataclass(dataclasses.replace(make(), mode="bogus"))

    @dataclasses.dataclass
    class Bad:
        x: dict[str, int]

    with pytest.raises(TypeError, match="unsupported"):
        pack_dataclass(Bad({}))


def test_post_init_failure_becomes_bitstream_error() -> None:
    data = bytearray(pack_dataclass(Inner(3)))
    data[0] = 1  # zigzag 1 = -1
    with pytest.raises(BitstreamError, match="invalid Inner.*a must be >= 0"):
        unpack_dataclass(Inner, bytes(data))


def test_leftover_and_missing_bytes() -> None:
    data = pack_dataclass(make())
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        unpack_dataclass(Config, data + b"\x00")
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack_dataclass(Config, data[:cut])


def test_bad_bytes() -> None:
    @dataclasses.dataclass(frozen=True)
    class B:
        f: bool
        s: str
        e: Chroma
        o: int | None

    with pytest.raises(BitstreamError, match="bool"):
        unpack_dataclass(B, b"\x02\x00\x00\x00")
    with pytest.raises(BitstreamError, match="UTF-8"):
        unpack_dataclass(B, b"\x01\x01\xff\x00\x00")
    with pytest.raises(BitstreamError, match="Chroma"):
        unpack_dataclass(B, b"\x01\x00\x02\x00")  # zigzag 2 = 1: not a member
    with pytest.raises(BitstreamError, match="presence"):
        unpack_dataclass(B, b"\x01\x00\x00\x07")


def test_counts_bounded_by_bytes_left() -> None:
    @dataclasses.dataclass(frozen=True)
    class T:
        xs: tuple[float, ...]

    with pytest.raises(BitstreamError, match="cannot fit"):
        unpack_dataclass(T, write_uvarint(2**40))


def test_every_byte_flip_is_clean() -> None:
    data = pack_dataclass(make())
    for i in range(len(data)):
        for x in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= x
            try:
                unpack_dataclass(Config, bytes(bad))
            except BitstreamError:
                pass
