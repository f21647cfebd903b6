"""Conventional-codec anchors (x264, x265, SVT-AV1) through PyAV, with exact byte counts.

Every anchor is encoded and decoded in memory, without a container:

* **Input.** The source planes go to the encoder as ``av.VideoFrame`` objects in the source's own pixel format
  (``yuv420p``, ``yuv420p10le``, ``yuv444p``, ``gray``, ...): no RGB or bit-depth conversion. A format the
  encoder does not take is refused with :class:`AnchorError` naming the ones it does (SVT-AV1 takes 4:2:0 at 8 and
  10 bits only). Each frame's ``pict_type`` is reset to ``NONE`` before it is sent: FFmpeg's encoder wrappers obey
  a frame's picture type, and frames decoded from Y4M/raw/intra sources all say ``I``, which would make every
  frame an intra frame (see :func:`encode_packets`).
* **Rate.** ``bytes`` is the sum of the sizes of the packets the encoder returns: the raw elementary stream, i.e.
  H.264/HEVC Annex B byte streams (start codes and parameter sets included) and the AV1 low-overhead OBU stream
  (sequence header and temporal delimiters included). Concatenated, the packets are a playable ``.h264`` /
  ``.hevc`` / ``.obu`` file of exactly that size (``AnchorResult.bitstream``). Encoder self-advertisement is not
  counted: x265 runs with ``info=0`` (else a ~2 KB settings SEI is sent), and the version SEI that libx264 always
  writes into its first access unit (user-data-unregistered, x264's UUID, ~600 B of option text) is removed from
  the packets (``AnchorResult.stripped_bytes`` says how much); no other byte is touched. bpp = bytes·8 / (W·H·T)
  over luma pixels.
* **Fixed QP.** ``x264``: libx264 ``preset=veryslow``, constant QP via its ``qp`` option. ``x265``: libx265
  ``preset=veryslow``, ``x265-params=qp=N:info=0:log-level=error`` (x265's own log prints errors only). ``svtav1``:
  libsvtav1 ``preset=8``, the ``qp`` option, which FFmpeg maps to SVT-AV1's CQP mode with adaptive quantisation
  off (a fixed QP per frame type). Preset 8 is chosen for speed on small (2-core) machines: on carphone it codes
  about 2x faster than preset 4 for ~15 % more bits at the same QP; lower presets compress better. SVT-AV1's
  console log is limited to errors through ``SVT_LOG=1`` (unless the environment sets ``SVT_LOG`` already).
  The GOP structure is each encoder's default (one intra frame at the start of a short clip, B-frames / hierarchical
  random access as the preset says) unless ``gop`` sets FFmpeg's ``gop_size`` (``gop=1`` is all-intra).
* **QP scale.** A QP means the same quantiser at every bit depth, as in HEVC: x265 and SVT-AV1 take it as is,
  while x264's own scale grows by 6 per bit above 8, so x264 on 10-bit input is given ``qp`` + 12
  (``AnchorResult.options`` holds what the encoder got).
* **QP ladders.** x264 and x265: QP 22, 27, 32, 37, 42 (the usual CTC ladder). SVT-AV1 (QP 1..63, a quarter of
  AV1's qindex): 23, 32, 41, 50, 59, chosen so that on carphone each point sits at about the bpp of the x265
  point of the same rank (0.23 to 0.020 bpp).
* **Decode.** The packets are decoded by the matching FFmpeg decoder (``h264``, ``hevc``, ``libdav1d``) into planes
  of the source's format; the frame count and pixel format are checked.
* **Timing.** ``encode_seconds`` / ``decode_seconds`` are wall-clock seconds spent inside the encoder / decoder
  calls (copying samples in and out is not counted), with the libraries' default threading.

Reproduction (docs/design.md §6): x265 on carphone (176x144, 120 frames) at QP 32 gives 0.0656 bpp, YUV-PSNR 37.15 dB —
``python -m eval.anchors --codec x265 --qp 32``.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from codec.video import Video, VideoFormat

X264_UUID = bytes.fromhex("dc45e9bde6d948b7962cd820d923eeef")  # x264's user-data-unregistered SEI UUID


class AnchorError(ValueError):
    """An anchor cannot be encoded or decoded as asked (unknown codec, unsupported format, bad QP, lost frames)."""


@dataclass(frozen=True)
class AnchorSpec:
    """One conventional codec: FFmpeg encoder/decoder names, fixed-QP options and the default QP ladder."""

    name: str
    encoder: str  # FFmpeg encoder name
    decoder: str  # FFmpeg decoder name for its elementary stream
    demuxer: str  # FFmpeg demuxer that reads the concatenated packets as a file
    options: tuple[tuple[str, str], ...]  # encoder options; '{qp}' in a value is replaced by the QP
    default_qps: tuple[int, ...]
    qp_range: tuple[int, int]  # inclusive
    description: str
    strip_x264_sei: bool = False
    qp_depth_offset: bool = False  # the encoder's QP scale grows by 6 per bit above 8 (x264)

    def encoder_options(self, qp: int, bit_depth: int = 8) -> dict[str, str]:
        """Encoder options for ``qp`` on the 8-bit scale (x264 at 10 bits gets qp + 12: the same quantiser)."""
        native = int(qp) + (6 * (bit_depth - 8) if self.qp_depth_offset else 0)
        return {key: value.replace("{qp}", str(native)) for key, value in self.options}


ANCHORS: dict[str, AnchorSpec] = {
    spec.name: spec
    for spec in (
        AnchorSpec(
            "x264", "libx264", "h264", "h264",
            (("preset", "veryslow"), ("qp", "{qp}")),
            (22, 27, 32, 37, 42), (0, 69),
            "libx264 preset veryslow, constant QP (qp option), default GOP; x264 version SEI not counted",
            strip_x264_sei=True, qp_depth_offset=True,
        ),
        AnchorSpec(
            "x265", "libx265", "hevc", "hevc",
            (("preset", "veryslow"), ("x265-params", "qp={qp}:info=0:log-level=error")),
            (22, 27, 32, 37, 42), (0, 51),
            "libx265 preset veryslow, x265-params qp=N:info=0 (constant QP, no settings SEI), default GOP",
        ),
        AnchorSpec(
            "svtav1", "libsvtav1", "libdav1d", "obu",
            (("preset", "8"), ("qp", "{qp}")),
            (23, 32, 41, 50, 59), (1, 63),
            "libsvtav1 preset 8 (speed on 2 cores), CQP via the qp option (AQ off), default GOP; decoded by dav1d",
        ),
    )
}


@dataclass
class AnchorResult:
    """One encoded-and-decoded anchor point. ``decoded`` may be None when a ladder was run without keeping it."""

    codec: str
    qp: int
    bytes: int  # exact size of the elementary stream (sum of packet sizes)
    bpp: float  # bytes * 8 / (width * height * num_frames)
    encode_seconds: float
    decode_seconds: float
    decoded: Video | None = field(repr=False)
    num_frames: int = 0
    width: int = 0
    height: int = 0
    pix_fmt: str = ""
    gop: int | None = None
    options: dict[str, str] = field(default_factory=dict)
    packet_sizes: tuple[int, ...] = field(default=(), repr=False)
    stripped_bytes: int = 0  # encoder self-advertisement removed from the packets (x264 version SEI)
    bitstream: bytes = field(default=b"", repr=False)  # the packets concatenated: a playable elementary stream


def get_anchor(codec: str) -> AnchorSpec:
    """The registry entry for ``codec`` ('x264', 'x265', 'svtav1'; FFmpeg encoder names are accepted too)."""
    if isinstance(codec, AnchorSpec):
        return codec
    key = str(codec).lower()
    for spec in ANCHORS.values():
        if key in (spec.name, spec.encoder):
            return spec
    raise AnchorError(f"unknown anchor codec {codec!r}; expected one of {', '.join(ANCHORS)}")


def pixel_format(fmt: VideoFormat) -> str:
    """FFmpeg pixel format with the same planar layout as ``fmt`` (chroma siting variants are all 4:2:0)."""
    base = {"mono": "gray", "422": "yuv422p", "444": "yuv444p"}.get(fmt.chroma, "yuv420p")
    return base if fmt.bit_depth == 8 else f"{base}{fmt.bit_depth}le"


def _check_encodable(spec: AnchorSpec, fmt: VideoFormat, qp: int) -> str:
    import av

    if isinstance(qp, bool) or not isinstance(qp, (int, np.integer)):
        raise AnchorError(f"{spec.name}: QP must be an int, got {qp!r}")
    lo, hi = spec.qp_range
    if not lo <= qp <= hi:
        raise AnchorError(f"{spec.name}: QP {qp} outside {lo}..{hi}")
    pix_fmt = pixel_format(fmt)
    try:
        codec = av.Codec(spec.encoder, "w")
    except Exception as e:  # noqa: BLE001 - FFmpeg build without this encoder
        raise AnchorError(f"{spec.name}: FFmpeg encoder {spec.encoder} is not available in this PyAV build ({e})")
    supported = [f.name for f in codec.video_formats or ()]
    if pix_fmt not in supported:
        raise AnchorError(
            f"{spec.name}: {spec.encoder} cannot encode {pix_fmt} ({fmt.bit_depth}-bit {fmt.chroma}); "
            f"it takes: {', '.join(supported)}"
        )
    sy, sx = fmt.subsampling
    if fmt.num_planes > 1 and (fmt.width % sx or fmt.height % sy):
        raise AnchorError(
            f"{spec.name}: {fmt.chroma} needs a width divisible by {sx} and a height by {sy}, "
            f"got {fmt.width}x{fmt.height} (crop first)"
        )
    return pix_fmt


def _quiet_svt() -> None:
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 reads it when an encoder opens; 1 = errors only


# ------------------------------------------------------------------------------------------ frames in and out


def video_frames(video: Video, pix_fmt: str | None = None) -> Iterator[Any]:
    """The frames of ``video`` as ``av.VideoFrame`` objects in its own pixel format, pts 0, 1, 2, ..."""
    import av

    fmt = video.format
    pix_fmt = pixel_format(fmt) if pix_fmt is None else pix_fmt
    dtype = np.dtype(fmt.dtype).newbyteorder("<")
    full = "COLORRANGE=FULL" in fmt.x_tags
    for i in range(video.num_frames):
        frame = av.VideoFrame(fmt.width, fmt.height, pix_fmt)
        for plane, src in zip(frame.planes, video.planes):
            h, w = src.shape[1:]
            dst = np.frombuffer(plane, dtype).reshape(-1, plane.line_size // dtype.itemsize)
            dst[:h, :w] = src[i]
        frame.pts = i
        frame.time_base = Fraction(fmt.fps_den, fmt.fps_num)
        if full:
            frame.color_range = 2  # AVCOL_RANGE_JPEG: signalled in the stream's VUI
        yield frame


def _frame_planes(frame: Any, fmt: VideoFormat) -> list[np.ndarray]:
    dtype = np.dtype(fmt.dtype).newbyteorder("<")
    out = []
    for plane, (h, w) in zip(frame.planes, fmt.plane_shapes):
        data = np.frombuffer(plane, dtype)
        out.append(data.reshape(-1, plane.line_size // dtype.itemsize)[:h, :w])
    return out


def _same_layout(decoded: str, expected: str) -> bool:
    """True when the decoder's pixel format has the expected layout (yuvj420p is yuv420p tagged full-range).

    A monochrome (``gray*``) stream may come back as 4:2:0 with neutral chroma (FFmpeg's H.264 decoder does
    that); its Y plane is the picture.
    """
    if decoded == expected or decoded == expected.replace("yuv", "yuvj", 1):
        return True
    if expected.startswith("gray"):
        return decoded in (expected.replace("gray", "yuv420p"), expected.replace("gray", "yuvj420p"))
    return False


# ------------------------------------------------------------------------------------------ encode / decode


def strip_x264_version_sei(packet: bytes) -> bytes:
    """``packet`` (Annex B) without x264's version SEI NAL unit (user data unregistered with x264's UUID).

    The NAL is removed with its start code; every other byte is kept as it is.
    """
    if X264_UUID not in packet:
        return packet
    starts = []  # (start of the start code incl. a leading zero byte, first byte of the NAL)
    pos = packet.find(b"\x00\x00\x01")
    while pos >= 0:
        prefix = pos - 1 if pos > 0 and packet[pos - 1] == 0 else pos
        starts.append((prefix, pos + 3))
        pos = packet.find(b"\x00\x00\x01", pos + 3)
    keep = bytearray(packet[: starts[0][0]] if starts else packet)
    for i, (prefix, nal) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(packet)
        unit = packet[nal:end]
        if len(unit) > 2 and unit[0] & 0x1F == 6 and unit[1] == 5:  # SEI NAL, first message user_data_unregistered
            j = 2
            while j < len(unit) and unit[j] == 0xFF:
                j += 1
            if unit[j + 1 : j + 17] == X264_UUID:
                continue
        keep += packet[prefix:end]
    return bytes(keep)


def encode_packets(
    frames: Iterable[Any],
    codec: str | AnchorSpec,
    qp: int,
    fmt: VideoFormat,
    *,
    gop: int | None = None,
    reset_pict_type: bool = True,
) -> tuple[list[bytes], float, int]:
    """Encode ``av.VideoFrame`` objects of format ``fmt``; returns (packets, encoder seconds, stripped bytes).

    ``reset_pict_type=False`` keeps each frame's picture type (frames decoded from Y4M are all ``I``, so every
    frame would be coded intra); it exists to show why the reset is needed.
    """
    import av
    from av.video.frame import PictureType

    spec = get_anchor(codec)
    pix_fmt = _check_encodable(spec, fmt, qp)
    if gop is not None and (isinstance(gop, bool) or not isinstance(gop, (int, np.integer)) or gop < 1):
        raise AnchorError(f"gop must be a positive int or None, got {gop!r}")
    if spec.encoder == "libsvtav1":
        _quiet_svt()
    ctx = av.CodecContext.create(spec.encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = fmt.width, fmt.height, pix_fmt
    ctx.time_base = Fraction(fmt.fps_den, fmt.fps_num)
    ctx.framerate = Fraction(fmt.fps_num, fmt.fps_den)
    if "COLORRANGE=FULL" in fmt.x_tags:
        ctx.color_range = 2
    if gop is not None:
        ctx.gop_size = int(gop)
    ctx.options = spec.encoder_options(int(qp), fmt.bit_depth)
    packets: list[bytes] = []
    seconds = 0.0
    for frame in itertools.chain(frames, [None]):  # streamed: a 1080p source is never all in frames at once
        if frame is not None and reset_pict_type:
            frame.pict_type = PictureType.NONE
        start = time.perf_counter()
        try:
            out = ctx.encode(frame)
        except av.FFmpegError as e:
            raise AnchorError(f"{spec.name}: encoding failed: {e}") from None
        seconds += time.perf_counter() - start
        packets.extend(bytes(p) for p in out)
    stripped = 0
    if spec.strip_x264_sei:
        kept = [strip_x264_version_sei(p) for p in packets]
        stripped = sum(map(len, packets)) - sum(map(len, kept))
        packets = kept
    return packets, seconds, stripped


def decode_packets(packets: Sequence[bytes], codec: str | AnchorSpec, fmt: VideoFormat,
                   num_frames: int) -> tuple[Video, float]:
    """Decode an anchor's packets back to a Video of format ``fmt``; exactly ``num_frames`` frames must come out."""
    import av

    spec = get_anchor(codec)
    pix_fmt = pixel_format(fmt)
    ctx = av.CodecContext.create(spec.decoder, "r")
    planes = [np.empty((num_frames, h, w), fmt.dtype) for h, w in fmt.plane_shapes]
    count, seconds = 0, 0.0
    for data in list(packets) + [None]:
        start = time.perf_counter()
        try:
            frames = ctx.decode(None if data is None else av.Packet(data))
        except av.FFmpegError as e:
            raise AnchorError(f"{spec.name}: decoding failed at packet {count}: {e}") from None
        seconds += time.perf_counter() - start
        for frame in frames:
            if count == num_frames:
                raise AnchorError(f"{spec.name}: decoder returned more than the {num_frames} frames encoded")
            size_ok = (frame.width, frame.height) == (fmt.width, fmt.height)
            if not size_ok or not _same_layout(frame.format.name, pix_fmt):
                raise AnchorError(
                    f"{spec.name}: decoded frame {count} is {frame.width}x{frame.height} {frame.format.name}, "
                    f"expected {fmt.width}x{fmt.height} {pix_fmt}"
                )
            for dst, src in zip(planes, _frame_planes(frame, fmt)):
                dst[count] = src
            count += 1
    if count != num_frames:
        raise AnchorError(f"{spec.name}: decoder returned {count} frames, expected {num_frames}")
    return Video(fmt, planes), seconds


def encode_anchor(video: Video, codec: str, qp: int, *, gop: int | None = None) -> AnchorResult:
    """Encode ``video`` with anchor ``codec`` at fixed ``qp``, decode it back, and return the exact rate.

    See the module docstring for what is counted and how. Raises AnchorError for an unknown codec, a format the
    encoder does not take, a QP out of range or a decoder that does not give back every frame.
    """
    spec = get_anchor(codec)
    fmt = video.format
    pix_fmt = _check_encodable(spec, fmt, qp)
    packets, enc_s, stripped = encode_packets(video_frames(video, pix_fmt), spec, qp, fmt, gop=gop)
    decoded, dec_s = decode_packets(packets, spec, fmt, video.num_frames)
    size = sum(map(len, packets))
    return AnchorResult(
        codec=spec.name, qp=int(qp), bytes=size, bpp=size * 8 / (fmt.width * fmt.height * video.num_frames),
        encode_seconds=enc_s, decode_seconds=dec_s, decoded=decoded, num_frames=video.num_frames,
        width=fmt.width, height=fmt.height, pix_fmt=pix_fmt, gop=gop,
        options=spec.encoder_options(int(qp), fmt.bit_depth),
        packet_sizes=tuple(map(len, packets)), stripped_bytes=stripped, bitstream=b"".join(packets),
    )


def run_anchor_ladder(
    video: Video,
    codec: str,
    qps: Iterable[int] | None = None,
    *,
    gop: int | None = None,
    keep_decoded: bool = False,
    **evaluate_kwargs: Any,
) -> list[tuple[AnchorResult, Any]]:
    """Encode ``video`` at each QP (the codec's default ladder when None) and score each against ``video``.

    Returns ``[(AnchorResult, eval.metrics.Metrics)]`` in QP order as given. Metrics come from
    :func:`eval.metrics.evaluate` on the same frames (``evaluate_kwargs`` pass through, e.g. ``msssim=False``).
    The decoded videos are dropped (``decoded=None``) unless ``keep_decoded``, so that a 1080p ladder does not
    hold five decoded copies in memory.
    """
    from eval.metrics import evaluate

    spec = get_anchor(codec)
    out = []
    for qp in spec.default_qps if qps is None else qps:
        result = encode_anchor(video, spec.name, qp, gop=gop)
        metrics = evaluate(video, result.decoded, **evaluate_kwargs)
        if not keep_decoded:
            result = dataclasses.replace(result, decoded=None)
        out.append((result, metrics))
    return out


def ladder_results(ladder: Sequence[tuple[AnchorResult, Any]], name: str | None = None,
                   description: str | None = None):
    """A CompressAI-layout :class:`eval.results.RDResults` curve from :func:`run_anchor_ladder`'s output."""
    from eval.results import RDResults

    if not ladder:
        raise ValueError("ladder_results: empty ladder")
    spec = get_anchor(ladder[0][0].codec)
    rd = RDResults(name or spec.name, spec.description if description is None else description)
    for result, metrics in ladder:
        rd.add_point(bpp=result.bpp, metrics=metrics, encoding_time=result.encode_seconds,
                     decoding_time=result.decode_seconds, qp=result.qp, bytes=result.bytes)
    return rd.sorted_by_bpp()


# ------------------------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m eval.anchors [input] --codec x265 --qp 22,27``: print bpp and PSNR per QP (carphone default)."""
    from codec.video import read_video

    parser = argparse.ArgumentParser(prog="python -m eval.anchors", description=main.__doc__)
    parser.add_argument("input", nargs="?", help="video file (Y4M or anything FFmpeg reads); default carphone")
    parser.add_argument("--codec", default="x265", choices=sorted(ANCHORS))
    parser.add_argument("--qp", help="comma-separated QPs (default: the codec's ladder)")
    parser.add_argument("--frames", type=int, help="first N frames only")
    parser.add_argument("--gop", type=int, help="GOP size (default: the encoder's)")
    parser.add_argument("--json", help="write a CompressAI-layout results file here")
    parser.add_argument("--no-msssim", action="store_true", help="skip MS-SSIM (faster)")
    args = parser.parse_args(argv)
    if args.input is None:
        from codec.clips import carphone_path

        args.input = carphone_path()
    video = read_video(args.input, frames=args.frames)
    qps = None if args.qp is None else [int(q) for q in args.qp.split(",")]
    ladder = run_anchor_ladder(video, args.codec, qps, gop=args.gop, msssim=not args.no_msssim)
    fmt = video.format
    print(f"{args.input}: {fmt.width}x{fmt.height} {video.num_frames} frames, {pixel_format(fmt)}, {args.codec}")
    print(" qp     bytes      bpp  psnr-y  psnr-yuv  ms-ssim   enc s   dec s")
    for r, m in ladder:
        ms = f"{m.ms_ssim:8.5f}" if m.ms_ssim is not None else "       -"
        print(f"{r.qp:3d} {r.bytes:9d} {r.bpp:8.4f} {m.psnr_y:7.2f} {m.psnr_yuv:9.2f} {ms} "
              f"{r.encode_seconds:7.2f} {r.decode_seconds:7.2f}")
    if args.json:
        from eval.results import write_results

        write_results(args.json, ladder_results(ladder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
