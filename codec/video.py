"""Raw video in memory: planar YUV at its native bit depth, and the reader that gets it from any file.

The codec never converts to RGB: a ``Video`` holds the source's own planes (Y, Cb, Cr or Y alone) as
``uint8``/``uint16`` arrays, plus the header facts (rate, aspect, X tags) that a decoded file must carry
back out. Y4M goes through the strict reader in :mod:`codec.y4m`; every other container goes through
PyAV (FFmpeg).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from codec.y4m import Y4MLimits

CHROMAS = ("mono", "420", "420jpeg", "420mpeg2", "420paldv", "422", "444")
BIT_DEPTHS = (8, 10, 12)
_SUBSAMPLING = {"mono": (1, 1), "422": (1, 2), "444": (1, 1)}  # every 420* is (2, 2)

Y4M_MAGIC = b"YUV4MPEG2"

# PyAV pixel formats kept as they are: name -> (chroma, bit depth, full range).
_NATIVE_PIX_FMTS = {
    "gray": ("mono", 8, False),
    "yuv420p": ("420", 8, False),
    "yuv422p": ("422", 8, False),
    "yuv444p": ("444", 8, False),
    "yuvj420p": ("420", 8, True),
    "yuvj422p": ("422", 8, True),
    "yuvj444p": ("444", 8, True),
    "gray10le": ("mono", 10, False),
    "yuv420p10le": ("420", 10, False),
    "yuv422p10le": ("422", 10, False),
    "yuv444p10le": ("444", 10, False),
    "gray12le": ("mono", 12, False),
    "yuv420p12le": ("420", 12, False),
    "yuv422p12le": ("422", 12, False),
    "yuv444p12le": ("444", 12, False),
}
_FALLBACK_PIX_FMT = "yuv420p"
_TRUSTED_PREALLOC_BYTES = 1 << 30  # preallocate at most this much on a container's word; grow beyond it


class VideoFormatError(ValueError):
    """A video file is malformed, unsupported or over a size limit (the CLI prints it as one line)."""


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class VideoFormat:
    """Geometry and sample format of a planar YUV video, plus the header facts a Y4M file carries."""

    width: int  # luma width in pixels, >= 1
    height: int  # luma height in pixels, >= 1
    fps_num: int  # frame rate numerator, kept unreduced so a header round-trips byte for byte
    fps_den: int  # frame rate denominator
    chroma: str  # Y4M C value without the p10/p12 suffix: one of CHROMAS
    bit_depth: int  # bits per sample: 8 (uint8 planes) or 10/12 (uint16 planes)
    aspect: tuple[int, int] = (0, 0)  # Y4M A tag (pixel aspect ratio); (0, 0) means unknown
    x_tags: tuple[str, ...] = ()  # Y4M X tags verbatim without the leading X, e.g. 'COLORRANGE=LIMITED'

    def __post_init__(self) -> None:
        object.__setattr__(self, "aspect", tuple(self.aspect))
        object.__setattr__(self, "x_tags", tuple(self.x_tags))
        for name in ("width", "height", "fps_num", "fps_den"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"VideoFormat.{name}: expected a positive int, got {value!r}")
        if self.chroma not in CHROMAS:
            raise ValueError(f"VideoFormat.chroma: expected one of {CHROMAS}, got {self.chroma!r}")
        if self.bit_depth not in BIT_DEPTHS or not _is_int(self.bit_depth):
            raise ValueError(f"VideoFormat.bit_depth: expected one of {BIT_DEPTHS}, got {self.bit_depth!r}")
        if len(self.aspect) != 2 or not all(_is_int(v) and v >= 0 for v in self.aspect):
            raise ValueError(f"VideoFormat.aspect: expected two non-negative ints, got {self.aspect!r}")
        for tag in self.x_tags:
            if not isinstance(tag, str) or not tag.isascii() or not tag.isprintable() or " " in tag:
                raise ValueError(f"VideoFormat.x_tags: expected printable ASCII without spaces, got {tag!r}")

    @property
    def subsampling(self) -> tuple[int, int]:
        """Chroma subsampling factors (sy, sx): how many luma rows/columns share one chroma sample."""
        return _SUBSAMPLING.get(self.chroma, (2, 2))

    @property
    def num_planes(self) -> int:
        return 1 if self.chroma == "mono" else 3

    @property
    def plane_shapes(self) -> list[tuple[int, int]]:
        """(h, w) of each plane; chroma rounds up so odd sizes keep their last row and column."""
        sy, sx = self.subsampling
        chroma = (math.ceil(self.height / sy), math.ceil(self.width / sx))
        return [(self.height, self.width)] + [chroma] * (self.num_planes - 1)

    @property
    def max_value(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        return np.uint8 if self.bit_depth == 8 else np.uint16

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.bit_depth == 8 else 2

    @property
    def frame_bytes(self) -> int:
        """Bytes of one raw frame (all planes), as stored in a Y4M frame payload."""
        return sum(h * w for h, w in self.plane_shapes) * self.bytes_per_sample

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den


@dataclass
class Video:
    """Frames of one video: ``planes[i]`` is a (T, h, w) array per plane, dtype ``format.dtype``."""

    format: VideoFormat
    planes: list[np.ndarray] = field(repr=False)

    def __post_init__(self) -> None:
        self.planes = list(self.planes)
        fmt = self.format
        if len(self.planes) != fmt.num_planes:
            raise ValueError(
                f"Video: expected {fmt.num_planes} planes for chroma {fmt.chroma!r}, got {len(self.planes)}"
            )
        shapes = [getattr(p, "shape", type(p).__name__) for p in self.planes]
        frames = {s[0] if isinstance(s, tuple) and len(s) == 3 else None for s in shapes}
        if None in frames or len(frames) != 1 or 0 in frames:
            raise ValueError(f"Video: expected arrays (T, h, w) sharing one T >= 1, got {shapes}")
        for i, (plane, shape) in enumerate(zip(self.planes, fmt.plane_shapes)):
            if plane.shape[1:] != shape or plane.dtype != fmt.dtype:
                raise ValueError(
                    f"Video: plane {i} expected (T, {shape[0]}, {shape[1]}) {np.dtype(fmt.dtype)}, "
                    f"got {plane.shape} {plane.dtype}"
                )

    @property
    def num_frames(self) -> int:
        return self.planes[0].shape[0]

    def frames(self, start: int, stop: int | None = None) -> Video:
        """Frames [start, stop) as a new Video whose planes are views of this one's (no copy)."""
        stop = self.num_frames if stop is None else stop
        if not (_is_int(start) and _is_int(stop) and 0 <= start < stop <= self.num_frames):
            raise ValueError(f"Video.frames: expected 0 <= start < stop <= {self.num_frames}, got {start}, {stop}")
        return Video(self.format, [p[start:stop] for p in self.planes])

    def crop(self, x: int, y: int, w: int, h: int) -> Video:
        """A copy of the w x h window at luma (x, y); offsets must sit on the chroma grid so chroma stays aligned."""
        fmt = self.format
        sy, sx = fmt.subsampling
        if not all(_is_int(v) for v in (x, y, w, h)) or x < 0 or y < 0 or w < 1 or h < 1:
            raise ValueError(f"Video.crop: expected x, y >= 0 and w, h >= 1, got {x}, {y}, {w}, {h}")
        if x + w > fmt.width or y + h > fmt.height:
            raise ValueError(f"Video.crop: window {w}x{h}+{x}+{y} exceeds the frame {fmt.width}x{fmt.height}")
        if x % sx or y % sy:
            raise ValueError(
                f"Video.crop: chroma {fmt.chroma!r} needs x a multiple of {sx} and y of {sy}, got {x}, {y}"
            )
        out_fmt = dataclasses.replace(fmt, width=w, height=h)
        planes = [self.planes[0][:, y : y + h, x : x + w].copy()]
        for plane in self.planes[1:]:
            ch, cw = out_fmt.plane_shapes[1]
            planes.append(plane[:, y // sy : y // sy + ch, x // sx : x // sx + cw].copy())
        return Video(out_fmt, planes)


class FrameStack:
    """Collects frames into per-plane arrays that are preallocated, growing geometrically only when needed.

    Readers bound the frame count (file size, limits) before creating a stack so that a lying header cannot
    make them allocate more than the file can fill; ``max_frames`` caps any growth.
    """

    def __init__(self, fmt: VideoFormat, capacity: int, max_frames: int) -> None:
        self.format = fmt
        self.max_frames = max_frames
        self.count = 0
        self._planes = [np.empty((capacity, h, w), fmt.dtype) for h, w in fmt.plane_shapes]

    def append(self, planes: Sequence[np.ndarray]) -> None:
        """Copy one frame (a sequence of (h, w) planes) in."""
        if self.count == self._planes[0].shape[0]:
            self._grow()
        for dst, src in zip(self._planes, planes):
            dst[self.count] = src
        self.count += 1

    def append_flat(self, samples: np.ndarray) -> None:
        """Copy one frame given as its planes' samples back to back (a Y4M frame payload)."""
        planes, offset = [], 0
        for h, w in self.format.plane_shapes:
            planes.append(samples[offset : offset + h * w].reshape(h, w))
            offset += h * w
        self.append(planes)

    def _grow(self) -> None:
        capacity = self._planes[0].shape[0]
        new = min(max(2 * capacity, 1), self.max_frames)  # from 0: memory follows the frames that arrive
        if new <= capacity:
            raise VideoFormatError(f"more than {self.max_frames} frames")
        grown = []
        for plane in self._planes:
            bigger = np.empty((new,) + plane.shape[1:], plane.dtype)
            bigger[:capacity] = plane
            grown.append(bigger)
        self._planes = grown

    def to_video(self) -> Video:
        if self.count == 0:
            raise VideoFormatError("no frames")
        return Video(self.format, [p[: self.count] for p in self._planes])


def read_video(path: str | os.PathLike, frames: int | None = None, limits: Y4MLimits | None = None) -> Video:
    """Read the first ``frames`` frames (all when None) of a Y4M or any FFmpeg-readable video file.

    Y4M is recognised by its magic, not by its name, and read by the strict reader; other files are
    decoded by PyAV. Raises VideoFormatError for a missing, malformed or unsupported file.
    """
    from codec.y4m import Y4MLimits, read_y4m

    limits = Y4MLimits() if limits is None else limits
    _check_frames_arg(frames)
    try:
        with open(path, "rb") as f:
            magic = f.read(len(Y4M_MAGIC))
    except OSError as e:
        raise VideoFormatError(f"{os.fspath(path)}: cannot open: {e.strerror or e}") from None
    if magic == Y4M_MAGIC:
        return read_y4m(path, max_frames=frames, limits=limits)
    return _read_pyav(path, frames, limits)


def _check_frames_arg(frames: int | None) -> None:
    if frames is not None and (not _is_int(frames) or frames < 1):
        raise ValueError(f"frames: expected a positive int or None, got {frames!r}")


def _one_line(error: BaseException) -> str:
    """An exception as one line, preferring FFmpeg's plain message over its '[Errno ...] ...' form."""
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(text.split()) or type(error).__name__


def _read_pyav(path: str | os.PathLike, frames: int | None, limits: Y4MLimits) -> Video:
    import av

    name = os.fspath(path)
    try:
        with av.open(name) as container:
            if not container.streams.video:
                raise VideoFormatError("no video stream")
            stream = container.streams.video[0]
            return _decode_stream(container, stream, frames, limits)
    except VideoFormatError as e:
        raise VideoFormatError(f"{name}: {e}") from None
    except (av.FFmpegError, OSError) as e:
        raise VideoFormatError(f"{name}: cannot read as video: {_one_line(e)}") from None


def _decode_stream(container, stream, frames: int | None, limits: Y4MLimits) -> Video:
    """Decode up to ``frames`` frames into a FrameStack, keeping a native planar layout when there is one."""
    want = limits.max_frames if frames is None else min(frames, limits.max_frames)
    stack, target = None, None
    for i, frame in enumerate(container.decode(stream)):
        if i == frames:
            break
        if i == limits.max_frames:
            raise VideoFormatError(f"frame {i}: more than max_frames={limits.max_frames} frames")
        if stack is None:
            fmt, target = _pyav_format(stream, frame, limits)
            stack = _pyav_stack(fmt, stream, want, limits)
        elif (frame.width, frame.height) != (stack.format.width, stack.format.height):
            raise VideoFormatError(f"frame {i}: size changed to {frame.width}x{frame.height}")
        if i == stack.max_frames:
            raise VideoFormatError(f"frame {i}: more than max_total_bytes={limits.max_total_bytes} of samples")
        if frame.format.name != target:
            frame = frame.reformat(format=target)
        shapes = stack.format.plane_shapes
        stack.append([_plane_array(p, h, w, stack.format.dtype) for p, (h, w) in zip(frame.planes, shapes)])
    if stack is None:
        raise VideoFormatError("no frames")
    return stack.to_video()


def _pyav_format(stream, frame, limits: Y4MLimits) -> tuple[VideoFormat, str]:
    """VideoFormat of the decoded frames and the pixel format to decode into."""
    target = frame.format.name if frame.format.name in _NATIVE_PIX_FMTS else _FALLBACK_PIX_FMT
    chroma, bit_depth, full = _NATIVE_PIX_FMTS[target]
    if not (1 <= frame.width <= limits.max_width and 1 <= frame.height <= limits.max_height):
        raise VideoFormatError(
            f"size {frame.width}x{frame.height} outside 1..{limits.max_width} x 1..{limits.max_height}"
        )
    rate = stream.average_rate or Fraction(25, 1)
    sar = stream.sample_aspect_ratio
    aspect = (sar.numerator, sar.denominator) if sar else (0, 0)
    full = full or int(frame.color_range) == 2  # AVCOL_RANGE_JPEG
    limited = not full and int(frame.color_range) == 1  # AVCOL_RANGE_MPEG
    x_tags = ("COLORRANGE=FULL",) if full else ("COLORRANGE=LIMITED",) if limited else ()
    fmt = VideoFormat(frame.width, frame.height, rate.numerator, rate.denominator, chroma, bit_depth, aspect, x_tags)
    return fmt, target


def _pyav_stack(fmt: VideoFormat, stream, want: int, limits: Y4MLimits) -> FrameStack:
    """A stack sized by the container's frame count when it has one, never past the byte limit."""
    if fmt.frame_bytes > limits.max_total_bytes:
        raise VideoFormatError(
            f"one {fmt.width}x{fmt.height} frame needs {fmt.frame_bytes} bytes, "
            f"over max_total_bytes={limits.max_total_bytes}"
        )
    max_frames = min(want, limits.max_total_bytes // fmt.frame_bytes)
    trusted = max(1, _TRUSTED_PREALLOC_BYTES // fmt.frame_bytes)  # a container's frame count may lie
    capacity = min(stream.frames or 8, max_frames, trusted)
    return FrameStack(fmt, capacity, max_frames)


def _plane_array(plane, h: int, w: int, dtype) -> np.ndarray:
    """The (h, w) samples of a PyAV plane, dropping the row padding (line_size may exceed the width)."""
    data = np.frombuffer(plane, np.dtype(dtype).newbyteorder("<"))
    row = plane.line_size // data.itemsize
    return data[: h * row].reshape(h, row)[:, :w]
