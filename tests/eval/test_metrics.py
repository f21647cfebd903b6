"""Tests for eval.metrics: PSNR conventions, PSNR-YUV weighting, RGB conversion, MS-SSIM window choice."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from eval.metrics import (PSNR_CAP_DB, Metrics, MetricsAccumulator, evaluate, msssim_per_frame, msssim_window,
                          peak_value, psnr, psnr_per_frame, rgb_to_yuv, upsample_chroma, yuv_to_rgb)

RNG = np.random.default_rng(1234)


def _noisy(a: np.ndarray, sigma: float, peak: int) -> np.ndarray:
    out = a.astype(np.float64) + RNG.normal(0, sigma, a.shape)
    return np.clip(np.rint(out), 0, peak).astype(a.dtype)


def _yuv420(t: int, h: int, w: int, peak: int = 255, dtype=np.uint8) -> list[np.ndarray]:
    ch, cw = -(-h // 2), -(-w // 2)
    return [RNG.integers(0, peak + 1, (t, h, w)).astype(dtype), RNG.integers(0, peak + 1, (t, ch, cw)).astype(dtype),
            RNG.integers(0, peak + 1, (t, ch, cw)).astype(dtype)]


def test_psnr_hand_computed():
    ref = np.zeros((1, 2, 2), np.uint8)
    dist = np.array([[[0, 0], [0, 10]]], np.uint8)  # MSE = 100 / 4 = 25
    expected = 10 * math.log10(255 ** 2 / 25)
    assert psnr(ref, dist, bit_depth=8) == pytest.approx(expected, abs=1e-12)


def test_psnr_matches_skimage_per_frame_and_is_mean_of_frames():
    ref = RNG.integers(0, 256, (3, 36, 44)).astype(np.uint8)
    dist = _noisy(ref, [2.0, 5.0, 9.0][0], 255)
    dist[1] = _noisy(ref[1], 5.0, 255)
    dist[2] = _noisy(ref[2], 9.0, 255)
    per = psnr_per_frame(ref, dist, bit_depth=8)
    sk = [peak_signal_noise_ratio(ref[i], dist[i], data_range=255) for i in range(3)]
    np.testing.assert_allclose(per, sk, rtol=0, atol=1e-10)
    assert psnr(ref, dist, bit_depth=8) == pytest.approx(np.mean(sk), abs=1e-10)
    # sequence PSNR is the mean of per-frame PSNR, not PSNR of the pooled MSE
    pooled = peak_signal_noise_ratio(ref, dist, data_range=255)
    assert abs(psnr(ref, dist, bit_depth=8) - pooled) > 1e-3


def test_psnr_chunking_does_not_change_result():
    ref = RNG.integers(0, 256, (7, 16, 16)).astype(np.uint8)
    dist = _noisy(ref, 4.0, 255)
    a = psnr_per_frame(ref, dist, bit_depth=8)
    b = psnr_per_frame(ref, dist, bit_depth=8, chunk_pixels=16 * 16 * 2)
    np.testing.assert_array_equal(a, b)


def test_10bit_peak():
    assert [peak_value(b) for b in (8, 10, 12)] == [255, 1023, 4095]
    ref = RNG.integers(0, 1024, (2, 20, 30)).astype(np.uint16)
    dist = _noisy(ref, 6.0, 1023)
    sk = np.mean([peak_signal_noise_ratio(ref[i], dist[i], data_range=1023) for i in range(2)])
    assert psnr(ref, dist, bit_depth=10) == pytest.approx(sk, abs=1e-10)
    with pytest.raises(ValueError, match="bit_depth"):
        evaluate([ref], [dist])  # uint16 needs an explicit bit depth


def test_identical_frames_are_capped():
    planes = _yuv420(2, 16, 20)
    m = evaluate(planes, [p.copy() for p in planes], msssim=False)
    assert m.psnr_y == m.psnr_u == m.psnr_v == m.psnr_yuv == m.psnr_rgb == PSNR_CAP_DB
    assert all(math.isfinite(x) for x in m.per_frame_psnr_yuv)


def test_psnr_yuv_weighting():
    ref = [np.zeros((1, 4, 4), np.uint8), np.zeros((1, 2, 2), np.uint8), np.zeros((1, 2, 2), np.uint8)]
    dist = [np.full((1, 4, 4), 1, np.uint8), np.full((1, 2, 2), 4, np.uint8), np.full((1, 2, 2), 16, np.uint8)]
    m = evaluate(ref, dist, rgb=False, msssim=False)
    py, pu, pv = (20 * math.log10(255 / e) for e in (1, 4, 16))
    assert (m.psnr_y, m.psnr_u, m.psnr_v) == pytest.approx((py, pu, pv), abs=1e-10)
    assert m.psnr_yuv == pytest.approx((6 * py + pu + pv) / 8, abs=1e-10)
    assert m.chroma == "420"  # inferred from shapes


def test_psnr_yuv_is_mean_of_per_frame_weighted():
    ref, dist = _yuv420(4, 8, 8), None
    dist = [_noisy(p, s, 255) for p, s in zip(ref, (3.0, 6.0, 9.0))]
    m = evaluate(ref, dist, rgb=False, msssim=False)
    y, u, v = (psnr_per_frame(a, b, bit_depth=8) for a, b in zip(ref, dist))
    np.testing.assert_allclose(m.per_frame_psnr_yuv, (6 * y + u + v) / 8, atol=1e-12)
    assert m.psnr_yuv == pytest.approx(np.mean((6 * y + u + v) / 8), abs=1e-12)


def test_mono_uses_y_only():
    ref = RNG.integers(0, 256, (2, 40, 40)).astype(np.uint8)
    dist = _noisy(ref, 3.0, 255)
    m = evaluate(ref, dist, msssim=False)  # a bare array is monochrome
    assert m.chroma == "mono" and m.psnr_u is None and m.psnr_v is None
    assert m.psnr_yuv == pytest.approx(m.psnr_y)
    assert m.psnr_rgb == pytest.approx(m.psnr_y, abs=1e-9)  # full range, neutral chroma: R = G = B = Y


# BT.709 limited-range 8-bit code values of 100% colour bars (ITU-R BT.709 / SMPTE RP 219).
BT709_LIMITED = {
    "white": ((235, 128, 128), (255, 255, 255)),
    "black": ((16, 128, 128), (0, 0, 0)),
    "red": ((63, 102, 240), (255, 0, 0)),
    "green": ((173, 42, 26), (0, 255, 0)),
    "blue": ((32, 240, 118), (0, 0, 255)),
}


@pytest.mark.parametrize("colour", sorted(BT709_LIMITED))
def test_rgb_conversion_pure_colours_bt709_limited(colour):
    (y, u, v), rgb = BT709_LIMITED[colour]
    out = yuv_to_rgb(np.full((1, 1), y), np.full((1, 1), u), np.full((1, 1), v), bit_depth=8, full_range=False)
    np.testing.assert_allclose(out[:, 0, 0], rgb, atol=1.5)


@pytest.mark.parametrize("matrix", ["bt709", "bt601"])
@pytest.mark.parametrize("full_range", [True, False])
@pytest.mark.parametrize("bits", [8, 10])
def test_rgb_round_trip_pure_colours(matrix, full_range, bits):
    peak = (1 << bits) - 1
    colours = np.array([[peak, 0, 0], [0, peak, 0], [0, 0, peak], [peak, peak, 0], [0, peak, peak], [peak, 0, peak],
                        [peak, peak, peak], [0, 0, 0]], dtype=np.float64)
    rgb = colours.T[:, None, :]  # (3, 1, 8)
    y, u, v = rgb_to_yuv(rgb, bit_depth=bits, matrix=matrix, full_range=full_range)
    back = yuv_to_rgb(y, u, v, bit_depth=bits, matrix=matrix, full_range=full_range, clip=False)
    np.testing.assert_allclose(back, rgb, atol=1e-9)


def test_rgb_full_range_known_values():
    # full-range BT.601 (JPEG): red -> Y 76.245, Cb 84.97, Cr 255.5; BT.709 white -> Y 255, Cb = Cr = 128
    y, u, v = rgb_to_yuv(np.array([255.0, 0, 0])[:, None, None], bit_depth=8, matrix="bt601")
    assert (y.item(), u.item(), v.item()) == pytest.approx((76.245, 128 - 0.168736 * 255, 255.5), abs=0.01)
    y, u, v = rgb_to_yuv(np.full((3, 1, 1), 255.0), bit_depth=8, matrix="bt709")
    assert (y.item(), u.item(), v.item()) == pytest.approx((255, 128, 128), abs=1e-9)


def test_upsample_chroma_replicates_and_crops():
    c = np.arange(6).reshape(1, 2, 3)
    up = upsample_chroma(c, (2, 2), (3, 5))
    assert up.shape == (1, 3, 5)
    np.testing.assert_array_equal(up[0], [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5]])


def test_odd_sizes_and_422_444():
    for chroma, (sy, sx) in (("420", (2, 2)), ("422", (1, 2)), ("444", (1, 1))):
        h, w = 17, 23
        ref = [RNG.integers(0, 256, (2, h, w)).astype(np.uint8)] + [
            RNG.integers(0, 256, (2, -(-h // sy), -(-w // sx))).astype(np.uint8) for _ in range(2)]
        dist = [_noisy(p, 3.0, 255) for p in ref]
        m = evaluate(ref, dist, msssim=False)
        assert m.chroma == chroma and 30 < m.psnr_rgb < 50


def test_video_like_objects_and_mismatches():
    planes = _yuv420(2, 32, 48)
    fmt = SimpleNamespace(bit_depth=8, chroma="420jpeg")
    a = SimpleNamespace(format=fmt, planes=planes)
    b = SimpleNamespace(format=fmt, planes=[_noisy(p, 2.0, 255) for p in planes])
    m = evaluate(a, b, msssim=False)
    assert m.chroma == "420jpeg" and m.bit_depth == 8 and m.num_frames == 2
    assert set(m.to_dict()) >= {"psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_rgb", "ms_ssim", "per_frame_psnr_yuv"}
    with pytest.raises(ValueError, match="bit_depth"):
        evaluate(a, b, bit_depth=10)
    with pytest.raises(ValueError, match="reference"):
        evaluate(planes, [p[:1] for p in planes])
    with pytest.raises(ValueError):
        evaluate(planes, planes, chroma="444")


def test_accumulator_equals_one_shot():
    ref = _yuv420(5, 24, 24)
    dist = [_noisy(p, 4.0, 255) for p in ref]
    one = evaluate(ref, dist, msssim=False)
    acc = MetricsAccumulator(bit_depth=8, chroma="420", msssim=False)
    acc.update([p[:2] for p in ref], [p[:2] for p in dist])
    acc.update([p[2:] for p in ref], [p[2:] for p in dist])
    two = acc.result()
    assert isinstance(two, Metrics)
    assert two.psnr_yuv == pytest.approx(one.psnr_yuv)
    assert two.psnr_rgb == pytest.approx(one.psnr_rgb)
    assert two.per_frame_psnr_yuv == pytest.approx(one.per_frame_psnr_yuv)


def test_msssim_window_choice():
    assert msssim_window(1080, 1920) == ("ms-ssim", 11)
    assert msssim_window(144, 176) == ("ms-ssim", 9)
    assert msssim_window(72, 88) == ("ms-ssim", 5)
    assert msssim_window(33, 40) == ("ms-ssim", 3)
    assert msssim_window(32, 40)[0] == "ssim"


@pytest.mark.parametrize("shape", [(144, 176), (72, 88), (24, 30)])
def test_msssim_identical_is_one_and_decreases_with_noise(shape):
    y = np.clip(RNG.normal(128, 40, (2,) + shape), 0, 255).astype(np.uint8)
    same, _ = msssim_per_frame(y, y.copy(), data_range=255)
    np.testing.assert_allclose(same, 1.0, atol=1e-6)
    scores = [float(np.mean(msssim_per_frame(y, _noisy(y, s, 255), data_range=255)[0])) for s in (2, 8, 24)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_evaluate_msssim_small_frames_and_rgb():
    ref = _yuv420(2, 72, 88)
    dist = [_noisy(p, 5.0, 255) for p in ref]
    m = evaluate(ref, dist, msssim_rgb=True)
    assert m.ms_ssim_method == "ms-ssim win=5"
    assert 0 < m.ms_ssim < 1 and 0 < m.ms_ssim_rgb < 1
    m10 = evaluate([(p.astype(np.uint16) * 4) for p in ref], [(p.astype(np.uint16) * 4) for p in dist],
                   bit_depth=10, msssim_rgb=True)
    assert m10.ms_ssim == pytest.approx(m.ms_ssim, abs=1e-4)  # data_range scales with the peak
    # errors scale by 4 and the peak by 1023/255: PSNR moves by 20·log10(1023 / (4·255))
    assert m10.psnr_y == pytest.approx(m.psnr_y + 20 * math.log10(1023 / (4 * 255)), abs=1e-9)


def test_real_video_objects_when_available():
    video = pytest.importorskip("codec.video")
    fmt = video.VideoFormat(width=40, height=34, fps_num=25, fps_den=1, chroma="420", bit_depth=10)
    ref = [RNG.integers(0, 1024, (2,) + s).astype(np.uint16) for s in fmt.plane_shapes]
    dist = [_noisy(p, 4.0, 1023) for p in ref]
    m = evaluate(video.Video(fmt, ref), video.Video(fmt, dist), msssim=False)
    assert m.bit_depth == 10 and m.chroma == "420"
    assert m.psnr_y == pytest.approx(psnr(ref[0], dist[0], bit_depth=10))
