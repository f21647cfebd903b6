"""Tests for eval.anchors: exact byte counts, round trips, QP behaviour and the pict_type reset, on a real clip.

The clip is carphone cropped to 96x96, 6 frames: x265 is not deterministic from run to run on one-CTU (64x64)
pictures, so the crop is a little larger than the minimum.
"""
from __future__ import annotations

import dataclasses
import io

import av
import numpy as np
import pytest

from codec.clips import carphone_path, make_clip
from codec.video import Video, read_video
from eval.anchors import (ANCHORS, AnchorError, AnchorResult, encode_anchor, encode_packets, get_anchor,
                          ladder_results, pixel_format, run_anchor_ladder, strip_x264_version_sei)
from eval.metrics import evaluate

CODECS = ("x264", "x265", "svtav1")
CROP = (40, 24, 96, 96)  # x, y, w, h
FRAMES = 6


@pytest.fixture(scope="module")
def clip() -> Video:
    return read_video(carphone_path(), frames=FRAMES).crop(*CROP)


@pytest.fixture(scope="module")
def encoded(clip):
    """codec -> (result at its ladder's lowest QP, result at its fourth QP)."""
    out = {}
    for codec in CODECS:
        ladder = ANCHORS[codec].default_qps
        out[codec] = (encode_anchor(clip, codec, ladder[0]), encode_anchor(clip, codec, ladder[3]))
    return out


def _psnr_yuv(ref: Video, dist: Video) -> float:
    return evaluate(ref, dist, rgb=False, msssim=False).psnr_yuv


def _demux_decode(bitstream: bytes, demuxer: str) -> tuple[int, list[np.ndarray]]:
    """Total demuxed packet bytes and the decoded Y planes, from the bitstream read as a file by FFmpeg."""
    total, ys = 0, []
    with av.open(io.BytesIO(bitstream), format=demuxer) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            total += packet.size
            for frame in packet.decode():
                assert frame.format.name == "yuv420p"
                ys.append(frame.to_ndarray()[: frame.height])  # yuv420p as (H * 3 / 2, W): Y rows first
    return total, ys


def test_registry():
    assert set(ANCHORS) == set(CODECS)
    assert ANCHORS["x264"].default_qps == ANCHORS["x265"].default_qps == (22, 27, 32, 37, 42)
    assert len(ANCHORS["svtav1"].default_qps) == 5
    assert ANCHORS["x265"].encoder_options(27)["x265-params"].startswith("qp=27:info=0")
    assert ANCHORS["x264"].encoder_options(27) == {"preset": "veryslow", "qp": "27"}
    assert ANCHORS["x264"].encoder_options(27, bit_depth=10)["qp"] == "39"  # x264's 10-bit QP scale
    assert get_anchor("libx265") is ANCHORS["x265"]
    with pytest.raises(AnchorError, match="unknown anchor codec 'vp9'.*x264"):
        get_anchor("vp9")


@pytest.mark.parametrize("codec", CODECS)
def test_byte_count_is_the_elementary_stream(encoded, codec):
    for result in encoded[codec]:
        assert isinstance(result, AnchorResult)
        assert result.bytes == sum(result.packet_sizes) == len(result.bitstream) > 0
        assert result.bpp == pytest.approx(result.bytes * 8 / (96 * 96 * FRAMES))
        # Independently: FFmpeg reads the concatenated packets as a file of exactly that many bytes and decodes
        # the same pictures from it alone.
        total, ys = _demux_decode(result.bitstream, ANCHORS[codec].demuxer)
        assert total == result.bytes
        assert len(ys) == FRAMES
        np.testing.assert_array_equal(np.stack(ys), result.decoded.planes[0])


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_shape_and_quality(clip, encoded, codec):
    fine, coarse = encoded[codec]
    for result in (fine, coarse):
        assert result.decoded.format == clip.format
        assert result.num_frames == result.decoded.num_frames == FRAMES
        assert [p.shape for p in result.decoded.planes] == [p.shape for p in clip.planes]
        assert [p.dtype for p in result.decoded.planes] == [p.dtype for p in clip.planes]
        assert result.encode_seconds > 0 and result.decode_seconds > 0
    p_fine, p_coarse = _psnr_yuv(clip, fine.decoded), _psnr_yuv(clip, coarse.decoded)
    assert 38 < p_fine < 55
    assert 25 < p_coarse < p_fine - 3
    assert coarse.bytes < fine.bytes


@pytest.mark.parametrize("codec", ("x264", "x265"))
def test_inter_coding_beats_all_intra(clip, encoded, codec):
    qp = ANCHORS[codec].default_qps[3]
    intra = encode_anchor(clip, codec, qp, gop=1)
    assert intra.bytes > 1.5 * encoded[codec][1].bytes


def test_pict_type_reset_matters(tmp_path, clip):
    """Frames decoded from a Y4M all carry pict_type I; kept, x264 codes every frame intra."""
    path = tmp_path / "clip.y4m"
    make_clip(path, frames=FRAMES, crop=CROP)

    def encode(reset: bool) -> int:
        with av.open(str(path)) as container:
            frames = list(container.decode(video=0))
        assert all(f.pict_type == av.video.frame.PictureType.I for f in frames)
        packets, _, _ = encode_packets(frames, "x264", 32, clip.format, reset_pict_type=reset)
        return sum(map(len, packets))

    reset, kept = encode(True), encode(False)
    all_intra = encode_anchor(clip, "x264", 32, gop=1).bytes
    assert reset < 0.6 * kept
    assert kept == pytest.approx(all_intra, rel=0.15)


def test_encoder_self_advertisement_not_counted(encoded):
    x264 = encoded["x264"][0]
    assert x264.stripped_bytes > 200
    assert b"x264 - core" not in x264.bitstream
    assert b"x265 (build" not in encoded["x265"][0].bitstream  # info=0
    assert encoded["x265"][0].stripped_bytes == 0


def test_strip_x264_sei_keeps_other_units():
    sps, pps = b"\x00\x00\x00\x01\x67\x64\x00\x0c", b"\x00\x00\x00\x01\x68\xe8\x43"
    sei = b"\x00\x00\x01\x06\x05\x12" + bytes.fromhex("dc45e9bde6d948b7962cd820d923eeef") + b"x264 - core\x80"
    other_sei = b"\x00\x00\x01\x06\x05\x12" + bytes(16) + b"\x80"
    idr = b"\x00\x00\x01\x65\x88\x84\x00\x33"
    assert strip_x264_version_sei(sps + pps + sei + other_sei + idr) == sps + pps + other_sei + idr
    assert strip_x264_version_sei(sps + idr) == sps + idr


def test_ten_bit_round_trip(clip):
    fmt = dataclasses.replace(clip.format, bit_depth=10)
    video10 = Video(fmt, [p.astype(np.uint16) * 4 + 1 for p in clip.planes])
    result = encode_anchor(video10, "x265", 27)
    assert result.pix_fmt == "yuv420p10le"
    assert result.decoded.format == fmt and result.decoded.planes[0].dtype == np.uint16
    assert 35 < _psnr_yuv(video10, result.decoded) < 60
    assert encode_anchor(video10, "x264", 27).options["qp"] == "39"


def test_mono_through_x264(clip):
    mono = Video(dataclasses.replace(clip.format, chroma="mono"), [clip.planes[0]])
    result = encode_anchor(mono, "x264", 27)  # FFmpeg's H.264 decoder returns 4:2:0; the Y plane is kept
    assert pixel_format(mono.format) == "gray" and result.decoded.format.chroma == "mono"
    assert 35 < _psnr_yuv(mono, result.decoded) < 60


def test_clear_errors(clip):
    yuv444 = Video(dataclasses.replace(clip.format, chroma="444"), [clip.planes[0]] * 3)
    with pytest.raises(AnchorError, match=r"libsvtav1 cannot encode yuv444p .*it takes: yuv420p"):
        encode_anchor(yuv444, "svtav1", 32)
    with pytest.raises(AnchorError, match="width divisible by 2"):
        encode_anchor(read_video(carphone_path(), frames=1).crop(0, 0, 63, 64), "x264", 32)
    with pytest.raises(AnchorError, match="QP 52 outside 0..51"):
        encode_anchor(clip, "x265", 52)
    with pytest.raises(AnchorError, match="gop"):
        encode_anchor(clip, "x264", 32, gop=0)


def test_ladder_scores_with_evaluate(clip):
    ladder = run_anchor_ladder(clip, "x264", [37, 27], msssim=False, rgb=False)
    assert [r.qp for r, _ in ladder] == [37, 27]
    assert all(r.decoded is None for r, _ in ladder)  # dropped unless keep_decoded
    again = encode_anchor(clip, "x264", 27)  # x264 is deterministic
    assert ladder[1][0].bytes == again.bytes
    assert ladder[1][1].psnr_yuv == pytest.approx(_psnr_yuv(clip, again.decoded))
    rd = ladder_results(ladder)
    assert rd.name == "x264" and rd.results["qp"] == [37, 27]
    assert rd.results["bpp"] == sorted(rd.results["bpp"])
    assert rd.results["psnr-yuv"][1] == pytest.approx(ladder[1][1].psnr_yuv)
