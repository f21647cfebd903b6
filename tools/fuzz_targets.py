#!/usr/bin/env python
"""Fuzz targets for the two parsers of untrusted bytes: the Y4M reader and the whole bitstream decode path.

A target is fed bytes and must end in one of two ways: a correct decode (checked below) or the project's own
error type with a one-line message (``VideoFormatError`` for Y4M, ``BitstreamError`` for hinerv files), which
the CLI prints as one line with exit code 2. Anything else is a finding: another exception, an input running
past the per-input time limit, or an allocation past the address-space cap that ``fuzz`` mode sets.

* ``run_y4m(data)``: ``codec.y4m.read_y4m`` on a seekable and on a streaming copy of ``data``, under tiny
  limits (so the limit logic is reachable by small inputs) and under the defaults; both readers must agree,
  and an accepted video must survive a write/read round trip.
* ``run_decode(data)``: the first byte is a mode byte (bit 0: recompute every section CRC, so mutations reach
  the section parsers), the rest a hinerv file, which goes through ``codec.bitstream_io.read_bitstream``,
  ``codec.decoder.build_model``/``decode_bytes`` (rendering only when the output is small) and
  ``describe_file`` (``hinerv info``). A decoded video must match its header and decode to the same bytes
  twice.

Used three ways:

* by the test suite (``tests/reliability``) through hypothesis: ``y4m_seeds()``, ``bitstream_seeds()``,
  the ``mutate*`` helpers and the two targets;
* by ``tools/fuzz.sh``: ``python tools/fuzz_targets.py fuzz {y4m|decode} --seconds N --corpus DIR``:
  coverage-guided with atheris (``pip install atheris``), else a random-mutation loop driven by hypothesis;
* ``python tools/fuzz_targets.py coverage {y4m|decode} DIR...``: the line coverage that a corpus reaches in
  the project's modules (stdlib tracing, no extra dependency).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import random
import resource
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROJECT_PACKAGES = ("codec", "bitstream", "inr", "compress")
# The modules each target is meant to exercise: its coverage is reported over these.
TARGET_MODULES = {
    "y4m": ("codec/y4m.py", "codec/video.py"),
    "decode": ("bitstream/container.py", "bitstream/fields.py", "bitstream/entropy.py", "bitstream/tensors.py",
               "codec/bitstream_io.py", "codec/decoder.py", "codec/layout.py", "compress/quantize.py",
               "inr/config.py", "inr/model.py", "inr/layers.py", "inr/regions.py"),
}
MAX_MESSAGE = 1000  # an error message is one line of at most this many characters
FUZZ_MAX_OUTPUT_BYTES = 1 << 20  # decoded samples above this are parsed and validated but not rendered
ADDRESS_SPACE_CAP = 6 << 30  # fuzz mode: bytes of address space allowed on top of what the imports took

# ----------------------------------------------------------------------------------------------- outcomes


class Finding(AssertionError):
    """A target ended in a way the contract does not allow (wrong result, inconsistency)."""


def check_message(exc: BaseException) -> str:
    """The project's error must be one short line: what the CLI prints after 'hinerv: error:'."""
    text = str(exc)
    if not text or "\n" in text or "\r" in text or len(text) > MAX_MESSAGE:
        raise Finding(f"{type(exc).__name__} message is not one line of <= {MAX_MESSAGE} chars: {text[:300]!r}")
    return text


# ----------------------------------------------------------------------------------------------- Y4M


def _y4m():
    from codec import video, y4m

    return video, y4m


def fuzz_y4m_limits():
    """Tiny limits: each bound is reachable by inputs of a few hundred bytes."""
    _, y4m = _y4m()
    return y4m.Y4MLimits(max_header_bytes=200, max_width=48, max_height=48, max_frames=6, max_total_bytes=3000)


class Unseekable(io.RawIOBase):
    """A pipe-like stream over bytes: not seekable, and short reads of at most ``chunk`` bytes."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self._data, self._pos, self._chunk = data, 0, chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._chunk, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def y4m_bytes(video) -> bytes:
    """A Video as Y4M bytes, as ``write_y4m`` writes it (header, then FRAME + planes per frame)."""
    _, y4m = _y4m()
    import numpy as np

    fmt = video.format
    dtype = np.uint8 if fmt.bit_depth == 8 else np.dtype("<u2")
    out = bytearray(y4m.y4m_header(fmt))
    for t in range(video.num_frames):
        out += b"FRAME\n"
        for plane in video.planes:
            out += np.ascontiguousarray(plane[t], dtype=dtype).tobytes()
    return bytes(out)


def _same_video(a, b) -> bool:
    import numpy as np

    return a.format == b.format and all(np.array_equal(p, q) for p, q in zip(a.planes, b.planes))


def run_y4m(data: bytes) -> list:
    """Read ``data`` as Y4M under tiny and default limits, seekable and streaming; return accepted videos."""
    video_mod, y4m = _y4m()
    accepted = []
    for limits in (fuzz_y4m_limits(), y4m.Y4MLimits()):
        outcomes = []
        for stream in (io.BytesIO(data), io.BufferedReader(Unseekable(data))):
            try:
                outcomes.append(y4m.read_y4m(stream, limits=limits))
            except video_mod.VideoFormatError as e:
                check_message(e)
                outcomes.append(e)
        seekable, streaming = outcomes
        if isinstance(seekable, Exception) != isinstance(streaming, Exception):
            ok, err = (seekable, streaming) if isinstance(streaming, Exception) else (streaming, seekable)
            kind = "streaming" if ok is streaming else "seekable"
            raise Finding(f"the {kind} reader accepted a file the other refused with: {err}")
        if isinstance(seekable, Exception):
            continue
        if not _same_video(seekable, streaming):
            raise Finding("seekable and streaming readers decoded different videos")
        _check_y4m_video(seekable, limits)
        accepted.append(seekable)
    return accepted


def _check_y4m_video(video, limits) -> None:
    fmt = video.format
    if not (1 <= fmt.width <= limits.max_width and 1 <= fmt.height <= limits.max_height):
        raise Finding(f"accepted {fmt.width}x{fmt.height}, outside the limits")
    if not 1 <= video.num_frames <= limits.max_frames or video.num_frames * fmt.frame_bytes > limits.max_total_bytes:
        raise Finding(f"accepted {video.num_frames} frames of {fmt.frame_bytes} bytes, over the limits")
    for plane in video.planes:
        if plane.size and int(plane.max()) > fmt.max_value:
            raise Finding(f"accepted a sample above the {fmt.bit_depth}-bit maximum")
    _, y4m = _y4m()
    path = _scratch_path(".y4m")
    y4m.write_y4m(path, video)  # the project's writer; the default limits read back its (longer) header
    again = y4m.read_y4m(path)
    if not _same_video(video, again) or path.read_bytes() != y4m_bytes(video):
        raise Finding("an accepted video does not survive write -> read")


def y4m_seeds() -> list[bytes]:
    """Small valid Y4M files covering every chroma, bit depth, odd sizes, tags and FRAME parameters."""
    import numpy as np

    video_mod, _ = _y4m()
    rng = np.random.default_rng(7)
    out = []
    specs = [
        (4, 4, "420jpeg", 8, 2, ()), (5, 3, "420mpeg2", 8, 2, ("COLORRANGE=LIMITED",)), (3, 5, "420paldv", 8, 1, ()),
        (4, 2, "422", 10, 2, ()), (3, 3, "444", 12, 2, ("A", "")), (8, 1, "mono", 8, 3, ()),
        (2, 2, "mono", 12, 1, ()), (6, 2, "420", 10, 2, ()), (1, 1, "420", 8, 1, ()),
    ]
    for w, h, chroma, depth, frames, tags in specs:
        fmt = video_mod.VideoFormat(w, h, 30000, 1001, chroma, depth, (1, 1), tags)
        planes = [rng.integers(0, fmt.max_value + 1, (frames, ph, pw)).astype(fmt.dtype) for ph, pw in fmt.plane_shapes]
        out.append(y4m_bytes(video_mod.Video(fmt, planes)))
    # Header and FRAME variants the writer never produces: defaults, odd spacing, parameters.
    out.append(b"YUV4MPEG2 W2 H2\nFRAME\n" + bytes(range(6)))
    out.append(b"YUV4MPEG2  W2 H2 F0:0 I? A0:0 C420 XYSCSS=420\nFRAME Ixyz\n" + bytes(6))
    out.append(b"YUV4MPEG2 W3 H1 Cmono10 F25:1\nFRAME\n" + b"\xff\x03" * 3 + b"FRAME X\n" + b"\x00\x00" * 3)
    return out


HEADER_EXTREMES = ["0", "1", "-1", "2", "48", "49", "16384", "16385", "4294967296", "9999999999", "99999999999",
                   "", "1:0", "0:0", "0:1", "1:1", "99999999999:1", "p", "t", "?", "420p10", "444alpha", "mono12",
                   "422p12", "420paldv", "x" * 300]


def mutate_y4m_header(data: bytes, tag: str, value: str, mode: str) -> bytes:
    """Set (replace or add), duplicate or drop one header tag of a Y4M file."""
    head, sep, rest = data.partition(b"\n")
    tokens = head.split(b" ")
    key = tag.encode()
    idx = next((i for i, t in enumerate(tokens[1:], 1) if t.startswith(key)), None)
    token = key + value.encode()
    if mode == "drop" and idx is not None:
        del tokens[idx]
    elif mode == "add" or idx is None:
        tokens.append(token)
    else:
        tokens[idx] = token
    return b" ".join(tokens) + sep + rest


# ----------------------------------------------------------------------------------------------- bitstreams


def mutate_bytes(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    """Apply byte-level mutations: flip a bit, set, insert or delete a byte, truncate."""
    b = bytearray(data)
    for kind, pos, value in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= 1 << (value % 8)
        elif kind == "set":
            b[i] = value % 256
        elif kind == "insert":
            b.insert(i, value % 256)
        elif kind == "delete":
            del b[i]
        elif kind == "truncate":
            del b[i:]
        elif kind == "append":
            b += bytes([value % 256]) * (1 + pos % 16)
    return bytes(b)


def reseal(data: bytes) -> bytes:
    """Recompute every section CRC so mutations reach the section parsers (``bitstream.container.reseal_crcs``)."""
    from bitstream.container import reseal_crcs

    return reseal_crcs(data)


def _tiny_bitstream(width: int, height: int, chroma: str, depth: int, frames: int, seed: int, bits: int = 6,
                    zero_every: int = 0, learned: bool = False) -> bytes:
    """A valid hinerv file without training: a randomly initialised model of the smallest preset (``learned``:
    with learned-step quantizers, as ``--quant entropy`` writes them: format version 4, compact, no meta bytes)."""
    import torch

    from codec.bitstream_io import write_bitstream
    from inr.model import quant_axis
    from codec.layout import PlaneLayout
    from codec.video import VideoFormat
    from compress.quantize import QuantConfig, export_quantized
    from inr.model import HiNeRV
    from inr.presets import build_config

    fmt = VideoFormat(width, height, 25, 1, chroma, depth, (0, 0), ("COLORRANGE=FULL",) if seed % 2 else ())
    layout = PlaneLayout.for_format(fmt)
    config = build_config(*layout.grid_size, frames, layout.channels, "xxs")
    torch.manual_seed(seed)
    model = HiNeRV(config)
    if zero_every:
        with torch.no_grad():
            for i, p in enumerate(model.parameters()):
                if i % zero_every == 0:
                    p.zero_()
    if learned:
        from compress.entropy_quant import entropy_quant_, export_entropy

        entropy_quant_(model)
        tensors = export_entropy(model.eval())
    else:
        tensors = export_quantized(model, QuantConfig(bits=bits), axis_fn=quant_axis)
    return write_bitstream(fmt, frames, config, tensors)


_BITSTREAM_SEEDS: list[bytes] = []


def bitstream_seeds() -> list[bytes]:
    """Small valid hinerv files: 4:2:0 8-bit, mono 10-bit, 4:4:4 12-bit, 4:2:2 odd size; pruned tensors; learned
    steps (version 4)."""
    if not _BITSTREAM_SEEDS:
        _BITSTREAM_SEEDS.extend([
            _tiny_bitstream(16, 16, "420", 8, 2, seed=0),
            _tiny_bitstream(8, 6, "mono", 10, 3, seed=1, bits=8, zero_every=3),
            _tiny_bitstream(6, 4, "444", 12, 1, seed=2, bits=4),
            _tiny_bitstream(7, 5, "422", 8, 2, seed=3, zero_every=2),
            _tiny_bitstream(16, 12, "420", 8, 2, seed=4, zero_every=4, learned=True),
        ])
    return list(_BITSTREAM_SEEDS)


INT_EXTREMES = [0, 1, -1, 2, 3, 4, 7, 8, 9, 10, 12, 15, 16, 17, 63, 64, 65, 255, 256, 4095, 4096, 4097, 16383,
                16384, 16385, 65535, 65536, 65537, 10**6, 10**6 + 1, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1,
                -(2**63) + 1]
STR_EXTREMES = ["", "420", "420jpeg", "422", "444", "mono", "444alpha", "x" * 300, "\x00", "é", "COLORRANGE=FULL"]


def _flatten(obj: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, value) of every leaf (int, float, str, tuple entry, tuple length) of a dataclass tree."""
    out: list[tuple[tuple, Any]] = []
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            out += _flatten(getattr(obj, f.name), path + (f.name,))
    elif isinstance(obj, tuple):
        out.append((path + ("#len",), len(obj)))
        for i, v in enumerate(obj):
            out += _flatten(v, path + (i,))
    else:
        out.append((path, obj))
    return out


def _replace(obj: Any, path: tuple, value: Any) -> Any:
    """A copy of ``obj`` with the leaf at ``path`` replaced, built WITHOUT running any validation."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if dataclasses.is_dataclass(obj):
        new = object.__new__(type(obj))
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            object.__setattr__(new, f.name, _replace(v, rest, value) if f.name == head else v)
        return new
    if head == "#len":  # shorten, or grow by repeating the last entry
        n = max(0, min(int(value), 64))
        return tuple(obj[:n]) + tuple(obj[-1:] * max(0, n - len(obj)) if obj else (1,) * n)
    items = list(obj)
    items[head] = _replace(items[head], rest, value)
    return tuple(items)


def _leaf_value(old: Any, choice: int) -> Any:
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        near = [old + 1, old - 1, old * 2, old // 2, old * 4 + 1]
        pool = INT_EXTREMES + near
        return pool[choice % len(pool)]
    if isinstance(old, float):
        return [0.0, -1.0, float("inf"), float("nan"), 1e308, 5e-324][choice % 6]
    if isinstance(old, str):
        return STR_EXTREMES[choice % len(STR_EXTREMES)]
    return old


def mutate_fields(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Set VIDEO/MODEL header fields of a valid hinerv file to extreme values; repack with correct CRCs.

    Each edit is (section selector, leaf index, value choice); the sections are rebuilt by ``pack_dataclass``
    and ``write_container``, so the result passes the CRC checks and reaches the field validation.
    """
    from bitstream.container import SectionType, read_container, write_container
    from bitstream.fields import pack_dataclass, unpack_dataclass
    from codec.bitstream_io import StreamInfo, read_model_config, write_model_config

    sections = {s.type: s.payload for s in read_container(data) if s.type != SectionType.END}
    objs = {SectionType.VIDEO: unpack_dataclass(StreamInfo, sections[SectionType.VIDEO]),
            SectionType.MODEL: read_model_config(sections[SectionType.MODEL])}
    for which, leaf, choice in edits:
        key = (SectionType.VIDEO, SectionType.MODEL)[which % 2]
        leaves = _flatten(objs[key])
        path, old = leaves[leaf % len(leaves)]
        objs[key] = _replace(objs[key], path, _leaf_value(old, choice))
    for key, obj in objs.items():
        try:
            sections[key] = write_model_config(obj) if key == SectionType.MODEL else pack_dataclass(obj)
        except (TypeError, ValueError, OverflowError):  # a value the format cannot even carry: leave it
            pass
    return write_container([(k, v) for k, v in sections.items()])


_SCRATCH: dict[str, Path] = {}


def _scratch_path(suffix: str) -> Path:
    """A per-process file (in memory where /dev/shm exists) for the targets that need a path."""
    if suffix not in _SCRATCH:
        base = os.environ.get("HINERV_FUZZ_SCRATCH") or (
            "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None)
        folder = Path(tempfile.mkdtemp(prefix="hinerv-fuzz-", dir=base))
        _SCRATCH[suffix] = folder / f"scratch{suffix}"
        import atexit
        import shutil

        atexit.register(shutil.rmtree, folder, True)
    return _SCRATCH[suffix]


def run_decode(data: bytes):
    """Mode byte + hinerv file -> the whole decode path; return the decoded Video, or None when refused."""
    if not data:
        return None
    if data[0] & 1:
        data = reseal(data[1:])
    else:
        data = data[1:]
    return decode_file_bytes(data)


def decode_file_bytes(data: bytes):
    """The whole decode path on a hinerv file; return the decoded Video, or None when refused (checked)."""
    from bitstream.errors import BitstreamError
    from codec.bitstream_io import read_bitstream
    from codec.info import describe_file
    from codec.decoder import build_model, decode_bytes

    path = _scratch_path(".bin")
    path.write_bytes(data)
    try:
        desc = describe_file(path)
    except BitstreamError as e:
        check_message(e)
        desc = None
    try:
        fmt, frames, config, tensors, plugins = read_bitstream(data)
        if fmt.frame_bytes * frames > FUZZ_MAX_OUTPUT_BYTES:  # valid but long to render: validate only
            build_model(config, tensors, plugins)
            video = None
        else:
            video = decode_bytes(data)
    except BitstreamError as e:
        check_message(e)
        if desc is not None and "the model needs" not in str(e) and "does not fit" not in str(e):
            raise Finding(f"'hinerv info' accepted a file that decoding refuses: {e}") from None
        return None
    if desc is None:
        raise Finding("decoding accepted a file that 'hinerv info' refuses")
    if video is not None:
        if video.format != fmt or video.num_frames != frames:
            raise Finding(f"decoded {video.format}, {video.num_frames} frames; the header says {fmt}, {frames}")
        if desc["frames"] != frames or desc["bytes"] != len(data):
            raise Finding("'hinerv info' disagrees with the decoder")
        again = decode_bytes(data)
        if not _same_video(video, again):
            raise Finding("decoding the same file twice gave different samples")
    return video


# ----------------------------------------------------------------------------------------------- engines

TARGETS: dict[str, Callable[[bytes], Any]] = {"y4m": run_y4m, "decode": run_decode}


def seeds_for(target: str) -> list[bytes]:
    """The starting corpus: valid files, plus (for decode) structured header mutations of them."""
    if target == "y4m":
        base = y4m_seeds()
        rng = random.Random(1)
        extra = [mutate_y4m_header(rng.choice(base), rng.choice("WHFIACX"), rng.choice(HEADER_EXTREMES),
                                   rng.choice(["set", "add", "drop"])) for _ in range(40)]
        return base + extra
    files = bitstream_seeds()
    rng = random.Random(2)
    out = [bytes([0]) + f for f in files] + [bytes([1]) + f for f in files]
    for _ in range(60):
        edits = [(rng.randrange(2), rng.randrange(64), rng.randrange(64)) for _ in range(rng.randint(1, 2))]
        out.append(bytes([0]) + mutate_fields(rng.choice(files), edits))
    return out


def write_seeds(target: str, corpus: Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    for data in seeds_for(target):
        (corpus / f"seed-{zlib.crc32(data):08x}").write_bytes(data)
    return len(list(corpus.iterdir()))


def cap_address_space(extra: int = ADDRESS_SPACE_CAP) -> int:
    """Limit this process's address space to what it uses now plus ``extra``: a bigger allocation fails."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = vm + extra
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def _quiet_torch() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


def fuzz_atheris(target: str, seconds: int, corpus: Path, timeout: int, stats: Path) -> int:
    import atheris

    import numpy  # noqa: F401  (third-party imports stay uninstrumented)
    import torch  # noqa: F401

    _quiet_torch()
    with atheris.instrument_imports(include=list(PROJECT_PACKAGES)):
        import bitstream.container  # noqa: F401
        import codec.bitstream_io  # noqa: F401
        import codec.decoder  # noqa: F401
        import codec.y4m  # noqa: F401
        import inr.model  # noqa: F401
    write_seeds(target, corpus)
    fn = TARGETS[target]
    count = [0]
    start = time.monotonic()

    last = [start]

    def one(data: bytes) -> None:
        count[0] += 1
        now = time.monotonic()
        if now - last[0] > 2:  # libFuzzer ends the process with exit(): keep the count on disk as we go
            last[0] = now
            _write_stats(stats, target, "atheris", count[0], now - start)
        fn(data)

    cap_address_space()
    artifacts = corpus.parent / f"{target}-crashes"
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", f"-timeout={timeout}", "-rss_limit_mb=8192",
            "-max_len=8192", "-print_final_stats=1", f"-artifact_prefix={artifacts}/"]
    atheris.Setup(args, one)
    atheris.Fuzz()
    return 0


def _write_stats(stats: Path, target: str, engine: str, inputs: int, seconds: float) -> None:
    stats.write_text(json.dumps({"target": target, "engine": engine, "inputs": inputs, "seconds": round(seconds, 1)}))


def fuzz_hypothesis(target: str, seconds: int, corpus: Path, timeout: int, stats: Path) -> int:
    """Fallback without atheris: hypothesis-driven mutations of the seeds for ``seconds`` seconds."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    _quiet_torch()
    write_seeds(target, corpus)
    cap_address_space()
    fn = TARGETS[target]
    seeds = seeds_for(target)
    count = [0]
    kept: list[bytes] = []
    ops = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]),
                             st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)

    @settings(max_examples=500, deadline=timeout * 1000, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(seeds), ops, st.booleans())
    def check(seed: bytes, mutation: list, resealed: bool) -> None:
        data = mutate_bytes(seed, mutation)
        if target == "decode":
            data = bytes([int(resealed)]) + data[1:]
        count[0] += 1
        if len(kept) < 2000:
            kept.append(data)
        elif random.random() < 0.01:
            kept[random.randrange(len(kept))] = data
        fn(data)

    start = time.monotonic()
    while time.monotonic() - start < seconds:
        check()
    for data in kept:
        (corpus / f"kept-{zlib.crc32(data):08x}").write_bytes(data)
    _write_stats(stats, target, "hypothesis", count[0], time.monotonic() - start)
    return 0


def line_coverage(target: str, corpus_dirs: list[Path]) -> dict[str, Any]:
    """Replay a corpus under sys.settrace; lines run / executable lines of each project module it reached."""
    import numpy  # noqa: F401
    import torch  # noqa: F401

    _quiet_torch()
    fn = TARGETS[target]
    fn(b"")  # import what the target imports before tracing
    roots = tuple(str(ROOT / p) + os.sep for p in PROJECT_PACKAGES)
    hit: dict[str, set[int]] = {}

    def tracer(frame, event, arg):
        filename = frame.f_code.co_filename
        if not filename.startswith(roots):
            return None
        lines = hit.setdefault(filename, set())

        def local(frame, event, arg):
            if event == "line":
                lines.add(frame.f_lineno)
            return local

        lines.add(frame.f_lineno)
        return local

    files = sorted({p for d in corpus_dirs if d.is_dir() for p in d.iterdir() if p.is_file()})
    sys.settrace(tracer)
    try:
        for path in files:
            try:
                fn(path.read_bytes())
            except Exception:  # a crash input: coverage only
                pass
    finally:
        sys.settrace(None)
    report = {}
    total_hit = total_lines = 0
    for name in TARGET_MODULES[target]:
        filename = str(ROOT / name)
        executable = _executable_lines(filename)
        covered = len(hit.get(filename, set()) & executable)
        total_hit += covered
        total_lines += len(executable)
        report[name] = [covered, len(executable)]
    return {"target": target, "inputs": len(files), "lines": [total_hit, total_lines], "files": report}


def _executable_lines(filename: str) -> set[int]:
    source = Path(filename).read_text()
    code = compile(source, filename, "exec")
    lines: set[int] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        lines.update(line for _, _, line in c.co_lines() if line is not None)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_lines"))
    # Module and class bodies run at import, before tracing: count only lines inside functions.
    body: set[int] = set()
    stack = [k for k in code.co_consts if hasattr(k, "co_lines")]
    while stack:
        c = stack.pop()
        if c.co_flags & 0x2:  # CO_NEWLOCALS: a function, not a class body
            body.update(line for _, _, line in c.co_lines() if line is not None)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_lines"))
    return body & lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fuzz", help="fuzz one target for a given time")
    f.add_argument("target", choices=sorted(TARGETS))
    f.add_argument("--seconds", type=int, default=60)
    f.add_argument("--corpus", type=Path, required=True)
    f.add_argument("--timeout", type=int, default=20, help="seconds allowed per input")
    f.add_argument("--stats", type=Path, required=True, help="JSON file for the input count")
    f.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    c = sub.add_parser("coverage", help="line coverage a corpus reaches")
    c.add_argument("target", choices=sorted(TARGETS))
    c.add_argument("corpus", type=Path, nargs="+")
    c.add_argument("--json", type=Path, default=None)
    args, rest = parser.parse_known_args(argv)
    if args.cmd == "coverage":
        report = line_coverage(args.target, args.corpus)
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
        hit, total = report["lines"]
        print(f"{args.target}: {report['inputs']} corpus inputs reach {hit}/{total} lines "
              f"({100 * hit / max(total, 1):.1f}%) in functions of the {len(report['files'])} modules it targets")
        for name, (h, t) in report["files"].items():
            print(f"  {name:<28} {h:>4}/{t:<4} {100 * h / max(t, 1):5.1f}%")
        return 0
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    run = fuzz_atheris if engine == "atheris" else fuzz_hypothesis
    sys.argv = [sys.argv[0]] + rest
    return run(args.target, args.seconds, args.corpus, args.timeout, args.stats)


if __name__ == "__main__":
    sys.exit(main())
