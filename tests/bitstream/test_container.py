"""bitstream.container: layout, round trip, and one distinct error per corruption class."""
from __future__ import annotations

import zlib

import pytest

from bitstream import BitstreamError, ContainerLimits, SectionType, read_container, require, write_container
from bitstream.container import HEADER_SIZE

SECTIONS = [(SectionType.VIDEO, b"video params"), (SectionType.MODEL, b"m" * 200), (SectionType.TENSORS, b"")]


def small_file() -> bytes:
    return write_container(SECTIONS)


def test_section_ids_are_frozen() -> None:
    assert {t.name: int(t) for t in SectionType} == {
        "END": 0, "VIDEO": 1, "MODEL": 2, "TENSORS": 4, "PLUGINS": 6, "PACKED_TENSORS": 7
    }  # 3 and 5 (QUANT, TRAIN: never written) are retired, never to be reused


def test_layout() -> None:
    data = write_container([(SectionType.VIDEO, b"abc")])
    head = bytes([1, 3])
    crc = zlib.crc32(head + b"abc").to_bytes(4, "little")
    end = bytes([0, 0]) + zlib.crc32(bytes([0, 0])).to_bytes(4, "little")
    assert data == b"HNRV\x01\x00" + head + b"abc" + crc + end


def test_round_trip() -> None:
    data = small_file()
    secs = read_container(data)
    assert [(s.type, s.payload) for s in secs] == [(int(t), p) for t, p in SECTIONS] + [(0, b"")]
    assert secs[-1].name == "END" and secs[0].name == "VIDEO"
    assert HEADER_SIZE + sum(s.size for s in secs) == len(data)
    assert all(data[s.offset] == s.type for s in secs)
    assert require(secs, SectionType.MODEL) == b"m" * 200
    with pytest.raises(BitstreamError, match="missing required section PLUGINS"):
        require(secs, SectionType.PLUGINS)


def test_write_refuses_bad_sections() -> None:
    with pytest.raises(ValueError, match="unknown section type"):
        write_container([(9, b"")])
    with pytest.raises(ValueError, match="END"):
        write_container([(SectionType.END, b"")])
    with pytest.raises(ValueError, match="twice"):
        write_container([(1, b""), (1, b"")])


def test_bad_magic() -> None:
    data = small_file()
    with pytest.raises(BitstreamError, match="not a hinerv file"):
        read_container(b"RIFF" + data[4:])
    with pytest.raises(BitstreamError, match="not a hinerv file"):
        read_container(b"\x89P")


def test_version() -> None:
    data = bytearray(small_file())
    data[4] = 7
    with pytest.raises(BitstreamError, match="version 7, this decoder reads 1"):
        read_container(bytes(data))


def test_flags() -> None:
    data = bytearray(small_file())
    data[5] = 0x80
    with pytest.raises(BitstreamError, match="unknown flags 0x80"):
        read_container(bytes(data))


@pytest.mark.parametrize("index", range(4))
def test_crc_flip_in_each_section(index: int) -> None:
    data = small_file()
    sec = read_container(data)[index]
    # flip the last byte of the section's payload, or of its CRC when the payload is empty
    pos = sec.offset + sec.size - 5 if sec.payload else sec.offset + sec.size - 1
    bad = bytearray(data)
    bad[pos] ^= 0x10
    with pytest.raises(BitstreamError, match=f"CRC mismatch in section {sec.name}"):
        read_container(bytes(bad))


def test_truncation_at_every_position() -> None:
    data = small_file()
    for cut in range(len(data)):
        with pytest.raises(BitstreamError, match="truncated"):
            read_container(data[:cut])


def test_trailing_garbage() -> None:
    with pytest.raises(BitstreamError, match="trailing garbage: 3 bytes"):
        read_container(small_file() + b"abc")


def _frame(t: int, payload: bytes) -> bytes:
    head = bytes([t, len(payload)])
    return head + payload + zlib.crc32(head + payload).to_bytes(4, "little")


def test_unknown_and_duplicate_types() -> None:
    hdr, end = b"HNRV\x01\x00", _frame(0, b"")
    with pytest.raises(BitstreamError, match="unknown section type 9"):
        read_container(hdr + _frame(9, b"x") + end)
    with pytest.raises(BitstreamError, match="duplicate section VIDEO"):
        read_container(hdr + _frame(1, b"x") + _frame(1, b"y") + end)
    with pytest.raises(BitstreamError, match="END section .* payload"):
        read_container(hdr + _frame(0, b"x"))


def test_limits() -> None:
    data = small_file()
    with pytest.raises(BitstreamError, match="over the limit"):
        read_container(data, ContainerLimits(max_section_bytes=100))
    with pytest.raises(BitstreamError, match="too many sections"):
        read_container(data, ContainerLimits(max_sections=2))
    # a length varint claiming far more than the file holds is refused before any allocation
    huge = b"HNRV\x01\x00" + bytes([1]) + b"\xff" * 8 + b"\x7f"
    with pytest.raises(BitstreamError):
        read_container(huge)


def test_distinct_messages() -> None:
    data = small_file()
    bad_crc = bytearray(data)
    bad_crc[8] ^= 1
    cases = {
        "magic": b"XXXX" + data[4:],
        "version": data[:4] + b"\x09" + data[5:],
        "flags": data[:5] + b"\x01" + data[6:],
        "crc": bytes(bad_crc),
        "truncated": data[:-1],
        "trailing": data + b"\x00",
    }
    messages = {}
    for key, blob in cases.items():
        with pytest.raises(BitstreamError) as e:
            read_container(blob)
        messages[key] = str(e.value).split(":")[0]
        assert "\n" not in str(e.value)
    assert len(set(messages.values())) == len(cases), messages
