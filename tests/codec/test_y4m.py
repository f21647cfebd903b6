"""Strict Y4M reader/writer: round trips of every format, byte identity, every refusal, limits before allocation."""
from __future__ import annotations

import io
import tracemalloc

import av
import numpy as np
import pytest

from codec.video import Video, VideoFormat, VideoFormatError
from codec.y4m import Y4MLimits, parse_y4m_header, read_y4m, write_y4m, y4m_header

# (C value as written, chroma, bit depth)
C_VALUES = [
    ("420jpeg", "420jpeg", 8),
    ("420mpeg2", "420mpeg2", 8),
    ("420paldv", "420paldv", 8),
    ("420", "420", 8),
    ("422", "422", 8),
    ("444", "444", 8),
    ("mono", "mono", 8),
    ("420p10", "420", 10),
    ("422p10", "422", 10),
    ("444p10", "444", 10),
    ("mono10", "mono", 10),
    ("420p12", "420", 12),
    ("422p12", "422", 12),
    ("444p12", "444", 12),
    ("mono12", "mono", 12),
]
SIZES = [(8, 6), (7, 5), (1, 1), (33, 17)]


def random_video(fmt: VideoFormat, frames: int = 3, seed: int = 0) -> Video:
    rng = np.random.default_rng(seed)
    planes = [rng.integers(0, fmt.max_value + 1, (frames, h, w), dtype=fmt.dtype) for h, w in fmt.plane_shapes]
    return Video(fmt, planes)


def y4m_bytes(header: str, payloads: list[bytes], frame_line: bytes = b"FRAME\n") -> bytes:
    return header.encode() + b"\n" + b"".join(frame_line + p for p in payloads)


def gray_payload(fmt: VideoFormat, value: int = 0) -> bytes:
    count = fmt.frame_bytes // fmt.bytes_per_sample
    return np.full(count, value, np.uint8 if fmt.bit_depth == 8 else "<u2").tobytes()


@pytest.mark.parametrize("c_value, chroma, depth", C_VALUES, ids=[c[0] for c in C_VALUES])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_round_trip_is_exact_and_byte_identical(tmp_path, c_value, chroma, depth, size):
    fmt = VideoFormat(size[0], size[1], 30000, 1001, chroma, depth, (1, 1), ("COLORRANGE=LIMITED",))
    video = random_video(fmt)
    first, second = tmp_path / "a.y4m", tmp_path / "b.y4m"
    write_y4m(first, video)
    assert first.read_bytes().startswith(f"YUV4MPEG2 W{size[0]} H{size[1]} F30000:1001 Ip A1:1 C{c_value} ".encode())
    back = read_y4m(first)
    assert back.format == fmt
    for got, want in zip(back.planes, video.planes):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    write_y4m(second, back)
    assert second.read_bytes() == first.read_bytes()


def test_handwritten_file_is_reproduced_byte_for_byte(tmp_path):
    fmt = VideoFormat(5, 3, 50, 2, "420mpeg2", 8)
    raw = y4m_bytes("YUV4MPEG2 W5 H3 F50:2 Ip A128:117 C420mpeg2 XYSCSS=420MPEG2 XCOLORRANGE=FULL X",
                    [bytes(range(fmt.frame_bytes)), bytes(fmt.frame_bytes)])
    source, out = tmp_path / "in.y4m", tmp_path / "out.y4m"
    source.write_bytes(raw)
    video = read_y4m(source)
    assert video.format.x_tags == ("YSCSS=420MPEG2", "COLORRANGE=FULL", "")
    assert (video.format.fps_num, video.format.fps_den, video.format.aspect) == (50, 2, (128, 117))
    write_y4m(out, video)
    assert out.read_bytes() == raw


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p12le", "gray10le", "yuv420p10le"])
def test_reads_and_reproduces_ffmpeg_output(tmp_path, pix_fmt):
    """FFmpeg's own Y4M muxer (through PyAV) writes files we read and rewrite byte for byte."""
    path = tmp_path / "ff.y4m"
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format="yuv4mpegpipe", options={"strict": "-1"}) as out:
        stream = out.add_stream("wrapped_avframe", rate=25)
        stream.width, stream.height, stream.pix_fmt = 33, 17, pix_fmt
        for i in range(2):
            frame = av.VideoFrame(33, 17, pix_fmt)
            for plane in frame.planes:
                depth = 8 if pix_fmt in ("yuv420p", "yuv422p") else int(pix_fmt[-4:-2])
                samples = rng.integers(0, 2**depth, plane.buffer_size // (1 if depth == 8 else 2))
                plane.update(samples.astype(np.uint8 if depth == 8 else "<u2").tobytes())
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    video = read_y4m(path)
    assert video.num_frames == 2
    write_y4m(tmp_path / "again.y4m", video)
    assert (tmp_path / "again.y4m").read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "header, expect",
    [
        ("YUV4MPEG2 W4 H2", ("420jpeg", 8, 25, 1, (0, 0), "?")),
        ("YUV4MPEG2 W4 H2 F0:0 I? A0:0", ("420jpeg", 8, 25, 1, (0, 0), "?")),
        ("YUV4MPEG2  W4 H2 F24:1 Ip A10:11 Cmono XA=B", ("mono", 8, 24, 1, (10, 11), "p")),
        ("YUV4MPEG2 C444p10 H2 W4 F60000:1001", ("444", 10, 60000, 1001, (0, 0), "?")),
    ],
)
def test_header_defaults_and_tag_order(header, expect):
    fmt, interlace = parse_y4m_header(header.encode() + b"\n")
    assert (fmt.chroma, fmt.bit_depth, fmt.fps_num, fmt.fps_den, fmt.aspect, interlace) == expect
    assert (fmt.width, fmt.height) == (4, 2)


def test_header_writer_and_parser_agree():
    fmt = VideoFormat(17, 9, 24000, 1001, "422", 12, (4, 3), ("COLORRANGE=FULL",))
    assert parse_y4m_header(y4m_header(fmt)) == (fmt, "p")


def test_frame_parameters_are_accepted_and_dropped(tmp_path):
    fmt = VideoFormat(4, 2, 25, 1, "444", 8)
    path = tmp_path / "p.y4m"
    path.write_bytes(y4m_bytes("YUV4MPEG2 W4 H2 F25:1 Ip A0:0 C444", [gray_payload(fmt, 9)] * 2, b"FRAME Ip XFOO\n"))
    video = read_y4m(path)
    assert video.num_frames == 2 and int(video.planes[2][1, 1, 3]) == 9


def test_reads_file_objects_and_non_seekable_streams():
    fmt = VideoFormat(6, 4, 25, 1, "420", 10)
    video = random_video(fmt, frames=5)
    raw = io.BytesIO()
    raw.write(y4m_header(fmt))
    for t in range(5):
        raw.write(b"FRAME\n" + b"".join(p[t].astype("<u2").tobytes() for p in video.planes))

    class Pipe(io.RawIOBase):  # readable, not seekable, short reads
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self.data.read(min(len(buffer), 7))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    for source in (io.BytesIO(raw.getvalue()), io.BufferedReader(Pipe(raw.getvalue())), Pipe(raw.getvalue())):
        back = read_y4m(source)
        assert all(np.array_equal(a, b) for a, b in zip(back.planes, video.planes))
    assert read_y4m(io.BytesIO(raw.getvalue()), max_frames=2).num_frames == 2


FMT420 = VideoFormat(4, 2, 25, 1, "420jpeg", 8)
FMT10 = VideoFormat(4, 2, 25, 1, "420", 10)
GOOD = "YUV4MPEG2 W4 H2 F25:1 Ip A0:0 C420jpeg"


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty file"),
        (b"YUV4MPEG W4 H2\nFRAME\n" + bytes(12), "not a Y4M file"),
        (b"RIFF....WAVEfmt \n", "not a Y4M file"),
        (y4m_bytes("YUV4MPEG2 H2 C420", [bytes(12)]), "missing W"),
        (y4m_bytes("YUV4MPEG2 W4 C420", [bytes(12)]), "missing H"),
        (y4m_bytes("YUV4MPEG2 W0 H2", [bytes(12)]), "W must be an integer in 1..16384"),
        (y4m_bytes("YUV4MPEG2 W-4 H2", [bytes(12)]), "W must be"),
        (y4m_bytes("YUV4MPEG2 W4 H16385", [bytes(12)]), "H must be an integer in 1..16384"),
        (y4m_bytes("YUV4MPEG2 W4 H2 It", [bytes(12)]), "interlaced video (It)"),
        (y4m_bytes("YUV4MPEG2 W4 H2 Ib", [bytes(12)]), "interlaced video (Ib)"),
        (y4m_bytes("YUV4MPEG2 W4 H2 Im", [bytes(12)]), "interlaced video (Im)"),
        (y4m_bytes("YUV4MPEG2 W4 H2 Ix", [bytes(12)]), "malformed I tag"),
        (y4m_bytes("YUV4MPEG2 W4 H2 C411", [bytes(12)]), "unknown C tag 'C411'"),
        (y4m_bytes("YUV4MPEG2 W4 H2 C420p16", [bytes(24)]), "unknown C tag"),
        (y4m_bytes("YUV4MPEG2 W4 H2 C444alpha", [bytes(64)]), "C444alpha"),
        (y4m_bytes("YUV4MPEG2 W4 H2 F25", [bytes(12)]), "malformed F tag"),
        (y4m_bytes("YUV4MPEG2 W4 H2 Fx:1", [bytes(12)]), "malformed F tag"),
        (y4m_bytes("YUV4MPEG2 W4 H2 F25:0", [bytes(12)]), "zero denominator"),
        (y4m_bytes("YUV4MPEG2 W4 H2 A1", [bytes(12)]), "malformed A tag"),
        (y4m_bytes("YUV4MPEG2 W4 H2 A1:-1", [bytes(12)]), "malformed A tag"),
        (y4m_bytes("YUV4MPEG2 W4 H2 Z9", [bytes(12)]), "unknown tag"),
        (y4m_bytes("YUV4MPEG2 W4 H2 W4", [bytes(12)]), "duplicate W"),
        (y4m_bytes("YUV4MPEG2 W4 H2 Xcaf\xe9", [bytes(12)]), "not printable ASCII"),
        (y4m_bytes("YUV4MPEG2 W4 H2\r", [bytes(12)]), "byte 0x0d"),
        (b"YUV4MPEG2 W4 H2", "header: truncated line"),
        (b"\x00" * 5000, "header: not a Y4M file"),
        (b"YUV4MPEG2\n", "header: missing W"),
        (b"YUV4MPEG2X W4 H2\n", "header: not a Y4M file"),
        (y4m_bytes(GOOD, []), "no frames"),
        (y4m_bytes(GOOD, [bytes(12), bytes(11)]), "frame 1: truncated (got 11 of 12 bytes)"),
        (y4m_bytes(GOOD, [bytes(12)]) + b"FRAME", "frame 1: truncated line"),
        (y4m_bytes(GOOD, [bytes(12)]) + b"FRAMES\n" + bytes(12), "frame 1: expected a 'FRAME' line"),
        (y4m_bytes(GOOD, [bytes(12)]) + bytes(12), "frame 1: expected a 'FRAME' line"),
        (y4m_bytes(GOOD, [bytes(12)], b"FRAME " + b"x" * 5000 + b"\n"), "longer than max_header_bytes=4096"),
        (b"YUV4MPEG2 W4 H2 X" + b"a" * 5000 + b"\n", "header: line longer than max_header_bytes=4096"),
        (y4m_bytes("YUV4MPEG2 W4 H2 C420p10", [gray_payload(FMT10, 1023), gray_payload(FMT10, 1024)]),
         "frame 1: sample 1024 in plane Y at row 0, column 0 exceeds the 10-bit maximum 1023"),
    ],
)
def test_malformed_files_are_refused_with_one_line(tmp_path, raw, message):
    path = tmp_path / "bad.y4m"
    path.write_bytes(raw)
    with pytest.raises(VideoFormatError) as info:
        read_y4m(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_out_of_range_sample_is_located_in_chroma():
    samples = np.zeros(FMT10.frame_bytes // 2, "<u2")
    samples[4 * 2 + 1] = 4095  # second plane (Cb), its only sample
    raw = y4m_bytes("YUV4MPEG2 W4 H2 C420p10", [samples.tobytes()])
    with pytest.raises(VideoFormatError, match="sample 4095 in plane Cb at row 0, column 1"):
        read_y4m(io.BytesIO(raw))


def test_missing_file_is_a_video_format_error(tmp_path):
    with pytest.raises(VideoFormatError, match="cannot open"):
        read_y4m(tmp_path / "nope.y4m")


def test_huge_header_is_refused_before_allocating(tmp_path):
    raw = y4m_bytes("YUV4MPEG2 W16384 H16384 C444p12", [bytes(1000)])
    with pytest.raises(VideoFormatError, match="over max_total_bytes=1000000"):
        read_y4m(io.BytesIO(raw), limits=Y4MLimits(max_total_bytes=10**6))
    tracemalloc.start()
    try:
        with pytest.raises(VideoFormatError, match=r"frame 0: truncated \(got 1000 of 1610612736 bytes\)"):
            read_y4m(io.BytesIO(raw))  # default limits: 1.6 GB frames are allowed, but the file is tiny
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10**6


def test_frame_and_byte_limits():
    raw = y4m_bytes(GOOD, [bytes(12)] * 3)
    with pytest.raises(VideoFormatError, match="frame 2: more than max_frames=2"):
        read_y4m(io.BytesIO(raw), limits=Y4MLimits(max_frames=2))
    assert read_y4m(io.BytesIO(raw), max_frames=2, limits=Y4MLimits(max_frames=2)).num_frames == 2
    with pytest.raises(VideoFormatError, match="3 frames of 12 bytes exceed max_total_bytes=24"):
        read_y4m(io.BytesIO(raw), limits=Y4MLimits(max_total_bytes=24))
    assert read_y4m(io.BytesIO(raw), max_frames=2, limits=Y4MLimits(max_total_bytes=24)).num_frames == 2

    class Stream(io.BytesIO):
        def seekable(self) -> bool:
            return False

    with pytest.raises(VideoFormatError, match="frame 2: more than max_total_bytes=24"):
        read_y4m(Stream(raw), limits=Y4MLimits(max_total_bytes=24))


@pytest.mark.parametrize("bad", [{"max_frames": 0}, {"max_width": -1}, {"max_total_bytes": 1.5}])
def test_limits_validate(bad):
    with pytest.raises(ValueError, match="Y4MLimits"):
        Y4MLimits(**bad)


def test_writer_refuses_what_the_reader_would(tmp_path):
    path = tmp_path / "out.y4m"
    path.write_bytes(b"old")
    video = random_video(FMT10)
    video.planes[1][0, 0, 0] = 1024
    with pytest.raises(ValueError, match="plane 1 has sample 1024"):
        write_y4m(path, video)
    with pytest.raises(ValueError, match="siting variants are 8-bit only"):
        write_y4m(path, random_video(VideoFormat(4, 2, 25, 1, "420jpeg", 10)))
    with pytest.raises(ValueError, match="header of"):
        write_y4m(path, random_video(VideoFormat(4, 2, 25, 1, "420", 8, x_tags=("a" * 5000,))))
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.y4m"]


def test_bad_max_frames_argument():
    with pytest.raises(ValueError, match="max_frames"):
        read_y4m(io.BytesIO(y4m_bytes(GOOD, [bytes(12)])), max_frames=0)
