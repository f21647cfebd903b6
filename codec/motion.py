"""Global motion of a clip, estimated before training: where each frame sits on the canvas the camera looks at.

A pan slides the frame over a scene; HiNeRV without a motion model holds each position of the scene at every time
it is seen. ``estimate_motion`` finds the frame-to-frame translation of the luma plane by phase correlation (the
peak of the normalised cross-power spectrum, refined to a fraction of a pixel), sums it into a path in whole luma
pixels: ``inr.config.GlobalMotion``, which the model renders frames as windows of. ``choose_motion`` is what
``--motion`` makes of it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from inr.config import MAX_CANVAS_GROWTH, GlobalMotion, canvas_size

# A frame pair whose correlation peak is below this (a fraction of the energy in one translation) has no motion
# the whole frame shares (a cut, a scene moving on its own): its step is 0. A clean pan peaks near 1.
MIN_PEAK = 0.15
# A step of a pixel or more is kept only if it aligns the frames: the mean absolute difference of the overlap once
# shifted is at most this share of the difference unshifted. A small object crossing a still scene can win the
# correlation (the validation set's surveillance clip: its coin, 2 px a frame, at 0.60-0.66 of it); pans come to ~0.
MAX_RESIDUAL = 0.5
# --motion auto takes a path that spans at least this share of the frame on one axis. Smaller paths are camera
# shake, and the tune clips' one (carphone: 1 grid pixel each way, frames shifted by it now and then) lost 0.6 dB
# PSNR-YUV with it (docs/results.md); pans and a tilting camera span 30-300% and gained.
AUTO_MIN_SPAN = 0.1
MOTION_MODES = ("auto", "off", "global")  # --motion


def _subpixel(c_minus: float, c0: float, c_plus: float) -> float:
    """The offset of a parabola's vertex through three samples around a peak, in [-0.5, 0.5]."""
    denom = c_minus - 2 * c0 + c_plus
    return 0.0 if denom >= 0 else float(np.clip(0.5 * (c_minus - c_plus) / denom, -0.5, 0.5))


def frame_shift(previous: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """(dy, dx, peak): ``current`` shows what ``previous`` showed (dy, dx) pixels further on, ``current(p) ~
    previous(p + (dy, dx))``, and the height of the phase-correlation peak (1 for a pure circular shift)."""
    h, w = previous.shape
    window = np.outer(np.hanning(h), np.hanning(w))  # no wrap-around edge for the spectrum to lock on
    a = np.fft.rfft2((previous - previous.mean()) * window)
    b = np.fft.rfft2((current - current.mean()) * window)
    cross = a * np.conj(b)
    cross /= np.maximum(np.abs(cross), 1e-12)
    surface = np.fft.irfft2(cross, s=(h, w))
    py, px = np.unravel_index(int(np.argmax(surface)), surface.shape)
    peak = float(surface[py, px])
    fy = _subpixel(surface[(py - 1) % h, px], peak, surface[(py + 1) % h, px])
    fx = _subpixel(surface[py, (px - 1) % w], peak, surface[py, (px + 1) % w])
    dy = (py + h // 2) % h - h // 2 + fy  # wrap to [-h/2, h/2)
    dx = (px + w // 2) % w - w // 2 + fx
    return float(dy), float(dx), peak


def aligned_residual(previous: np.ndarray, current: np.ndarray, dy: int, dx: int) -> float:
    """Mean absolute difference of ``current(p)`` and ``previous(p + (dy, dx))`` where both exist, over that of the
    frames unshifted: how much of the change between them the shift explains (0: all of it)."""
    h, w = current.shape
    if abs(dy) >= h or abs(dx) >= w:
        return float("inf")
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    shifted = np.abs(current[ys, xs] - previous[ys.start + dy:ys.stop + dy, xs.start + dx:xs.stop + dx]).mean()
    return float(shifted / max(np.abs(current - previous).mean(), 1e-9))


def motion_path(luma: np.ndarray, min_peak: float = MIN_PEAK, max_residual: float = MAX_RESIDUAL) -> np.ndarray:
    """(T, 2) position of each frame of a (T, H, W) luma plane, in luma pixels, frame 0 at (0, 0).

    A step counts when the correlation peaks at ``min_peak`` or more and, if it rounds to a pixel or more, the
    shift explains the change (``aligned_residual`` at most ``max_residual``); else the frame stays where the one
    before was.
    """
    frames = luma.astype(np.float64)
    path = np.zeros((len(frames), 2))
    for t in range(1, len(frames)):
        dy, dx, peak = frame_shift(frames[t - 1], frames[t])
        whole = int(round(dy)), int(round(dx))
        aligned = whole == (0, 0) or aligned_residual(frames[t - 1], frames[t], *whole) <= max_residual
        path[t] = path[t - 1] + ((dy, dx) if peak >= min_peak and aligned else (0.0, 0.0))
    return path


def estimate_motion(luma: np.ndarray, grid_scale: tuple[int, int], min_peak: float = MIN_PEAK) -> GlobalMotion | None:
    """The global motion of a (T, H, W) luma plane on an output grid ``grid_scale`` (sy, sx) luma pixels a grid
    pixel (2, 2 for 4:2:0): in steps of a luma pixel where the two are alike, else of a grid pixel; None when no
    frame's window leaves the first's (a still camera)."""
    path = motion_path(luma, min_peak)
    sy, sx = grid_scale
    precision, scale = (sy, (1, 1)) if sy == sx else (1, (sy, sx))
    positions = [(int(round(y / scale[0])), int(round(x / scale[1]))) for y, x in path]
    motion = GlobalMotion.from_positions(positions, precision)
    return motion if len(set(motion.offsets())) > 1 else None


class MotionChoice(NamedTuple):
    """What ``--motion`` made of a clip: the motion to render with (or None) and a line for the user."""

    motion: GlobalMotion | None
    line: str | None
    note: bool = False  # the line is a warning (the encoder's report keeps it among its notes)


def choose_motion(luma: np.ndarray, grid_scale: tuple[int, int], grid_size: tuple[int, int],
                  mode: str) -> MotionChoice:
    """The motion an encode renders its frames with under ``--motion mode``.

    'global' takes any motion found, 'auto' one that spans ``AUTO_MIN_SPAN`` of the frame, 'off' none; neither
    takes a path whose canvas would pass ``MAX_CANVAS_GROWTH`` times the frame (it says so).
    """
    if mode not in MOTION_MODES:
        raise ValueError(f"--motion must be one of {', '.join(MOTION_MODES)}, got {mode!r}")
    if mode == "off":
        return MotionChoice(None, None)
    motion = estimate_motion(luma, grid_scale)
    if motion is None:
        return MotionChoice(None, "global motion: none found")
    (ey, ex), (h, w) = motion.extent, grid_size
    spans = f"the camera's path spans {ey}x{ex} grid pixels"
    if not motion.fits(h, w):
        return MotionChoice(None, f"{spans}, over {MAX_CANVAS_GROWTH} times the frame: encoded without global "
                                  "motion", note=True)
    if mode == "auto" and max(ey / h, ex / w) < AUTO_MIN_SPAN:
        return MotionChoice(None, f"global motion: {spans}, under {AUTO_MIN_SPAN:.0%} of the frame: not used "
                                  "(--motion global uses it)")
    canvas = "x".join(map(str, canvas_size(h, w, motion)))
    return MotionChoice(motion, f"global motion: frames are windows of a {canvas} canvas ({spans})")
