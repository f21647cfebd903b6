"""Strict YUV4MPEG2 (Y4M) reader and writer.

A Y4M file is one header line ``YUV4MPEG2 W.. H.. F.. I.. A.. C.. X..`` and then, per frame, a line
``FRAME[ params]`` followed by the raw planes (Y, then Cb and Cr unless mono), 8-bit samples as bytes and
10/12-bit samples as 16-bit little-endian words.

The reader trusts nothing: every line is bounded, every size is checked against :class:`Y4MLimits`
(and against the file's real size when it has one) before any frame memory is allocated, and every
problem is one :class:`~codec.video.VideoFormatError` line that says what and where.

Round trip: ``write_y4m(read_y4m(f))`` is byte-identical to ``f`` when f's header has all of W H F I A C
in that order (then any X tags), uses single spaces and canonical numbers (no leading zeros), and its
FRAME lines carry no parameters. Otherwise the rewrite differs only in form, never in samples: it
writes the tags in the order W H F I A C X, adds ``Ip`` (for a missing or ``I?`` interlace tag),
``A0:0`` (missing A), ``F25:1`` (missing or zero F) and ``C420jpeg`` (missing C), and drops FRAME
parameters.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, fields
from typing import BinaryIO

import numpy as np

from codec.fileio import atomic_open
from codec.video import Y4M_MAGIC, FrameStack, Video, VideoFormat, VideoFormatError

GIB = 1 << 30
DEFAULT_FPS = (25, 1)
_FRAME = b"FRAME"
_CHROMAS_8BIT = ("420jpeg", "420mpeg2", "420paldv", "420", "422", "444", "mono")
_HIGH_DEPTH_C = {f"{base}p{d}": (base, d) for base in ("420", "422", "444") for d in (10, 12)}
_HIGH_DEPTH_C.update({f"mono{d}": ("mono", d) for d in (10, 12)})
_NUMBER = r"\d{1,10}"  # bounded so a hostile header cannot ask int() for a giant number
_PLANE_NAMES = ("Y", "Cb", "Cr")
_FIRST_READ = 1 << 16  # a stream's frame is read in pieces that at most double what has arrived


@dataclass(frozen=True)
class Y4MLimits:
    """Bounds that keep a hostile or corrupt file from exhausting memory; all checked before allocating."""

    max_header_bytes: int = 4096  # longest stream or FRAME header line, newline included
    max_width: int = 16384  # largest W accepted
    max_height: int = 16384  # largest H accepted
    max_frames: int = 1_000_000  # most frames read from one file
    max_total_bytes: int = 8 * GIB  # most sample bytes (all frames, all planes) held in memory

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Y4MLimits.{f.name}: expected a positive int, got {value!r}")


# ----------------------------------------------------------------------------------------------- header


def parse_y4m_header(line: bytes, limits: Y4MLimits = Y4MLimits()) -> tuple[VideoFormat, str]:
    """Parse a stream header line (trailing newline optional) into a VideoFormat and its I value.

    The I value is ``'p'`` or ``'?'`` (``'?'`` also when absent): interlaced video is refused.
    """
    if len(line) > limits.max_header_bytes:
        raise VideoFormatError(f"header: longer than max_header_bytes={limits.max_header_bytes}")
    text = _printable_ascii(line[:-1] if line.endswith(b"\n") else line, "header")
    tokens = text.split(" ")
    if tokens[0] != Y4M_MAGIC.decode():
        raise VideoFormatError(f"header: not a Y4M file: expected 'YUV4MPEG2 ', got {tokens[0][:20]!r}")
    tags, x_tags = _split_tags(tokens[1:])
    width = _dimension(tags, "W", limits.max_width)
    height = _dimension(tags, "H", limits.max_height)
    fps = _ratio(tags, "F") or DEFAULT_FPS
    if fps[0] == 0:
        fps = DEFAULT_FPS
    elif fps[1] == 0:
        raise VideoFormatError(f"header: malformed F tag 'F{tags['F']}' (zero denominator)")
    interlace = _interlace(tags.get("I", "?"))
    aspect = _ratio(tags, "A") or (0, 0)
    chroma, bit_depth = _chroma(tags.get("C", "420jpeg"))
    fmt = VideoFormat(width, height, fps[0], fps[1], chroma, bit_depth, aspect, tuple(x_tags))
    return fmt, interlace


def _printable_ascii(data: bytes, where: str) -> str:
    for column, byte in enumerate(data):
        if not 0x20 <= byte < 0x7F:
            raise VideoFormatError(f"{where}: byte 0x{byte:02x} at column {column} is not printable ASCII")
    return data.decode("ascii")


def _split_tags(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    """Tag letter -> value for W H F I A C (each at most once), and the X tags in order."""
    tags: dict[str, str] = {}
    x_tags: list[str] = []
    for token in filter(None, tokens):  # tolerate repeated spaces
        key, value = token[0], token[1:]
        if key == "X":
            x_tags.append(value)
        elif key not in "WHFIAC":
            raise VideoFormatError(f"header: unknown tag {token[:20]!r} (expected W H F I A C X)")
        elif key in tags:
            raise VideoFormatError(f"header: duplicate {key} tag")
        else:
            tags[key] = value
    return tags, x_tags


def _dimension(tags: dict[str, str], key: str, limit: int) -> int:
    if key not in tags:
        raise VideoFormatError(f"header: missing {key} tag")
    value = tags[key]
    if not re.fullmatch(_NUMBER, value) or not 1 <= int(value) <= limit:
        raise VideoFormatError(f"header: {key} must be an integer in 1..{limit}, got {key}{value[:20]}")
    return int(value)


def _ratio(tags: dict[str, str], key: str) -> tuple[int, int] | None:
    if key not in tags:
        return None
    match = re.fullmatch(f"({_NUMBER}):({_NUMBER})", tags[key])
    if not match:
        raise VideoFormatError(f"header: malformed {key} tag {key + tags[key][:20]!r} (expected {key}num:den)")
    return int(match[1]), int(match[2])


def _interlace(value: str) -> str:
    if value in ("t", "b", "m"):
        raise VideoFormatError(f"header: interlaced video (I{value}) is not supported; deinterlace it first")
    if value not in ("p", "?"):
        raise VideoFormatError(f"header: malformed I tag {'I' + value[:20]!r} (expected Ip, It, Ib, Im or I?)")
    return value


def _chroma(value: str) -> tuple[str, int]:
    if value in _CHROMAS_8BIT:
        return value, 8
    if value in _HIGH_DEPTH_C:
        return _HIGH_DEPTH_C[value]
    if value.startswith("444alpha"):
        raise VideoFormatError("header: C444alpha (a fourth, alpha plane) is not supported")
    known = ", ".join(_CHROMAS_8BIT + tuple(_HIGH_DEPTH_C))
    raise VideoFormatError(f"header: unknown C tag {'C' + value[:20]!r}; supported: {known}")


def y4m_header(fmt: VideoFormat) -> bytes:
    """The stream header line (newline included) that :func:`parse_y4m_header` reads back as ``fmt``."""
    tags = [
        Y4M_MAGIC.decode(),
        f"W{fmt.width}",
        f"H{fmt.height}",
        f"F{fmt.fps_num}:{fmt.fps_den}",
        "Ip",
        f"A{fmt.aspect[0]}:{fmt.aspect[1]}",
        f"C{_c_value(fmt)}",
    ]
    tags += [f"X{tag}" for tag in fmt.x_tags]
    return (" ".join(tags) + "\n").encode("ascii")


def _c_value(fmt: VideoFormat) -> str:
    if fmt.bit_depth == 8:
        return fmt.chroma
    if fmt.chroma == "mono":
        return f"mono{fmt.bit_depth}"
    if fmt.chroma in ("420", "422", "444"):
        return f"{fmt.chroma}p{fmt.bit_depth}"
    raise ValueError(
        f"Y4M has no C value for chroma {fmt.chroma!r} at {fmt.bit_depth} bits; expected chroma '420' (siting "
        "variants are 8-bit only), '422', '444' or 'mono'"
    )


# ----------------------------------------------------------------------------------------------- reading


def read_y4m(
    source: str | os.PathLike | BinaryIO, max_frames: int | None = None, limits: Y4MLimits = Y4MLimits()
) -> Video:
    """Read the first ``max_frames`` frames (all when None) of a Y4M file, path or binary file object.

    Raises VideoFormatError, prefixed with the file name, for anything malformed, unsupported or over
    ``limits``; a file object is read from its current position and left open.
    """
    if max_frames is not None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
            raise ValueError(f"max_frames: expected a positive int or None, got {max_frames!r}")
        max_frames = int(max_frames)
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            f = open(source, "rb")
        except OSError as e:
            raise VideoFormatError(f"{name}: cannot open: {e.strerror or e}") from None
        with f:
            return _read_named(f, name, max_frames, limits)
    return _read_named(source, str(getattr(source, "name", "<stream>")), max_frames, limits)


def _read_named(f: BinaryIO, name: str, max_frames: int | None, limits: Y4MLimits) -> Video:
    try:
        return _read_stream(f, max_frames, limits)
    except VideoFormatError as e:
        raise VideoFormatError(f"{name}: {e}") from None


def _read_stream(f: BinaryIO, max_frames: int | None, limits: Y4MLimits) -> Video:
    header = _read_line(f, limits.max_header_bytes, Y4M_MAGIC, "header: not a Y4M file: expected 'YUV4MPEG2 '")
    fmt, _ = parse_y4m_header(header, limits)
    if fmt.frame_bytes > limits.max_total_bytes:
        raise VideoFormatError(
            f"header: one {fmt.width}x{fmt.height} frame needs {fmt.frame_bytes} bytes, "
            f"over max_total_bytes={limits.max_total_bytes}"
        )
    end = _stream_end(f)
    stack = _new_stack(f, fmt, end, max_frames, limits)
    index = 0
    while max_frames is None or index < max_frames:
        mismatch = f"frame {index}: expected a 'FRAME' line"
        line = _read_line(f, limits.max_header_bytes, _FRAME, mismatch, eof_ok=True)
        if not line:
            break
        _check_frame_line(line, index, stack.max_frames, limits)
        stack.append_flat(_read_payload(f, fmt, index, end))
        index += 1
    return stack.to_video()


def _read_line(f: BinaryIO, limit: int, prefix: bytes, mismatch: str, eof_ok: bool = False) -> bytes:
    """One newline-terminated line of at most ``limit`` bytes that starts with ``prefix``.

    Returns b'' at a clean end of file when ``eof_ok``; a wrong start is reported as ``mismatch`` before
    the line's length or end, so that a file of the wrong kind is named as such.
    """
    line = f.readline(limit)
    if not line and eof_ok:
        return line
    if not line:
        raise VideoFormatError("header: empty file")
    if not prefix.startswith(line[: len(prefix)]):
        raise VideoFormatError(f"{mismatch}, got {line[:20]!r}")
    if line.endswith(b"\n"):
        return line
    where = mismatch.split(":")[0]
    if len(line) == limit:
        raise VideoFormatError(f"{where}: line longer than max_header_bytes={limit}")
    raise VideoFormatError(f"{where}: truncated line {line[:20]!r}")


def _stream_end(f: BinaryIO) -> int | None:
    """The file's size when it can be known without reading it (a seekable file), else None."""
    try:
        if not f.seekable():
            return None
        position = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(position)
        return end
    except (AttributeError, OSError, ValueError):
        return None


def _new_stack(
    f: BinaryIO, fmt: VideoFormat, end: int | None, max_frames: int | None, limits: Y4MLimits
) -> FrameStack:
    """A FrameStack preallocated for as many frames as the file can hold, refused if over the byte limit."""
    wanted = limits.max_frames if max_frames is None else min(max_frames, limits.max_frames)
    by_bytes = limits.max_total_bytes // fmt.frame_bytes
    if end is None:  # a stream: reserve nothing before frames arrive (the stack doubles as they do)
        return FrameStack(fmt, 0, min(wanted, by_bytes))
    capacity = min(wanted, (end - f.tell()) // (fmt.frame_bytes + len(_FRAME) + 1))
    if capacity > by_bytes:
        raise VideoFormatError(
            f"{capacity} frames of {fmt.frame_bytes} bytes exceed max_total_bytes={limits.max_total_bytes}"
        )
    return FrameStack(fmt, capacity, min(wanted, by_bytes))


def _check_frame_line(line: bytes, index: int, max_frames: int, limits: Y4MLimits) -> None:
    if not (line == _FRAME + b"\n" or line.startswith(_FRAME + b" ")):
        raise VideoFormatError(f"frame {index}: expected a 'FRAME' line, got {line[:20]!r}")
    _printable_ascii(line[:-1], f"frame {index}")
    if index >= limits.max_frames:
        raise VideoFormatError(f"frame {index}: more than max_frames={limits.max_frames} frames")
    if index >= max_frames:
        raise VideoFormatError(f"frame {index}: more than max_total_bytes={limits.max_total_bytes} of frames")


def _read_payload(f: BinaryIO, fmt: VideoFormat, index: int, end: int | None) -> np.ndarray:
    """One frame's samples, flat, as little-endian words or bytes; checked against the bit depth."""
    size = fmt.frame_bytes
    if end is not None and end - f.tell() < size:  # refuse before read() allocates a buffer of `size`
        raise VideoFormatError(f"frame {index}: truncated (got {end - f.tell()} of {size} bytes)")
    data = f.read(size if end is not None else min(size, _FIRST_READ))
    if len(data) < size:  # a stream (or a short read): grow with the bytes that really arrive
        data = bytearray(data)
        while len(data) < size:
            more = f.read(min(size - len(data), max(_FIRST_READ, len(data))))
            if not more:
                raise VideoFormatError(f"frame {index}: truncated (got {len(data)} of {size} bytes)")
            data += more
    samples = np.frombuffer(data, np.uint8 if fmt.bit_depth == 8 else np.dtype("<u2"))
    if fmt.bit_depth > 8:
        _check_sample_range(samples, fmt, index)
    return samples


def _check_sample_range(samples: np.ndarray, fmt: VideoFormat, index: int) -> None:
    if int(samples.max()) <= fmt.max_value:
        return
    position = int(np.argmax(samples > fmt.max_value))
    offset = 0
    for plane, (h, w) in enumerate(fmt.plane_shapes):
        if position < offset + h * w:
            break
        offset += h * w
    row, column = divmod(position - offset, w)
    raise VideoFormatError(
        f"frame {index}: sample {int(samples[position])} in plane {_PLANE_NAMES[plane]} at row {row}, "
        f"column {column} exceeds the {fmt.bit_depth}-bit maximum {fmt.max_value}"
    )


# ----------------------------------------------------------------------------------------------- writing


def write_y4m(path: str | os.PathLike, video: Video) -> None:
    """Write ``video`` as a Y4M file, atomically: a reader sees the old file or the complete new one.

    Raises ValueError, before touching ``path``, for a video that :func:`read_y4m` would refuse.
    """
    fmt = video.format
    header = checked_header(fmt)
    if fmt.bit_depth > 8:
        for i, plane in enumerate(video.planes):
            peak = int(plane.max())
            if peak > fmt.max_value:
                raise ValueError(
                    f"write_y4m: plane {i} has sample {peak}, over the {fmt.bit_depth}-bit maximum {fmt.max_value}"
                )
    with atomic_open(path) as f:
        f.write(header)
        write_frames(f, fmt, video.planes)


def checked_header(fmt: VideoFormat) -> bytes:
    """The stream header of ``fmt``; a ValueError for one :func:`read_y4m` would refuse as too long."""
    header = y4m_header(fmt)
    if len(header) > Y4MLimits().max_header_bytes:
        raise ValueError(f"write_y4m: header of {len(header)} bytes exceeds {Y4MLimits().max_header_bytes}")
    return header


def write_frames(f: BinaryIO, fmt: VideoFormat, planes: list[np.ndarray]) -> None:
    """Write the frames of ``planes`` (each (T, h, w), samples within ``fmt``'s bit depth), each with its FRAME line:
    what follows the header, so a stream can be written a chunk of frames at a time (``hinerv decode IN -``)."""
    dtype = np.uint8 if fmt.bit_depth == 8 else np.dtype("<u2")
    for t in range(planes[0].shape[0]):
        f.write(_FRAME + b"\n")
        for plane in planes:
            f.write(np.ascontiguousarray(plane[t], dtype=dtype).data)
