"""Model presets scaled to the clip: a preset is a parameter budget per pixel, not a fixed 1080p network.

Every preset keeps HiNeRV's shape (docs/design.md §3): depths (3, ..., 3, 1) (one block a stage instead of three
below ``SHALLOW_MAX_PARAMS``), MLP expansions (4, ..., 4, 1), widths halving from stage to stage (at 3,000-200,000
parameters, ``small_shape``: falling by ``SMALL_WIDTH_RATIO``, expansions all 4), a 2-level base grid of ~T/4
frames and 3-level temporal local grids with C_loc = 2 * C_grid. What scales with the clip is the stride ladder
(chosen so the base grid is about 9 pixels on its short side with little padding) and the width C, solved so the
parameter count meets the budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import product

import torch

from common.registry import Registry

from .config import YUV420_CHANNELS, GlobalMotion, HiNeRVConfig, LumaStage, canvas_size


@dataclass(frozen=True)
class Preset:
    """A rung of the model-size ladder."""

    params_per_pixel: float  # parameters per luma pixel of the clip (frames x height x width)
    # share of the budget given to the base feature grid (it sets the grids' channels: the local grids are twice as
    # wide): HiNeRV-S's base grid is 2.7% of its parameters, and 0.12 lost ~0.2 dB at 10-25k (docs/results.md)
    grid_fraction: float = 0.03


PRESETS: Registry[Preset] = Registry("preset")
_LADDER = {"xxs": 0.002, "xs": 0.004, "s": 0.008, "m": 0.016, "l": 0.032, "xl": 0.064}
for _name, _ppp in _LADDER.items():
    PRESETS.register(_name)(Preset(params_per_pixel=_ppp))

MIN_PARAMS = 1000  # below this no HiNeRV fits; tiny clips get at least this much
# Below this many parameters a stage has one ConvNeXt block, not HiNeRV's three: on the tune clips (16 frames,
# 2k-24k parameters at x265's rates) two blocks beat three by +1.1 dB PSNR-Y on average, and one beat two by
# +1.2 (docs/results.md): the same budget in wider layers, fewer tensors to code, fewer layers to train in a
# short encode. 25,000 until the small shape below: at 25,000-50,000 it then beat HiNeRV's depth-3 shape by
# ~2 dB (bunny 0.23 bpp, check; carphone at --params 26,000, tune), and 50,000 until it beat it at 50-67k too
# (+1.5 to +2.9 dB PSNR-YUV: bunny 0.58 and pan-gravel 0.50 bpp, check; carphone 0.40, tune), and 100,000 until
# it beat it at 113-150k on 64 frames (bikes-b 0.26 bpp +0.5 dB, check; carphone 0.32 bpp +1.8, tune;
# docs/results.md). Measured at 176x144 only, where it costs ~3x the MACs a pixel and 1.1-2.3x the encode time;
# larger models keep HiNeRV's shape (1080p from 8 frames at preset s, 126k parameters, now takes the small one).
SHALLOW_MAX_PARAMS = 200_000
# From this many parameters a 4:2:0 model ends with a full-resolution luma stage (``LUMA_STAGE``) rather than
# making the four luma samples of a chroma pixel from one feature vector (docs/results.md): it pays once there are
# parameters to spare for it. 8,000 while every tensor cost ~10 bytes of framing; with format version 2's packed
# tensors the stage's 13 tensors are cheap, and from 3,000 it won on every point it reached (tune and check clips).
LUMA_MIN_PARAMS = 3_000
LUMA_STAGE = LumaStage(channels=8, depth=1, expansion=2)
# From LUMA_MIN_PARAMS to below SHALLOW_MAX_PARAMS (``small_shape``) the widths fall by this ratio a stage, not by
# HiNeRV's half, and the last stage's MLP expands 4x like the others' (HiNeRV: 1): HiNeRV's shape leaves the stages
# at the output's resolution 4-9 channels wide with an unexpanded MLP, and rate-aware training spends 7-9 bits on
# each of their parameters against ~3 on the first stage's (`hinerv info`): they are the scarce ones. Measured on
# the tune and check clips (docs/results.md): better from 3,000 parameters, worse below (no luma stage there, the
# models at the width floor); larger models were not measured and keep HiNeRV's shape.
SMALL_WIDTH_RATIO = 0.85  # 0.7 first (docs/results.md); 0.85 beat it at 6 of 7 points
BASE_TARGET = 9  # short side of the base grid HiNeRV uses at 1080p (1080 / 120 for half-resolution output)


def choose_strides(height: int, width: int) -> tuple[int, ...]:
    """Pick the stride ladder whose base grid is closest to ~9 px on its short side with the least padding."""
    candidates: list[tuple[int, ...]] = []
    for first, second in product((2, 3, 4, 5, 6, 8), (2, 3)):
        candidates.append((first, second, 2, 2))
    for first in (2, 3, 4, 5):
        candidates.append((first, 2, 2))
    candidates += [(2, 2), (2,)]

    def score(strides: tuple[int, ...]) -> float:
        up = math.prod(strides)
        bh, bw = -(-height // up), -(-width // up)
        waste = (bh * bw * up * up) / (height * width) - 1.0
        return waste + 0.5 * abs(math.log2(max(min(bh, bw), 1) / BASE_TARGET)) - 0.01 * len(strides)

    return min(candidates, key=score)


@dataclass(frozen=True)
class WidthLadder:
    """How the stages' widths fall: stage i is ``ratio ** i`` x the first stage's width, and never under ``floor``;
    ``ratio`` None: by the budget (``width_ratio``).

    The last stage feeds the head (6 outputs for 4:2:0: four luma sub-pixels, U, V) through one linear layer, so
    a floor under the head's outputs makes them linear mixtures of fewer features than there are outputs.
    """

    ratio: float | None = None
    floor: int = 4

    def __post_init__(self) -> None:
        if self.ratio is not None and not 0.25 <= self.ratio <= 1:
            raise ValueError(f"width ratio must be in [0.25, 1], got {self.ratio}")
        if not 1 <= self.floor <= 256:
            raise ValueError(f"min width must be in [1, 256], got {self.floor}")

    def for_budget(self, params: int) -> "WidthLadder":
        """This ladder with its ratio fixed: ``width_ratio(params)`` when it has none."""
        return self if self.ratio is not None else replace(self, ratio=width_ratio(params))

    def widths(self, first: int, stages: int) -> tuple[int, ...]:
        if self.ratio is None:
            raise ValueError("a width ladder without a ratio has no widths: fix it with for_budget(params)")
        return tuple(max(self.floor, int(first * self.ratio ** i)) for i in range(stages))


def small_shape(params: int) -> bool:
    """Whether a budget gets the small-model shape of ``SMALL_WIDTH_RATIO`` (from ``LUMA_MIN_PARAMS`` to below
    ``SHALLOW_MAX_PARAMS``) rather than HiNeRV's."""
    return LUMA_MIN_PARAMS <= params < SHALLOW_MAX_PARAMS


def last_expansion(params: int) -> int:
    """The MLP expansion of the last regular stage for a budget: 4 like the others' in the small-model shape (its MLP
    is a scarce one there, see ``SMALL_WIDTH_RATIO``), else HiNeRV's 1 (at 1080p the last stage costs most)."""
    return 4 if small_shape(params) else 1


def width_ratio(params: int) -> float:
    """How fast the widths fall for a budget: ``SMALL_WIDTH_RATIO`` in the small-model shape, else HiNeRV's 0.5."""
    return SMALL_WIDTH_RATIO if small_shape(params) else 0.5


def _make_config(height: int, width: int, frames: int, out_channels: int, strides: tuple[int, ...],
                 width_c: int, grid_channels: int, grid_frames: int, local_frames: int,
                 ladder: WidthLadder, depth: int = 3,
                 luma: LumaStage | None = None, final_expansion: int = 1,
                 motion: GlobalMotion | None = None) -> HiNeRVConfig:
    n = len(strides)
    channels = ladder.widths(width_c, n)
    return HiNeRVConfig(
        frames=frames, height=height, width=width, out_channels=out_channels, strides=strides,
        channels=channels, depths=(depth,) * (n - 1) + (1,), expansions=(4,) * (n - 1) + (final_expansion,),
        grid_frames=grid_frames, grid_channels=grid_channels, local_frames=local_frames,
        local_channels=2 * grid_channels, luma=luma, motion=motion)


def _grid_parameters(base_area: int, strides: tuple[int, ...], grid_frames: int, local_frames: int,
                     grid_channels: int) -> int:
    """Approximate parameters in the base grid (2 levels) and the local grids (3 levels per stage)."""
    local = sum(3 * local_frames * s * s * max(1, (2 * grid_channels) >> n) for n, s in enumerate(strides))
    return 2 * grid_frames * base_area * grid_channels + local


def config_parameters(config: HiNeRVConfig) -> int:
    """Parameter count of the model a config describes (built on the meta device: no memory, no init)."""
    from .model import HiNeRV, count_parameters

    with torch.device("meta"):
        return count_parameters(HiNeRV(config))


def stage_depth(params: int) -> int:
    """ConvNeXt blocks in each stage but the last, for a parameter budget (see ``SHALLOW_MAX_PARAMS``)."""
    return 1 if params < SHALLOW_MAX_PARAMS else 3


def luma_stage(params: int, out_channels: int, wanted: bool | None = None) -> LumaStage | None:
    """The full-resolution luma stage for a budget: ``LUMA_STAGE`` for 4:2:0 from ``LUMA_MIN_PARAMS`` (``wanted``
    None), always (True) or never (False); other formats have none."""
    if out_channels != YUV420_CHANNELS:
        if wanted:
            raise ValueError(f"a full-resolution luma stage needs 4:2:0 video ({out_channels}-channel output here)")
        return None
    return LUMA_STAGE if (params >= LUMA_MIN_PARAMS if wanted is None else wanted) else None


def model_budget(height: int, width: int, frames: int, out_channels: int, preset: str = "s",
                 params: int | None = None) -> int:
    """The parameter budget ``build_config`` sizes a model for: ``params``, else the preset's for the clip."""
    if params is not None:
        return params
    luma_pixels = frames * height * width * max(1, out_channels - 2)
    return max(MIN_PARAMS, int(PRESETS.get(preset).params_per_pixel * luma_pixels))


def build_config(height: int, width: int, frames: int, out_channels: int, preset: str = "s",
                 params: int | None = None, ladder: WidthLadder = WidthLadder(),
                 depth: int | None = None, luma: bool | None = None,
                 motion: GlobalMotion | None = None) -> HiNeRVConfig:
    """The config for an output grid of ``height`` x ``width`` x ``frames`` at a preset or a parameter budget.

    Args:
        height, width: output grid size (for 4:2:0 video the chroma-plane size).
        frames: number of frames.
        out_channels: channels of the output grid.
        preset: a name from ``PRESETS`` (ignored when ``params`` is given).
        params: an explicit parameter budget.
        ladder: how the widths fall from stage to stage (without a ratio: ``width_ratio`` of the budget).
        depth: blocks in each stage but the last; None: ``stage_depth`` of the budget.
        luma: a full-resolution luma stage (``luma_stage``): None decides by the budget.
        motion: global motion: the network renders a canvas grown by its extent (the budget stays the frames').
    """
    spec = PRESETS.get(preset)
    params = model_budget(height, width, frames, out_channels, preset, params)
    if params < MIN_PARAMS:
        raise ValueError(f"parameter budget must be at least {MIN_PARAMS}, got {params}")
    depth = stage_depth(params) if depth is None else depth
    ladder, expansion = ladder.for_budget(params), last_expansion(params)
    luma_cfg = luma_stage(params, out_channels, luma)
    canvas_h, canvas_w = canvas_size(height, width, motion)
    strides = choose_strides(canvas_h, canvas_w)
    up = math.prod(strides)
    base_area = -(-canvas_h // up) * -(-canvas_w // up)
    grid_frames, local_frames = max(1, round(frames / 4)), frames
    # A 2-level grid holds ~2 * T_grid * area * C_grid parameters.
    grid_channels = max(1, round(spec.grid_fraction * params / (2 * grid_frames * base_area)))
    # Small budgets cannot afford HiNeRV's temporal resolution: coarsen time until the grids fit.
    while (_grid_parameters(base_area, strides, grid_frames, local_frames, grid_channels) > 0.3 * params
           and local_frames > 1):
        grid_frames, local_frames = max(1, grid_frames // 2), max(1, local_frames // 2)
    best = None
    for width_c in range(8, 4097, 4):
        cfg = _make_config(height, width, frames, out_channels, strides, width_c, grid_channels,
                           grid_frames, local_frames, ladder, depth, luma_cfg, expansion, motion)
        if config_parameters(cfg) > params:
            break
        best = cfg
    if best is None:
        best = _make_config(height, width, frames, out_channels, strides, 8, grid_channels, grid_frames,
                            local_frames, ladder, depth, luma_cfg, expansion, motion)
    return best
