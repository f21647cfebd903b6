"""The HiNeRV model configuration: a frozen dataclass that is serialised field by field into the bitstream."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple


MAX_PARAMETERS = 1 << 28  # no TENSORS section holds more (bitstream.tensors.TensorLimits.max_elements): 1 GiB fp32


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class LumaStage:
    """A last stage at luma resolution (4:2:0 only): the last stage's features upsampled x2, with their own
    hierarchical encoding and ConvNeXt blocks, give Y one sample a pixel; U and V come from the head at the chroma
    planes' size as before. Without it the head's one feature vector makes all four luma samples it covers."""

    channels: int  # width of the stage
    depth: int = 1  # ConvNeXt blocks
    expansion: int = 2  # MLP expansion ratio

    def __post_init__(self) -> None:
        for name in ("channels", "depth", "expansion"):
            _positive(f"luma {name}", getattr(self, name))
        if self.channels > 4096 or self.depth > 64 or self.expansion > 16:
            raise ValueError("luma stage channels (<=4096), depth (<=64) or expansion (<=16) out of range")


@dataclass(frozen=True)
class MotionRun:
    """``frames`` consecutive frames, each ``(dy, dx)`` steps further on the canvas than the one before."""

    frames: int
    dy: int
    dx: int

    def __post_init__(self) -> None:
        _positive("motion run frames", self.frames)
        for name in ("dy", "dx"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or abs(v) > MAX_MOTION_STEP:
                raise ValueError(f"motion step {name} must be an integer within +-{MAX_MOTION_STEP}, got {v!r}")


MAX_MOTION_STEP = 4096  # steps (1 / precision of an output-grid pixel) a frame may move from the one before
MAX_MOTION_PRECISION = 16
MAX_CANVAS_GROWTH = 4  # a canvas adds at most this many times the frame's size each way


@dataclass(frozen=True)
class GlobalMotion:
    """Where each frame sits on a canvas larger than the frame (``HiNeRVConfig.motion``), as runs of steps.

    A camera pan moves the content across the frame; the network then has to hold every position of it at every
    time. With global motion it renders one canvas the camera looks at, and frame t is the window at its offset:
    content that only moved stays put on the canvas. Positions are in steps of 1 / ``precision`` output-grid pixel
    (4:2:0: 2, a luma pixel), so a pan of 3 luma pixels a frame is one run; a frame's window on the grid sits at its
    position rounded to whole grid pixels, and with a luma stage and ``precision`` 2 its luma window at the position
    itself (both exact for the region planner, as any patch is). Frame 0 is at (``start_y``, ``start_x``); the
    smallest position on each axis is 0, so the canvas is the frame grown by ``extent``.
    """

    precision: int  # steps an output-grid pixel
    start_y: int
    start_x: int
    runs: tuple[MotionRun, ...]  # the steps of frames 1, 2, ... (their frames add up to the video's, less one)

    def __post_init__(self) -> None:
        if not isinstance(self.precision, int) or not 1 <= self.precision <= MAX_MOTION_PRECISION:
            raise ValueError(f"motion precision must be 1..{MAX_MOTION_PRECISION}, got {self.precision!r}")
        for name in ("start_y", "start_x"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"motion {name} must be a non-negative integer, got {v!r}")
        lo, hi = [self.start_y, self.start_x], [self.start_y, self.start_x]
        y, x = self.start_y, self.start_x
        for run in self.runs:  # positions move linearly within a run: its ends bound it
            y, x = y + run.frames * run.dy, x + run.frames * run.dx
            lo, hi = [min(lo[0], y), min(lo[1], x)], [max(hi[0], y), max(hi[1], x)]
        if lo != [0, 0]:
            raise ValueError(f"motion positions must start at 0 on each axis (smallest {lo[0]}, {lo[1]})")
        object.__setattr__(self, "_extent", (self._pixel(hi[0]), self._pixel(hi[1])))

    def _pixel(self, position: int) -> int:
        """A position rounded to whole output-grid pixels (halves up)."""
        return (position + self.precision // 2) // self.precision

    @property
    def frames(self) -> int:
        """Frames the motion places: one more than its steps."""
        return 1 + sum(run.frames for run in self.runs)

    @property
    def extent(self) -> tuple[int, int]:
        """(rows, cols) the canvas adds to the frame: the largest offsets."""
        return self._extent

    def fits(self, height: int, width: int) -> bool:
        """Whether the canvas for a ``height`` x ``width`` frame is within ``MAX_CANVAS_GROWTH`` of it each way."""
        return self.extent[0] <= MAX_CANVAS_GROWTH * height and self.extent[1] <= MAX_CANVAS_GROWTH * width

    def positions(self) -> list[tuple[int, int]]:
        """(y, x) of every frame on the canvas, in steps."""
        out = [(self.start_y, self.start_x)]
        for run in self.runs:
            for _ in range(run.frames):
                out.append((out[-1][0] + run.dy, out[-1][1] + run.dx))
        return out

    def offsets(self) -> list[tuple[int, int]]:
        """(y, x) of every frame's window on the canvas, in output-grid pixels."""
        return [(self._pixel(y), self._pixel(x)) for y, x in self.positions()]

    @classmethod
    def from_positions(cls, positions: list[tuple[int, int]], precision: int = 1) -> "GlobalMotion":
        """The motion placing frame t at ``positions[t]`` (in steps; shifted so the smallest is 0 on each axis)."""
        if not positions:
            raise ValueError("motion needs the position of at least one frame")
        y0, x0 = min(p[0] for p in positions), min(p[1] for p in positions)
        runs: list[MotionRun] = []
        for (ay, ax), (by, bx) in zip(positions, positions[1:]):
            step = (by - ay, bx - ax)
            if runs and (runs[-1].dy, runs[-1].dx) == step:
                runs[-1] = MotionRun(runs[-1].frames + 1, *step)
            else:
                runs.append(MotionRun(1, *step))
        return cls(precision, positions[0][0] - y0, positions[0][1] - x0, tuple(runs))


def canvas_size(height: int, width: int, motion: GlobalMotion | None) -> tuple[int, int]:
    """(rows, cols) of the canvas a ``height`` x ``width`` frame is a window of: the frame grown by the motion's
    extent, or the frame itself without motion."""
    return (height, width) if motion is None else (height + motion.extent[0], width + motion.extent[1])


LUMA_STRIDE = 2  # the luma stage's upsampling: 4:2:0 has two luma samples a chroma sample each way
YUV420_CHANNELS = LUMA_STRIDE ** 2 + 2  # the output grid of 4:2:0 video: four luma samples, U, V


class StageShape(NamedTuple):
    """One upsampling stage as the network builds it: the regular stages, then the luma stage if any."""

    stride: int
    in_channels: int
    out_channels: int
    depth: int
    expansion: int
    local_channels: int  # C_loc of its temporal local grids at level 0


@dataclass(frozen=True)
class HiNeRVConfig:
    """Everything needed to rebuild the network (not its weights) from a bitstream.

    The model maps a frame index to an output grid of ``height`` x ``width`` pixels with ``out_channels``
    channels (for 4:2:0 video: the chroma-plane size with 4 luma sub-pixels + U + V). The base grid has
    ``ceil(canvas_height / prod(strides))`` rows; the padded output is cropped back to ``height`` x ``width`` (with
    ``motion``, the canvas is larger than the frame and each frame is its window at the frame's offset).
    """

    frames: int  # number of frames the model represents (T)
    height: int  # output grid height before internal padding
    width: int  # output grid width before internal padding
    out_channels: int  # channels of the head (e.g. 6 for 4:2:0: 4 Y sub-pixels, U, V)
    strides: tuple[int, ...]  # upsampling factor of each stage
    channels: tuple[int, ...]  # feature width at the output of each stage (the stem outputs channels[0])
    depths: tuple[int, ...]  # ConvNeXt blocks per stage
    expansions: tuple[int, ...]  # MLP expansion ratio per stage
    grid_frames: int  # temporal size of base-grid level 0 (level l has grid_frames / 2**l)
    grid_channels: int  # channels of base-grid level 0 (level l has grid_channels * 2**l)
    local_frames: int  # temporal size of level 0 of each stage's local grids
    local_channels: int  # C_loc of stage 1 local grids; stage n uses C_loc * 0.5**(n-1), level l * 2**l
    grid_levels: int = 2  # levels of the base temporal grid
    local_levels: int = 3  # temporal levels of the hierarchical encoding
    # bumped whenever the fields change: 1 before ``luma``, 2 before ``motion``; a config without motion is written
    # as version 2 (no motion field), so such files stay as they were (``codec.bitstream_io`` reads all three)
    version: int = 2
    luma: LumaStage | None = None  # a full-resolution luma stage after the last one (4:2:0: out_channels 6)
    motion: GlobalMotion | None = None  # frames are windows of a larger canvas (a global-motion model)

    def __post_init__(self) -> None:
        for name in ("frames", "height", "width", "out_channels", "grid_frames", "grid_channels",
                     "local_frames", "local_channels", "grid_levels", "local_levels", "version"):
            _positive(name, getattr(self, name))
        n = len(self.strides)
        if n == 0 or n > 8:
            raise ValueError(f"strides must have 1 to 8 stages, got {self.strides!r}")
        for name in ("channels", "depths", "expansions"):
            seq = getattr(self, name)
            if len(seq) != n:
                raise ValueError(f"{name} must have one entry per stage ({n}), got {seq!r}")
            for v in seq:
                _positive(f"{name} entry", v)
        for s in self.strides:
            _positive("stride", s)
            if s > 16:
                raise ValueError(f"strides must be at most 16, got {s}")
        if self.motion is not None and self.version == 2:
            object.__setattr__(self, "version", 3)  # the layout with the motion field
        if self.version != (2 if self.motion is None else 3):
            raise ValueError(f"model config version {self.version} is not supported (expected 2, or 3 with motion)")
        if self.motion is not None:
            if self.motion.frames != self.frames:
                raise ValueError(f"the motion places {self.motion.frames} frames, the model has {self.frames}")
            ey, ex = self.motion.extent
            if not self.motion.fits(self.height, self.width):
                raise ValueError(f"a canvas of {self.height + ey}x{self.width + ex} for a {self.height}x{self.width} "
                                 f"frame is over {MAX_CANVAS_GROWTH + 1} times the frame each way")
        if self.luma is not None and self.out_channels != YUV420_CHANNELS:
            raise ValueError(f"a luma stage needs a 4:2:0 output ({YUV420_CHANNELS} channels), "
                             f"got {self.out_channels}")
        if max(self.channels) > 4096 or max(self.expansions) > 16 or max(self.depths) > 64:
            raise ValueError("channels (<=4096), expansions (<=16) or depths (<=64) out of range")
        if self.frames > 1_000_000 or self.height > 65536 or self.width > 65536:
            raise ValueError(f"video geometry out of range: {self.frames}x{self.height}x{self.width}")
        if self.grid_levels > 8 or self.local_levels > 8 or self.out_channels > 64:
            raise ValueError("grid_levels/local_levels (<=8) or out_channels (<=64) out of range")
        if self.grid_channels * 2 ** (self.grid_levels - 1) > 4096:
            raise ValueError("grid_channels too large")
        if self.local_channels * 2 ** (self.local_levels - 1) > 4096 or self.grid_frames > self.frames * 4 + 16:
            raise ValueError("local_channels or grid_frames out of range")
        if self.local_frames > self.frames * 4 + 16:
            raise ValueError("local_frames out of range")
        # Width of each stage's local grid at level 0: C_loc * 0.5**(n-1), never below 1.
        if self.base_height * self.upscale > 65536 + self.upscale or self.base_width * self.upscale > 65536 + self.upscale:
            raise ValueError("padded output too large")
        # Refused before any model is built: a few bytes of MODEL section must not make a decoder allocate GiBs.
        if self.parameter_count() > MAX_PARAMETERS:
            raise ValueError(f"model of {self.parameter_count():,} parameters is over the limit of {MAX_PARAMETERS:,}")

    @property
    def upscale(self) -> int:
        """Total upsampling factor from the base grid to the output grid."""
        return math.prod(self.strides)

    @property
    def canvas_height(self) -> int:
        """Rows of the output grid the network renders: the frame's, grown by the motion's extent."""
        return canvas_size(self.height, self.width, self.motion)[0]

    @property
    def canvas_width(self) -> int:
        return canvas_size(self.height, self.width, self.motion)[1]

    @property
    def base_height(self) -> int:
        return -(-self.canvas_height // self.upscale)

    @property
    def base_width(self) -> int:
        return -(-self.canvas_width // self.upscale)

    @property
    def head_channels(self) -> int:
        """Outputs of the head on the output grid: all of them, or U and V beside a luma stage (which makes Y)."""
        return self.out_channels if self.luma is None else 2

    def stage_shapes(self) -> list[StageShape]:
        """Every stage the network runs, in order: one per entry of ``strides``, then the luma stage if any."""
        widths = (self.channels[0],) + tuple(self.channels)
        shapes = [StageShape(s, widths[n], widths[n + 1], self.depths[n], self.expansions[n],
                             self.local_channels_at(n + 1)) for n, s in enumerate(self.strides)]
        if self.luma is not None:
            shapes.append(StageShape(LUMA_STRIDE, widths[-1], self.luma.channels, self.luma.depth,
                                     self.luma.expansion, self.local_channels_at(len(self.strides) + 1)))
        return shapes

    def stage_sizes(self) -> list[tuple[int, int]]:
        """(rows, cols) of the padded feature map after the stem (index 0) and after each of ``stage_shapes``;
        the head reads index ``len(strides)`` (the output grid), the luma stage's map is the last."""
        sizes = [(self.base_height, self.base_width)]
        for s, *_ in self.stage_shapes():
            h, w = sizes[-1]
            sizes.append((h * s, w * s))
        return sizes

    def parameter_count(self) -> int:
        """Parameters of the model this config describes, by arithmetic (no tensor is built): the layout of
        ``inr.model.HiNeRV``, which ``tests/reliability/test_fuzz_decode.py`` checks against."""
        h0, w0 = self.base_height, self.base_width
        levels = range(self.grid_levels)
        total = sum(max(1, self.grid_frames >> l) * h0 * w0 * (self.grid_channels << l) for l in levels)
        grid_out = sum(self.grid_channels << l for l in levels)
        total += grid_out * self.channels[0] * 9 + self.channels[0]  # stem: 3x3 conv
        for s, width_in, c_out, depth, expansion, c_loc in self.stage_shapes():
            for l in range(self.local_levels):  # temporal local grids, then their projection
                total += max(1, self.local_frames >> l) * s * s * (c_loc << l)
            total += sum(c_loc << l for l in range(self.local_levels)) * width_in + width_in
            hidden = c_out * expansion
            for b in range(depth):  # ConvNeXt: depthwise 3x3, Linear -> hidden, Linear -> c_out
                c_in = width_in if b == 0 else c_out
                total += c_in * 10 + c_in * hidden + hidden + hidden * c_out + c_out
        total += (self.channels[-1] + 1) * self.head_channels  # head
        return total + (0 if self.luma is None else self.luma.channels + 1)  # the luma stage's head

    def local_channels_at(self, stage: int) -> int:
        """C_loc,n = C_loc * 0.5**(n-1) for stage n (1-based), at least 1."""
        return max(1, self.local_channels >> (stage - 1))
