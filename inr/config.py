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
    ``ceil(height / prod(strides))`` rows; the padded output is cropped back to ``height`` x ``width``.
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
    version: int = 2  # bumped whenever the fields change (1: before ``luma``; ``codec.bitstream_io`` reads both)
    luma: LumaStage | None = None  # a full-resolution luma stage after the last one (4:2:0: out_channels 6)

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
        if self.version != 2:
            raise ValueError(f"model config version {self.version} is not supported (expected 2)")
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
    def base_height(self) -> int:
        return -(-self.height // self.upscale)

    @property
    def base_width(self) -> int:
        return -(-self.width // self.upscale)

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
