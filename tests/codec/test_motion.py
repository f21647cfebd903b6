"""Global motion estimated from a clip (codec.motion): pans are found to the pixel, still cameras and objects
moving on their own are not taken for a pan."""
import numpy as np
import pytest

from codec.motion import aligned_residual, estimate_motion, frame_shift, motion_path


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random image (noise blurred by a box filter), 0-255."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (h + 4, w + 4))
    x = sum(x[i:i + h, j:j + w] for i in range(5) for j in range(5)) / 25
    return (x - x.min()) / (x.max() - x.min()) * 255


def pan(step: tuple[int, int], frames: int = 8, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    dy, dx = step
    h, w = size
    image = texture(h + abs(dy) * frames, w + abs(dx) * frames)
    y0, x0 = (abs(dy) * frames if dy < 0 else 0), (abs(dx) * frames if dx < 0 else 0)
    return np.stack([image[y0 + t * dy:y0 + t * dy + h, x0 + t * dx:x0 + t * dx + w] for t in range(frames)])


@pytest.mark.parametrize("step", [(0, 2), (2, 3), (-1, 4), (3, -2)])
def test_a_pan_is_found_to_the_pixel(step):
    frames = pan(step)
    dy, dx, peak = frame_shift(frames[0], frames[1])
    assert (round(dy), round(dx)) == step and abs(dy - step[0]) < 0.2 and abs(dx - step[1]) < 0.2
    assert peak > 0.5
    np.testing.assert_allclose(motion_path(frames)[-1], np.array(step) * (len(frames) - 1), atol=0.5)


def test_a_pan_becomes_the_canvas_offsets_of_a_420_grid():
    motion = estimate_motion(pan((2, 3)), (2, 2))
    assert motion is not None and motion.precision == 2 and len(motion.runs) == 1
    assert motion.offsets()[:4] == [(0, 0), (1, 2), (2, 3), (3, 5)]  # luma (2t, 3t), halves rounded up
    assert motion.extent == (7, 11)


def test_a_pan_on_a_422_grid_is_in_grid_pixels():
    motion = estimate_motion(pan((2, 4)), (1, 2))
    assert motion is not None and motion.precision == 1
    assert motion.offsets()[:3] == [(0, 0), (2, 2), (4, 4)]


def test_a_still_camera_with_noise_has_no_motion():
    rng = np.random.default_rng(1)
    still = texture(48, 64)[None] + rng.normal(0, 2, (8, 48, 64))
    assert estimate_motion(still, (2, 2)) is None


def test_an_object_crossing_a_still_scene_is_not_a_pan():
    rng = np.random.default_rng(2)
    frames = 40 + texture(48, 64, seed=4)[None] / 4 + rng.normal(0, 2, (8, 48, 64))  # low contrast, sensor noise
    blob = texture(16, 16, seed=3)
    for t in range(8):
        frames[t, 16:32, 4 + 5 * t:20 + 5 * t] = blob  # 5 pixels a frame on a flat, noisy background
    dy, dx, _ = frame_shift(frames[0], frames[1])
    assert (round(dy), round(dx)) == (0, -5)  # the correlation follows the object (moving right)...
    assert aligned_residual(frames[0], frames[1], 0, -5) > 0.5  # ...which does not explain the frame
    assert estimate_motion(frames, (2, 2)) is None


def test_the_residual_of_a_shift_is_zero_for_a_pan_and_large_for_a_wrong_one():
    frames = pan((1, 2))
    assert aligned_residual(frames[0], frames[1], 1, 2) == pytest.approx(0, abs=1e-9)
    assert aligned_residual(frames[0], frames[1], -1, -2) > 1.0
    assert aligned_residual(frames[0], frames[1], 100, 0) == float("inf")


def test_motion_modes_take_what_they_should():
    from codec.motion import choose_motion

    long_pan, shake = pan((0, 4), frames=8), pan((0, 1), frames=3)  # 28 luma pixels; 2 (1 grid pixel)
    assert choose_motion(long_pan, (2, 2), (24, 32), "off") == (None, None, False)
    for mode in ("auto", "global"):
        taken = choose_motion(long_pan, (2, 2), (24, 32), mode)
        assert taken.motion is not None and taken.motion.extent == (0, 14) and not taken.note
        assert taken.line == "global motion: frames are windows of a 24x46 canvas (the camera's path spans 0x14 " \
                             "grid pixels)"
    small = choose_motion(shake, (2, 2), (24, 32), "auto")  # 1 of 32 grid pixels: under 10%
    assert small.motion is None and "under 10% of the frame: not used" in small.line
    assert choose_motion(shake, (2, 2), (24, 32), "global").motion.extent == (0, 1)
    still = np.repeat(texture(48, 64)[None], 4, axis=0)
    assert choose_motion(still, (2, 2), (24, 32), "global") == (None, "global motion: none found", False)
    with pytest.raises(ValueError, match="--motion"):
        choose_motion(still, (2, 2), (24, 32), "local")
