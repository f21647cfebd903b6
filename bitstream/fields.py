"""Low-level byte helpers and compact serialisation of typed dataclasses.

* Varints: unsigned LEB128 (:func:`write_uvarint`) and signed zigzag LEB128 (:func:`write_varint`). Readers
  refuse over-long (non-canonical) encodings and values beyond 64 bits.
* :class:`Reader`: a cursor over bytes whose every read is bounded by what is left; a short read raises
  :class:`~bitstream.errors.BitstreamError` ("truncated ...").
* :func:`pack_dataclass` / :func:`unpack_dataclass`: a dataclass is written field by field in declaration
  order, by its *declared* type (annotations resolved with :func:`typing.get_type_hints`), with no field
  names or tags. Supported types::

      int                 zigzag LEB128 varint (|v| < 2**63)
      float               float64 little-endian
      bool                1 byte, 0 or 1
      str                 uvarint byte length (<= MAX_STR_BYTES) + UTF-8
      bytes               uvarint length (<= MAX_BYTES) + raw bytes
      Enum / Literal      the value, by its own type (int or str); membership checked on reading
      tuple[X, ...], list[X]   uvarint count (bounded) + items
      tuple[X, Y, ...]    the items, no count
      X | None            1 presence byte (0 absent, 1 present) + X
      a dataclass         its fields, recursively

  Unpacking builds the object with ``cls(**kwargs)`` so its ``__post_init__`` validation runs; any
  ``ValueError``/``TypeError`` it raises, a bad byte, missing bytes or leftover bytes become BitstreamError.
  Fields declared with ``init=False`` are not written.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import struct
import types
import typing
from collections.abc import Callable
from typing import Any

from bitstream.errors import BitstreamError

__all__ = [
    "MAX_BYTES",
    "MAX_ITEMS",
    "MAX_STR_BYTES",
    "Reader",
    "pack_dataclass",
    "read_uvarint",
    "read_varint",
    "unpack_dataclass",
    "uvarint_size",
    "write_uvarint",
    "write_varint",
]

MAX_STR_BYTES = 1 << 16  # longest str field, in UTF-8 bytes
MAX_BYTES = 1 << 24  # longest bytes field
MAX_ITEMS = 1 << 20  # most items in one tuple/list field
_MAX_DEPTH = 32  # nesting of dataclasses / containers (guards self-referential types)
_U64 = 1 << 64
_I63 = 1 << 63

# ----------------------------------------------------------------------------------------------- varints


def write_uvarint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low group first, high bit set on all but the last byte."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"uvarint needs an int, got {type(value).__name__}")
    if not 0 <= value < _U64:
        raise ValueError(f"uvarint out of range: expected 0 <= v < 2**64, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def uvarint_size(value: int) -> int:
    """Bytes taken by ``write_uvarint(value)``."""
    return max(1, (int(value).bit_length() + 6) // 7)


def zigzag(value: int) -> int:
    """Map signed to unsigned: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ..."""
    return 2 * value if value >= 0 else -2 * value - 1


def unzigzag(value: int) -> int:
    return value >> 1 if not value & 1 else -((value + 1) >> 1)


def write_varint(value: int) -> bytes:
    """Signed zigzag LEB128 (|value| < 2**63)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"varint needs an int, got {type(value).__name__}")
    if not -_I63 <= value < _I63:
        raise ValueError(f"varint out of range: expected -2**63 <= v < 2**63, got {value}")
    return write_uvarint(zigzag(value))


def read_uvarint(data: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """Read an unsigned varint at ``pos``; return ``(value, next_pos)``."""
    r = Reader(data)
    r.seek(pos)
    value = r.uvarint()
    return value, r.pos


def read_varint(data: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """Read a signed zigzag varint at ``pos``; return ``(value, next_pos)``."""
    r = Reader(data)
    r.seek(pos)
    value = r.varint()
    return value, r.pos


# ----------------------------------------------------------------------------------------------- reader


class Reader:
    """A cursor over bytes; every read is bounded by the bytes left and raises BitstreamError when short.

    Args:
        data: the bytes to read.
        base: offset of ``data[0]`` in the whole file, used only in messages.
        what: what these bytes are (e.g. "TENSORS section"), used only in messages.
    """

    __slots__ = ("_data", "pos", "base", "what")

    def __init__(self, data: bytes | bytearray | memoryview, base: int = 0, what: str = "data") -> None:
        self._data = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self.pos = 0
        self.base = base
        self.what = what

    def __len__(self) -> int:
        return len(self._data)

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self._data)

    def seek(self, pos: int) -> None:
        if not 0 <= pos <= len(self._data):
            raise BitstreamError(f"truncated {self.what}: offset {self.base + pos} is past the end")
        self.pos = pos

    def _short(self, n: int, field: str) -> BitstreamError:
        return BitstreamError(
            f"truncated {self.what}: {field} needs {n} bytes at offset {self.base + self.pos}, "
            f"{self.remaining} left"
        )

    def read(self, n: int, field: str = "field") -> bytes:
        """Read exactly ``n`` bytes."""
        if n < 0 or n > self.remaining:
            raise self._short(n, field)
        out = bytes(self._data[self.pos : self.pos + n])
        self.pos += n
        return out

    def u8(self, field: str = "byte") -> int:
        if self.remaining < 1:
            raise self._short(1, field)
        v = self._data[self.pos]
        self.pos += 1
        return v

    def u16(self, field: str = "u16") -> int:
        return int.from_bytes(self.read(2, field), "little")

    def u32(self, field: str = "u32") -> int:
        return int.from_bytes(self.read(4, field), "little")

    def f16(self, field: str = "float16") -> float:
        return struct.unpack("<e", self.read(2, field))[0]

    def f64(self, field: str = "float64") -> float:
        return struct.unpack("<d", self.read(8, field))[0]

    def uvarint(self, field: str = "varint", max_value: int | None = None) -> int:
        """Read an unsigned LEB128 varint; refuse over-long encodings and (optionally) values > max_value."""
        start = self.pos
        value = 0
        shift = 0
        while True:
            if self.remaining < 1:
                self.pos = start
                raise BitstreamError(
                    f"truncated {self.what}: {field} (varint) at offset {self.base + start} runs past the end"
                )
            byte = self._data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift >= 70:
                raise BitstreamError(f"bad {field} in {self.what} at offset {self.base + start}: varint too long")
        if self.pos - start > 1 and byte == 0:
            raise BitstreamError(f"bad {field} in {self.what} at offset {self.base + start}: non-canonical varint")
        if value >= _U64:
            raise BitstreamError(f"bad {field} in {self.what} at offset {self.base + start}: varint exceeds 64 bits")
        if max_value is not None and value > max_value:
            raise BitstreamError(
                f"bad {field} in {self.what} at offset {self.base + start}: {value} exceeds the limit {max_value}"
            )
        return value

    def varint(self, field: str = "varint") -> int:
        return unzigzag(self.uvarint(field))

    def expect_end(self, field: str | None = None) -> None:
        if self.remaining:
            raise BitstreamError(
                f"bad {self.what}: {self.remaining} unexpected bytes after {field or 'the data'} "
                f"at offset {self.base + self.pos}"
            )


# ----------------------------------------------------------------------------------------------- dataclasses

# A compiled "plan" per declared type: (pack, unpack, min_size). ``pack(value, out)`` appends to a bytearray,
# ``unpack(reader, depth)`` returns the value. Plans are cached per type.
_Pack = Callable[[Any, bytearray], None]
_Unpack = Callable[[Reader, int], Any]


@dataclasses.dataclass(frozen=True)
class _Plan:
    pack: _Pack
    unpack: _Unpack
    min_size: int  # fewest bytes any value of this type takes (bounds counts against bytes left)
    name: str


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _int_plan() -> _Plan:
    def pack(v: Any, out: bytearray) -> None:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"expected int, got {type(v).__name__}")
        out += write_varint(int(v))

    def unpack(r: Reader, depth: int) -> int:
        return r.varint("int field")

    return _Plan(pack, unpack, 1, "int")


def _float_plan() -> _Plan:
    def pack(v: Any, out: bytearray) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"expected float, got {type(v).__name__}")
        out += struct.pack("<d", float(v))

    def unpack(r: Reader, depth: int) -> float:
        return r.f64("float field")

    return _Plan(pack, unpack, 8, "float")


def _bool_plan() -> _Plan:
    def pack(v: Any, out: bytearray) -> None:
        if not isinstance(v, bool):
            raise TypeError(f"expected bool, got {type(v).__name__}")
        out.append(1 if v else 0)

    def unpack(r: Reader, depth: int) -> bool:
        b = r.u8("bool field")
        if b > 1:
            raise BitstreamError(f"bad bool field in {r.what} at offset {r.base + r.pos - 1}: byte {b}")
        return bool(b)

    return _Plan(pack, unpack, 1, "bool")


def _str_plan() -> _Plan:
    def pack(v: Any, out: bytearray) -> None:
        if not isinstance(v, str):
            raise TypeError(f"expected str, got {type(v).__name__}")
        raw = v.encode("utf-8")
        if len(raw) > MAX_STR_BYTES:
            raise ValueError(f"str field too long: {len(raw)} bytes > {MAX_STR_BYTES}")
        out += write_uvarint(len(raw)) + raw

    def unpack(r: Reader, depth: int) -> str:
        n = r.uvarint("str length", max_value=MAX_STR_BYTES)
        raw = r.read(n, "str field")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError(f"bad str field in {r.what}: invalid UTF-8") from None

    return _Plan(pack, unpack, 1, "str")


def _bytes_plan() -> _Plan:
    def pack(v: Any, out: bytearray) -> None:
        if not isinstance(v, (bytes, bytearray)):
            raise TypeError(f"expected bytes, got {type(v).__name__}")
        if len(v) > MAX_BYTES:
            raise ValueError(f"bytes field too long: {len(v)} > {MAX_BYTES}")
        out += write_uvarint(len(v)) + bytes(v)

    def unpack(r: Reader, depth: int) -> bytes:
        n = r.uvarint("bytes length", max_value=MAX_BYTES)
        return r.read(n, "bytes field")

    return _Plan(pack, unpack, 1, "bytes")


def _value_plan(values: tuple[Any, ...], label: str, convert: Callable[[Any], Any]) -> _Plan:
    """Enum members / Literal choices: written as their int or str value; membership checked on reading."""
    kinds = {type(v) for v in values}
    if kinds <= {int}:
        inner = _int_plan()
    elif kinds <= {str}:
        inner = _str_plan()
    elif kinds <= {bool}:
        inner = _bool_plan()
    else:
        raise TypeError(f"{label}: values must all be int or all str, got {sorted(k.__name__ for k in kinds)}")
    allowed = set(values)

    def pack(v: Any, out: bytearray) -> None:
        raw = v.value if isinstance(v, enum.Enum) else v
        if raw not in allowed or type(raw) not in kinds:
            raise ValueError(f"{label}: {v!r} is not one of {sorted(map(repr, values))}")
        inner.pack(raw, out)

    def unpack(r: Reader, depth: int) -> Any:
        raw = inner.unpack(r, depth)
        if raw not in allowed:
            raise BitstreamError(f"bad {label} field in {r.what}: {raw!r} is not an allowed value")
        return convert(raw)

    return _Plan(pack, unpack, inner.min_size, label)


def _seq_plan(item: _Plan, make: Callable[[list[Any]], Any], label: str) -> _Plan:
    def pack(v: Any, out: bytearray) -> None:
        if not isinstance(v, (tuple, list)):
            raise TypeError(f"expected {label}, got {type(v).__name__}")
        if len(v) > MAX_ITEMS:
            raise ValueError(f"{label} too long: {len(v)} items > {MAX_ITEMS}")
        out += write_uvarint(len(v))
        for x in v:
            item.pack(x, out)

    def unpack(r: Reader, depth: int) -> Any:
        bound = MAX_ITEMS if item.min_size == 0 else min(MAX_ITEMS, r.remaining // item.min_size)
        n = r.uvarint(f"{label} count")
        if n > bound:
            raise BitstreamError(
                f"bad {label} count in {r.what}: {n} items cannot fit in the {r.remaining} bytes left"
            )
        return make([item.unpack(r, depth + 1) for _ in range(n)])

    return _Plan(pack, unpack, 1, label)


def _fixed_tuple_plan(items: tuple[_Plan, ...], label: str) -> _Plan:
    def pack(v: Any, out: bytearray) -> None:
        if not isinstance(v, (tuple, list)) or len(v) != len(items):
            raise TypeError(f"expected {label} of {len(items)} items, got {v!r}")
        for p, x in zip(items, v):
            p.pack(x, out)

    def unpack(r: Reader, depth: int) -> tuple[Any, ...]:
        return tuple(p.unpack(r, depth + 1) for p in items)

    return _Plan(pack, unpack, sum(p.min_size for p in items), label)


def _optional_plan(inner: _Plan) -> _Plan:
    def pack(v: Any, out: bytearray) -> None:
        if v is None:
            out.append(0)
        else:
            out.append(1)
            inner.pack(v, out)

    def unpack(r: Reader, depth: int) -> Any:
        flag = r.u8("presence byte")
        if flag == 0:
            return None
        if flag != 1:
            raise BitstreamError(f"bad presence byte in {r.what} at offset {r.base + r.pos - 1}: {flag}")
        return inner.unpack(r, depth + 1)

    return _Plan(pack, unpack, 1, f"{inner.name} | None")


def _dataclass_plan(cls: type) -> _Plan:
    try:
        hints = typing.get_type_hints(cls)
    except Exception as e:  # NameError for an unresolvable forward reference, etc.
        raise TypeError(f"cannot resolve the field types of {cls.__name__}: {e}") from e
    fields = [f for f in dataclasses.fields(cls) if f.init]
    # Plans of fields are built lazily so a self-referential dataclass (through Optional) compiles.
    plans: list[_Plan] = []
    names = [f.name for f in fields]

    def field_plans() -> list[_Plan]:
        if not plans:
            plans.extend(_plan(hints[f.name]) for f in fields)
        return plans

    def pack(v: Any, out: bytearray) -> None:
        if type(v) is not cls:
            raise TypeError(f"expected {cls.__name__}, got {type(v).__name__}")
        for name, p in zip(names, field_plans()):
            try:
                p.pack(getattr(v, name), out)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{cls.__name__}.{name}: {e}") from None

    def unpack(r: Reader, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise BitstreamError(f"bad {r.what}: {cls.__name__} nested more than {_MAX_DEPTH} deep")
        kwargs = {name: p.unpack(r, depth + 1) for name, p in zip(names, field_plans())}
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as e:  # __post_init__ validation (BitstreamError is a ValueError too)
            if isinstance(e, BitstreamError):
                raise
            raise BitstreamError(f"invalid {cls.__name__} in {r.what}: {e}") from None

    # min_size of a dataclass: computed on demand would recurse forever on self-references; the number of
    # fields is a safe lower bound only if each takes >= 1 byte, so use 0 when it has no fields.
    return _Plan(pack, unpack, min(1, len(fields)), cls.__name__)


@functools.cache
def _plan(tp: Any) -> _Plan:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is int:
        return _int_plan()
    if tp is float:
        return _float_plan()
    if tp is bool:
        return _bool_plan()
    if tp is str:
        return _str_plan()
    if tp is bytes:
        return _bytes_plan()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _value_plan(tuple(m.value for m in tp), tp.__name__, tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_plan(tp)
    if origin is typing.Literal:
        return _value_plan(tuple(args), f"Literal{list(args)}", lambda v: v)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return _optional_plan(_plan(rest[0]))
        raise TypeError(f"unsupported union {tp}: only `X | None` is serialisable")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _plan(args[0])
            return _seq_plan(item, tuple, f"tuple[{item.name}, ...]")
        if args == ((),) or not args:
            return _fixed_tuple_plan((), "tuple[()]")
        return _fixed_tuple_plan(tuple(_plan(a) for a in args), f"tuple[{', '.join(map(_type_name, args))}]")
    if origin is list and len(args) == 1:
        item = _plan(args[0])
        return _seq_plan(item, list, f"list[{item.name}]")
    raise TypeError(f"unsupported field type {tp!r} (see bitstream.fields for the supported types)")


def pack_dataclass(obj: Any) -> bytes:
    """Serialise a dataclass instance by its declared field types, in field order (no names, no tags).

    Raises:
        TypeError: ``obj`` is not a dataclass instance, or a field's type is unsupported or its value has the
            wrong type.
        ValueError: a value is out of range (int beyond 64 bits, over-long str/tuple...).
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"pack_dataclass needs a dataclass instance, got {type(obj).__name__}")
    out = bytearray()
    _plan(type(obj)).pack(obj, out)
    return bytes(out)


def unpack_dataclass(cls: type, data: bytes | memoryview, what: str | None = None) -> Any:
    """Inverse of :func:`pack_dataclass`: build ``cls(**fields)`` from ``data``, which must be consumed exactly.

    Raises:
        BitstreamError: truncated or leftover bytes, a bad byte, or ``cls.__post_init__`` refusing the values.
        TypeError: ``cls`` is not a dataclass or has an unsupported field type (a programming error).
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"unpack_dataclass needs a dataclass type, got {cls!r}")
    r = Reader(data, what=what or f"{cls.__name__} record")
    obj = _plan(cls).unpack(r, 0)
    r.expect_end(cls.__name__)
    return obj

