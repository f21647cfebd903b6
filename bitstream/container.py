"""The hinerv file container: a fixed header, then CRC-protected sections, then END.

Layout (all integers little-endian; see ``bitstream/FORMAT.md`` for the full description)::

    magic    4 bytes  b"HNRV"
    version  u8       the oldest that has what the file uses: 5 with a PACKED_TENSORS section whose records
                      are in bits, 4 with a compact one, 3 with one without meta bytes, 2 with another
                      PACKED_TENSORS section, else 1 (the reader reads all five)
    flags    u8       0 (no flag is defined; any set bit is refused)
    section*          type u8 | length uvarint | payload (length bytes) | crc32 u32 over type+length+payload
    END               type 0 | length 0 | crc32        -- nothing may follow

Each section type appears at most once; an unknown type is an error (PACKED_TENSORS exists from version 2).
"""
from __future__ import annotations

import dataclasses
import enum
import zlib

from bitstream.errors import BitstreamError
from bitstream.fields import Reader, write_uvarint
from bitstream.packed import BITS, COMPACT, NO_META

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "ContainerLimits",
    "Section",
    "SectionType",
    "read_container",
    "require",
    "section_name",
    "write_container",
]

MAGIC = b"HNRV"
FORMAT_VERSION = 5  # the newest version: what the writer writes when a section needs it
READ_VERSIONS = (1, 2, 3, 4, 5)  # what the reader reads
HEADER_SIZE = len(MAGIC) + 2  # magic + version + flags
KNOWN_FLAGS = 0x00  # no flag bit is defined


class SectionType(enum.IntEnum):
    """Section type ids. Frozen: written into files, never renumbered."""

    END = 0  # terminator, empty payload
    VIDEO = 1  # video parameters (geometry, fps, chroma, bit depth, colour tags)
    MODEL = 2  # model configuration
    # 3 and 5 were reserved for QUANT and TRAIN sections that no writer ever wrote: retired, never to be reused
    TENSORS = 4  # entropy-coded quantized tensors (bitstream.tensors)
    PLUGINS = 6  # the plugins that made the file: name, options, and the data a plugin's decoder needs
    PACKED_TENSORS = 7  # the tensors without per-tensor overhead (bitstream.packed); version 2 on


_KNOWN_TYPES = frozenset(int(t) for t in SectionType)
_V1_TYPES = _KNOWN_TYPES - {SectionType.PACKED_TENSORS}


def section_name(type_id: int) -> str:
    """``"TENSORS"`` for 4, ``"type 9"`` for an unknown id."""
    try:
        return SectionType(type_id).name
    except ValueError:
        return f"type {type_id}"


@dataclasses.dataclass(frozen=True)
class ContainerLimits:
    """Bounds applied while reading, before anything is allocated."""

    max_section_bytes: int = 1 << 30  # largest accepted section payload
    max_sections: int = 16  # most sections (END included)

    def __post_init__(self) -> None:
        if self.max_section_bytes < 0 or self.max_sections < 1:
            raise ValueError(f"invalid limits {self}")


@dataclasses.dataclass(frozen=True)
class Section:
    """One section as found in a file."""

    type: int  # a SectionType value
    payload: bytes
    offset: int  # file offset of the section's type byte
    size: int  # bytes taken in the file: type + length varint + payload + CRC

    @property
    def name(self) -> str:
        return section_name(self.type)


def _crc(head: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(head)) & 0xFFFFFFFF


def _frame(type_id: int, payload: bytes) -> bytes:
    head = bytes([type_id]) + write_uvarint(len(payload))
    return head + payload + _crc(head, payload).to_bytes(4, "little")


def reseal_crcs(data: bytes) -> bytes:
    """Recompute every section CRC of a (possibly damaged) file, best effort.

    For fuzzing: a mutated file whose CRCs are resealed gets past the CRC check, so the mutation reaches the
    section parsers. Stops at the first section whose length runs past the end.
    """
    b = bytearray(data)
    pos = len(MAGIC) + 2  # magic, version, flags
    while pos < len(b):
        start = pos
        pos += 1
        length, shift = 0, 0
        while pos < len(b) and shift < 70:
            byte = b[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        end = pos + length
        if end + 4 > len(b):
            break
        b[end:end + 4] = (zlib.crc32(bytes(b[start:end])) & 0xFFFFFFFF).to_bytes(4, "little")
        pos = end + 4
    return bytes(b)


def _version_needed(type_id: object, payload: object) -> int:
    """The oldest format version that has this section as it is."""
    if type_id != SectionType.PACKED_TENSORS:
        return 1
    flags = payload[0] if isinstance(payload, (bytes, bytearray, memoryview)) and len(payload) > 0 else 0
    return 5 if flags & BITS else 4 if flags & COMPACT else 3 if flags & NO_META else 2


def write_container(sections: list[tuple[int, bytes]]) -> bytes:
    """Assemble a file: header, the given sections in the given order, then END (added here).

    Raises:
        ValueError: an unknown or END type, a repeated type, or a payload that is not bytes.
    """
    # the oldest version that has everything given: files without a packed section stay readable by version-1
    # decoders, byte for byte as they were written before version 2, and packed sections with meta bytes by
    # version-2 decoders (and so on)
    version = max([1] + [_version_needed(t, p) for t, p in sections])
    out = bytearray(MAGIC + bytes([version, 0]))
    seen: set[int] = set()
    for type_id, payload in sections:
        if isinstance(type_id, bool) or not isinstance(type_id, int) or type_id not in _KNOWN_TYPES:
            raise ValueError(f"unknown section type {type_id!r}; known: {[t.name for t in SectionType]}")
        if type_id == SectionType.END:
            raise ValueError("END is appended by write_container; do not pass it")
        if type_id in seen:
            raise ValueError(f"section {section_name(type_id)} given twice")
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"section {section_name(type_id)} payload must be bytes, got {type(payload).__name__}")
        seen.add(type_id)
        out += _frame(int(type_id), bytes(payload))
    out += _frame(SectionType.END, b"")
    return bytes(out)


def read_container(data: bytes, limits: ContainerLimits = ContainerLimits()) -> list[Section]:
    """Parse and check a whole file; return its sections in file order, END last.

    Every section's CRC is verified. Raises BitstreamError for: not a hinerv file (bad magic), an unsupported
    version or one other than the sections need, unknown flags, truncation, a section over the size limit, a CRC mismatch, an unknown or repeated
    section type, too many sections, and bytes after END ("trailing garbage").
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_container needs bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            raise BitstreamError(f"truncated file: {len(data)} bytes, the header alone is {HEADER_SIZE}")
        raise BitstreamError(f"not a hinerv file: bad magic {data[:4]!r} (expected {MAGIC!r})")
    if data[:4] != MAGIC:
        raise BitstreamError(f"not a hinerv file: bad magic {data[:4]!r} (expected {MAGIC!r})")
    if len(data) < HEADER_SIZE:
        raise BitstreamError(f"truncated file: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    version, flags = data[4], data[5]
    if version not in READ_VERSIONS:
        raise BitstreamError(f"unsupported format version {version}, this decoder reads "
                             f"{', '.join(map(str, READ_VERSIONS[:-1]))} and {READ_VERSIONS[-1]}")
    if flags & ~KNOWN_FLAGS:
        raise BitstreamError(f"unknown flags 0x{flags:02x} in the header (this decoder knows 0x{KNOWN_FLAGS:02x})")

    r = Reader(data, what="file")
    r.seek(HEADER_SIZE)
    sections: list[Section] = []
    seen: set[int] = set()
    while True:
        start = r.pos
        if r.at_end():
            raise BitstreamError(f"truncated file: no END section after {len(sections)} sections ({len(data)} bytes)")
        if len(sections) >= limits.max_sections:
            raise BitstreamError(f"too many sections: more than {limits.max_sections}")
        type_id = r.u8("section type")
        length = r.uvarint("section length")
        label = section_name(type_id)
        if length > limits.max_section_bytes:
            raise BitstreamError(
                f"section {label} at offset {start} declares {length} bytes, over the limit of "
                f"{limits.max_section_bytes}"
            )
        if length + 4 > r.remaining:
            raise BitstreamError(
                f"truncated file: section {label} at offset {start} declares {length} bytes + CRC, "
                f"only {r.remaining} left"
            )
        head = data[start : r.pos]
        payload = r.read(length, "section payload")
        stored = r.u32("section CRC")
        if _crc(head, payload) != stored:
            raise BitstreamError(f"CRC mismatch in section {label} at offset {start}: the file is corrupted")
        if type_id not in (_V1_TYPES if version == 1 else _KNOWN_TYPES):
            raise BitstreamError(f"unknown section type {type_id} at offset {start} (format version {version} "
                                 f"has none)")
        if type_id in seen:
            raise BitstreamError(f"duplicate section {label} at offset {start}")
        seen.add(type_id)
        sections.append(Section(type_id, payload, start, r.pos - start))
        if type_id == SectionType.END:
            if length:
                raise BitstreamError(f"END section at offset {start} has a {length}-byte payload, expected 0")
            if r.remaining:
                raise BitstreamError(f"trailing garbage: {r.remaining} bytes after the END section at offset {r.pos}")
            # the writer writes the oldest version that has the sections: any other is a damaged header byte
            needed = max(_version_needed(s.type, s.payload) for s in sections)
            if version != needed:
                raise BitstreamError(f"format version {version} in the header, but the sections are version "
                                     f"{needed}'s: the file is corrupted")
            return sections


def require(sections: list[Section], type_id: int) -> bytes:
    """The payload of the one section of ``type_id``; BitstreamError if it is missing or repeated."""
    found = [s for s in sections if s.type == type_id]
    if not found:
        raise BitstreamError(f"missing required section {section_name(type_id)}")
    if len(found) > 1:
        raise BitstreamError(f"duplicate section {section_name(type_id)}")
    return found[0].payload
