"""Tests for eval.datasets: manifests, raw-YUV names and files, matching files to manifests, downscaling."""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from codec.video import Video, VideoFormat, VideoFormatError
from codec.y4m import write_y4m
from eval.datasets import (MANIFESTS, MCL_JCV, UVG, Manifest, MissingSequencesError, RawGeometry, SequenceSpec,
                           downscale, find_sequences, get_manifest, parse_raw_name, raw_frame_count, read_raw_yuv)

RNG = np.random.default_rng(7)


def _video(w: int, h: int, t: int, bit_depth: int = 8, chroma: str = "420", fps: int = 30) -> Video:
    fmt = VideoFormat(w, h, fps, 1, chroma, bit_depth)
    planes = [RNG.integers(0, fmt.max_value + 1, (t, ph, pw)).astype(fmt.dtype) for ph, pw in fmt.plane_shapes]
    return Video(fmt, planes)


def _raw_bytes(video: Video) -> bytes:
    dtype = np.dtype(video.format.dtype).newbyteorder("<")
    return b"".join(p[i].astype(dtype).tobytes() for i in range(video.num_frames) for p in video.planes)


# ------------------------------------------------------------------------------------------------ manifests


def test_uvg_manifest():
    assert [s.name for s in UVG] == ["Beauty", "Bosphorus", "HoneyBee", "Jockey", "ReadySteadyGo", "ShakeNDry",
                                     "YachtRide"]
    assert all((s.width, s.height, s.fps, s.bit_depth, s.chroma) == (1920, 1080, 120, 8, "420") for s in UVG)
    assert {s.name: s.frames for s in UVG if s.frames != 600} == {"ShakeNDry": 300}
    assert UVG["beauty"].file_name == "Beauty_1920x1080_120fps_420_8bit_YUV.yuv"
    assert UVG.total_frames == 3900


def test_mcljcv_manifest():
    assert len(MCL_JCV) == 30
    assert [s.name for s in MCL_JCV] == [f"videoSRC{i:02d}" for i in range(1, 31)]
    for s in MCL_JCV:
        assert (s.width, s.height, s.bit_depth, s.chroma) == (1920, 1080, 8, "420")
        assert s.fps in (24, 25, 30) and s.frames == 5 * s.fps  # five seconds each: 120..150 frames
    assert MCL_JCV["videoSRC05"].file_name == "videoSRC05_1920x1080_25.yuv"


@pytest.mark.parametrize("manifest", list(MANIFESTS.values()), ids=list(MANIFESTS))
def test_manifest_file_names_parse_to_their_geometry(manifest):
    for s in manifest:
        assert parse_raw_name(s.file_name) == RawGeometry(s.width, s.height, s.fps, s.bit_depth, s.chroma)


def test_get_manifest():
    assert get_manifest("UVG") is UVG and get_manifest("mcljcv") is MCL_JCV and get_manifest("MCL_JCV") is MCL_JCV
    with pytest.raises(KeyError, match="unknown dataset 'hevc'"):
        get_manifest("hevc")


# ------------------------------------------------------------------------------------------------ raw names


@pytest.mark.parametrize("name, expected", [
    ("Beauty_1920x1080_120fps_420_8bit_YUV.yuv", (1920, 1080, Fraction(120), 8, "420")),
    ("ReadySteadyGo_1920x1080_120fps_420_10bit_YUV.yuv", (1920, 1080, Fraction(120), 10, "420")),
    ("videoSRC01_1920x1080_30.yuv", (1920, 1080, Fraction(30), 8, "420")),
    ("/data/uvg/JOCKEY_1920X1080_120FPS_420_8BIT_YUV.YUV", (1920, 1080, Fraction(120), 8, "420")),
    ("clip-352x288-29.97fps-yuv422p10le.yuv", (352, 288, Fraction(30000, 1001), 10, "422")),
    ("Seq 01_640x360_50hz_444_12bit.raw", (640, 360, Fraction(50), 12, "444")),
    ("mono_64x48_25_400.yuv", (64, 48, Fraction(25), 8, "mono")),
])
def test_parse_raw_name_good(name, expected):
    assert parse_raw_name(name) == RawGeometry(*expected)


@pytest.mark.parametrize("name, message", [
    ("Beauty.yuv", r"size missing .*fps missing"),
    ("Beauty_1920x1080.yuv", r"fps missing"),
    ("a_1920x1080_1280x720_30.yuv", r"size is ambiguous \(1280x720, 1920x1080\)"),
    ("a_1920x1080_30fps_8bit_10bit.yuv", r"bit depth is ambiguous"),
    ("a_640x480_30_25.yuv", r"fps is ambiguous"),
    ("a_640x480_30fps_420_444.yuv", r"chroma is ambiguous"),
    ("a_640x480_30fps_9bit.yuv", r"bit depth 9 unsupported"),
])
def test_parse_raw_name_bad(name, message):
    with pytest.raises(ValueError, match=message):
        parse_raw_name(name)


def test_parse_raw_name_defaults_can_be_required():
    assert parse_raw_name("x_64x48.yuv", fps=25).fps == 25
    with pytest.raises(ValueError, match=r"bit depth missing .*chroma missing"):
        parse_raw_name("x_64x48_30.yuv", bit_depth=None, chroma=None)


# ------------------------------------------------------------------------------------------------ raw files


@pytest.mark.parametrize("bit_depth, chroma", [(8, "420"), (10, "420"), (8, "444"), (12, "mono")])
def test_read_raw_yuv_round_trip(tmp_path, bit_depth, chroma):
    video = _video(10, 6, 5, bit_depth, chroma)
    path = tmp_path / "x.yuv"
    path.write_bytes(_raw_bytes(video))
    geometry = RawGeometry(10, 6, Fraction(30), bit_depth, chroma)
    assert raw_frame_count(path, geometry) == 5
    back = read_raw_yuv(path, geometry)
    assert back.format == video.format
    for a, b in zip(back.planes, video.planes):
        np.testing.assert_array_equal(a, b)
    first = read_raw_yuv(path, geometry, frames=2)
    assert first.num_frames == 2
    np.testing.assert_array_equal(first.planes[-1], video.planes[-1][:2])


def test_read_raw_yuv_geometry_from_name(tmp_path):
    video = _video(8, 4, 3)
    path = tmp_path / "seq_8x4_30fps_420_8bit.yuv"
    path.write_bytes(_raw_bytes(video))
    np.testing.assert_array_equal(read_raw_yuv(path).planes[0], video.planes[0])


def test_read_raw_yuv_rejects(tmp_path):
    geometry = RawGeometry(8, 4, Fraction(30))  # 48 bytes a frame
    path = tmp_path / "x.yuv"
    path.write_bytes(bytes(48 * 2 + 5))
    with pytest.raises(VideoFormatError, match="not a whole number of 8x4 8-bit 420 frames of 48 bytes"):
        read_raw_yuv(path, geometry)
    path.write_bytes(bytes(48 * 2))
    with pytest.raises(VideoFormatError, match="asked for 3 frames, the file has 2"):
        read_raw_yuv(path, geometry, frames=3)
    path.write_bytes(b"")
    with pytest.raises(VideoFormatError, match="empty"):
        read_raw_yuv(path, geometry)
    path.write_bytes(np.full(48, 1024, "<u2").tobytes())
    with pytest.raises(VideoFormatError, match="samples above 1023"):
        read_raw_yuv(path, dataclasses.replace(geometry, bit_depth=10))
    with pytest.raises(VideoFormatError, match="cannot open"):
        read_raw_yuv(tmp_path / "missing.yuv", geometry)


# ------------------------------------------------------------------------------------------------ downscale


@pytest.mark.parametrize("w, h, chroma, factor, out", [
    (1920, 1080, "420", 2, (960, 540)),
    (1920, 1080, "420", 4, (480, 270)),
    (1920, 1080, "420", 8, (240, 134)),  # 135 rounded down to even
    (20, 12, "420", 3, (6, 4)),
    (22, 14, "422", 4, (4, 3)),
    (21, 13, "444", 4, (5, 3)),
    (21, 13, "mono", 2, (10, 6)),
])
def test_downscale_shapes(w, h, chroma, factor, out):
    video = _video(w, h, 1, chroma=chroma) if w * h < 1000 else Video(
        VideoFormat(w, h, 120, 1, chroma, 8),
        [np.zeros((1, ph, pw), np.uint8) for ph, pw in VideoFormat(w, h, 120, 1, chroma, 8).plane_shapes])
    small = downscale(video, factor)
    assert (small.format.width, small.format.height) == out
    assert [p.shape[1:] for p in small.planes] == small.format.plane_shapes
    assert small.format.fps_num == video.format.fps_num


def test_downscale_averages_areas():
    fmt = VideoFormat(4, 4, 30, 1, "420", 10)
    y = np.array([[0, 2, 10, 10], [4, 5, 10, 11], [7, 7, 1000, 1000], [7, 7, 1000, 1001]], np.uint16)[None]
    u = np.array([[1, 3], [5, 8]], np.uint16)[None]
    small = downscale(Video(fmt, [y, u, u.copy()]), 2)
    assert small.format == dataclasses.replace(fmt, width=2, height=2)
    np.testing.assert_array_equal(small.planes[0][0], [[3, 10], [7, 1000]])  # 2.75 -> 3, 10.25 -> 10, 1000.25
    np.testing.assert_array_equal(small.planes[1][0], [[4]])  # (1 + 3 + 5 + 8) / 4 = 4.25
    assert small.planes[0].dtype == np.uint16
    assert downscale(small, 1) is small
    with pytest.raises(ValueError, match="positive int"):
        downscale(small, 0)
    with pytest.raises(ValueError, match="leaves no"):
        downscale(small, 4)


# ------------------------------------------------------------------------------------------ finding files


def _tiny_manifest() -> Manifest:
    return Manifest("Tiny", (
        SequenceSpec("Alpha", 16, 8, Fraction(30), 4, "Alpha_16x8_30fps_420_8bit_YUV.yuv"),
        SequenceSpec("Beta", 16, 8, Fraction(25), 3, "Beta_16x8_25fps_420_8bit_YUV.yuv"),
        SequenceSpec("Gamma", 16, 8, Fraction(24), None, "Gamma_16x8_24.yuv"),
    ))


def test_find_sequences_matches_and_reads(tmp_path):
    alpha, beta, gamma = _video(16, 8, 4, fps=30), _video(16, 8, 3, fps=25), _video(16, 8, 7, fps=24)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ALPHA_16X8_30FPS_420_8BIT_YUV.YUV").write_bytes(_raw_bytes(alpha))  # any case, sub-folder
    write_y4m(tmp_path / "beta.y4m", beta)
    (tmp_path / "Gamma_16x8_24.yuv").write_bytes(_raw_bytes(gamma))
    (tmp_path / "Alphabet_16x8_30.yuv").write_bytes(bytes(10))  # not Alpha: no separator after the name
    (tmp_path / "notes.txt").write_text("ignored")
    sources = find_sequences(tmp_path, _tiny_manifest())
    assert [(s.name, s.kind, s.file_frames, s.frames) for s in sources] == [
        ("Alpha", "yuv", 4, 4), ("Beta", "y4m", 3, 3), ("Gamma", "yuv", 7, 7)]  # Gamma: count from the file
    for source, video in zip(sources, (alpha, beta, gamma)):
        back = source.read()
        assert back.format.width == 16 and back.num_frames == video.num_frames
        np.testing.assert_array_equal(back.planes[0], video.planes[0])
    assert sources[1].format.fps_num == 25

    capped = find_sequences(tmp_path, _tiny_manifest(), frames=2, downscale=2, only=["gamma"])
    assert [s.name for s in capped] == ["Gamma"]
    small = capped[0].read()
    assert (small.format.width, small.format.height, small.num_frames) == (8, 4, 2)
    assert capped[0].output_format == small.format
    np.testing.assert_array_equal(small.planes[0], downscale(gamma.frames(0, 2), 2).planes[0])


def test_find_sequences_reports_what_is_missing(tmp_path):
    with pytest.raises(MissingSequencesError) as info:
        find_sequences(tmp_path, "uvg")
    message = str(info.value)
    assert "UVG: 7 of 7 sequences missing" in message
    for spec in UVG:
        assert spec.file_name in message
    assert "Beauty_1920x1080_120fps_420_8bit_YUV.y4m" in message
    assert set(info.value.problems) == {s.name for s in UVG}
    with pytest.raises(MissingSequencesError, match="does not exist"):
        find_sequences(tmp_path / "nope", "mcl-jcv")


def test_find_sequences_reports_unusable_files(tmp_path):
    (tmp_path / "Alpha_16x8_30fps_420_8bit_YUV.yuv").write_bytes(_raw_bytes(_video(16, 8, 3)))  # 3 of 4 frames
    (tmp_path / "Beta_16x8_25fps_420_10bit_YUV.yuv").write_bytes(bytes(16 * 8 * 3 * 2 * 3 // 2))  # 10-bit
    (tmp_path / "Gamma_16x8_24.yuv").write_bytes(bytes(100))  # not whole frames
    with pytest.raises(MissingSequencesError) as info:
        find_sequences(tmp_path, _tiny_manifest())
    problems = info.value.problems
    assert "has 3 frames, the manifest says 4" in problems["Alpha"]
    assert "10-bit 420, expected 16x8 8-bit 420" in problems["Beta"]
    assert "not a whole number" in problems["Gamma"]
    assert "expected Alpha_16x8_30fps_420_8bit_YUV.yuv" in str(info.value)
    # With a frame cap the short file is enough.
    assert find_sequences(tmp_path, _tiny_manifest(), frames=3, only=["Alpha"])[0].frames == 3


def test_find_sequences_ambiguous_and_canonical(tmp_path):
    video = _video(16, 8, 4)
    (tmp_path / "Alpha_16x8_30.yuv").write_bytes(_raw_bytes(video))
    (tmp_path / "alpha-copy_16x8_30.yuv").write_bytes(_raw_bytes(video))
    with pytest.raises(MissingSequencesError, match="Alpha: ambiguous"):
        find_sequences(tmp_path, _tiny_manifest(), only=["Alpha"])
    (tmp_path / "Alpha_16x8_30fps_420_8bit_YUV.yuv").write_bytes(_raw_bytes(video))  # the canonical name wins
    [source] = find_sequences(tmp_path, _tiny_manifest(), only=["Alpha"])
    assert source.path.name == "Alpha_16x8_30fps_420_8bit_YUV.yuv"
