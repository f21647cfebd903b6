"""Global motion (``HiNeRVConfig.motion``): the runs that place frames on a canvas, the canvas the network renders,
and frames rendered as windows of it."""
import pytest
import torch

from inr.config import GlobalMotion, HiNeRVConfig, LumaStage, MotionRun
from inr.model import HiNeRV, count_parameters, frames_by_window

from .test_model import randomised, small_config

PAN = [(0, 0), (1, 2), (2, 3), (3, 5), (4, 6), (5, 8)]  # 4:2:0 grid pixels of a pan of (2, 3) luma pixels a frame


def test_positions_become_runs_and_back():
    motion = GlobalMotion.from_positions([(2 * y, 3 * x) for y, x in [(0, 0), (1, 1), (2, 2), (2, 3), (2, 4)]])
    assert motion.runs == (MotionRun(2, 2, 3), MotionRun(2, 0, 3))
    assert motion.offsets() == [(0, 0), (2, 3), (4, 6), (4, 9), (4, 12)]
    assert motion.extent == (4, 12) and motion.frames == 5


def test_positions_in_luma_steps_round_to_grid_pixels():
    motion = GlobalMotion.from_positions([(2 * t, 3 * t) for t in range(6)], precision=2)
    assert len(motion.runs) == 1  # a pan of 3 luma pixels a frame is one run, not alternating 1 and 2
    assert motion.offsets() == PAN
    assert motion.extent == PAN[-1]


def test_positions_are_shifted_to_start_at_zero():
    motion = GlobalMotion.from_positions([(0, 0), (-3, 1), (-6, 2)])
    assert (motion.start_y, motion.start_x) == (6, 0)
    assert motion.offsets() == [(6, 0), (3, 1), (0, 2)]


@pytest.mark.parametrize("kw, match", [
    (dict(precision=0), "precision"), (dict(start_y=-1), "start_y"), (dict(start_x=3), "start at 0"),
    (dict(runs=(MotionRun(1, 0, -1),)), "start at 0")])
def test_bad_motion_is_refused(kw, match):
    base = dict(precision=1, start_y=0, start_x=0, runs=(MotionRun(1, 0, 1),))
    with pytest.raises(ValueError, match=match):
        GlobalMotion(**{**base, **kw})


def test_bad_runs_are_refused():
    with pytest.raises(ValueError, match="frames"):
        MotionRun(0, 1, 1)
    with pytest.raises(ValueError, match="within"):
        MotionRun(1, 5000, 0)


def test_the_motion_must_place_every_frame_and_keep_the_canvas_bounded():
    motion = GlobalMotion.from_positions([(0, t) for t in range(5)])
    with pytest.raises(ValueError, match="places 5 frames"):
        small_config(frames=12, motion=motion)
    runaway = GlobalMotion.from_positions([(0, 50 * t) for t in range(12)])
    with pytest.raises(ValueError, match="canvas"):
        small_config(motion=runaway)


def test_a_canvas_fits_within_four_times_the_frame_each_way():
    motion = GlobalMotion.from_positions([(0, 0), (10, 40)])
    assert motion.fits(10, 10) and motion.fits(3, 10) and not motion.fits(2, 10) and not motion.fits(10, 9)


def test_the_canvas_sets_the_base_grid_and_the_parameters():
    motion = GlobalMotion.from_positions([(t, 2 * t) for t in range(12)])
    still, moving = small_config(), small_config(motion=motion)
    assert moving.version == 3 and still.version == 2
    assert (moving.canvas_height, moving.canvas_width) == (37 + 11, 45 + 22)
    assert (moving.base_height, moving.base_width) == (-(-48 // 12), -(-67 // 12))
    assert (still.canvas_height, still.canvas_width) == (37, 45)
    assert count_parameters(HiNeRV(moving)) == moving.parameter_count() > still.parameter_count()
    with pytest.raises(ValueError, match="version"):
        small_config(version=3)  # version 3 is the layout with motion


def test_frames_are_grouped_by_window():
    groups = frames_by_window(torch.tensor([[0, 1, 0, 0], [2, 3, 0, -1], [0, 1, 0, 0], [0, 1, -1, 0]]))
    assert [(o, i.tolist()) for o, i in groups] == [((0, 1, -1, 0), [3]), ((0, 1, 0, 0), [0, 2]),
                                                     ((2, 3, 0, -1), [1])]


def pan_model(luma=None) -> HiNeRV:
    motion = GlobalMotion.from_positions([(2 * t, 3 * t) for t in range(len(PAN))], precision=2)
    return randomised(small_config(frames=len(PAN), grid_frames=3, local_frames=6, motion=motion, luma=luma))


def time_invariant(model: HiNeRV) -> HiNeRV:
    """Every temporal grid made the same at all times: a frame is then its window of one still canvas."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("grid.") or ".encoding.grids." in name:
                p.copy_(p[:1].expand_as(p))
    return model


@pytest.mark.parametrize("luma", [None, LumaStage(8)])
def test_a_frame_is_its_window_of_the_canvas(luma):
    model = pan_model(luma)
    c = model.config
    t = torch.arange(c.frames)
    with torch.no_grad():
        frames = model(t)
        for k, ((oy, ox), (py, px)) in enumerate(zip(PAN, c.motion.positions())):
            # with a luma stage the luma window sits at the position itself: -1 sample off the grid's where odd
            shift = (py - 2 * oy, px - 2 * ox) if luma else (0, 0)
            assert shift in {(0, 0), (0, -1), (-1, 0), (-1, -1)}
            window = model.render_region(t[k:k + 1], (oy, oy + c.height, ox, ox + c.width), shift)
            torch.testing.assert_close(frames[k:k + 1], window, rtol=0, atol=1e-6)
    assert frames.shape == (c.frames, c.height, c.width, 6)


def luma_plane(frames: torch.Tensor) -> torch.Tensor:
    """(B, h, w, 6) 4:2:0 output grid -> (B, 2h, 2w) luma (its four channels are the 2x2 samples, row-major)."""
    b, h, w, _ = frames.shape
    return frames[..., :4].reshape(b, h, w, 2, 2).permute(0, 1, 3, 2, 4).reshape(b, 2 * h, 2 * w)


def test_with_a_luma_stage_luma_moves_to_the_sample():
    """A pan of 3 luma samples a frame (1.5 grid pixels): each frame's luma is frame 0's moved by 3k samples
    exactly, where the grid's windows alone could only place it to 2 samples."""
    model = time_invariant(pan_model(LumaStage(8)))
    with torch.no_grad():
        y = luma_plane(model(torch.arange(model.config.frames)))
    for k, (py, px) in enumerate(model.config.motion.positions()):
        assert (py, px) == (2 * k, 3 * k)
        torch.testing.assert_close(y[k, :y.shape[1] - py, :y.shape[2] - px], y[0, py:, px:], rtol=0, atol=1e-5)


def test_content_that_only_moved_stays_put_on_the_canvas():
    model = time_invariant(pan_model())
    c = model.config
    with torch.no_grad():
        frames = model(torch.arange(c.frames))
    (ay, ax), (by, bx) = PAN[0], PAN[-1]
    dy, dx = by - ay, bx - ax  # frame 5's pixel p shows what frame 0 showed at p + (dy, dx)
    torch.testing.assert_close(frames[-1, :c.height - dy, :c.width - dx], frames[0, dy:, dx:], rtol=0, atol=1e-5)
    assert not torch.allclose(frames[-1], frames[0], atol=1e-3)  # the frames themselves differ


def test_a_batch_of_mixed_offsets_equals_its_frames_alone_and_trains():
    model = pan_model()
    t = torch.tensor([4, 0, 4, 2])
    region = (3, 20, 5, 30)
    together = model(t, region)
    alone = torch.cat([model(t[k:k + 1], region) for k in range(len(t))])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
    together.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
