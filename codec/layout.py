"""How a video's planes map onto the model's output grid, natively in YUV (no RGB round trip).

The grid has the chroma planes' size; each grid pixel carries the ``sy * sx`` luma samples it covers
(pixel-unshuffled) followed by U and V. For 4:2:0 that is a half-resolution, 6-channel output (docs/design.md §9:
faster and better than a full-resolution luma head). 4:4:4 gives 3 channels, 4:2:2 gives 4, mono 1.
Odd luma sizes are padded by edge replication to a whole number of grid pixels and cropped on the way back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PlaneLayout:
    """The mapping between planes (Y[, U, V]) and a (T, H, W, C) grid."""

    luma_height: int
    luma_width: int
    sy: int  # vertical chroma subsampling (1 or 2)
    sx: int  # horizontal chroma subsampling (1 or 2)
    chroma: bool  # False for monochrome video

    @classmethod
    def for_format(cls, fmt) -> "PlaneLayout":
        """Layout of a ``codec.video.VideoFormat``."""
        sy, sx = fmt.subsampling
        mono = fmt.num_planes == 1
        return cls(fmt.height, fmt.width, 1 if mono else sy, 1 if mono else sx, not mono)

    @property
    def luma_channels(self) -> int:
        return self.sy * self.sx

    @property
    def channels(self) -> int:
        return self.luma_channels + (2 if self.chroma else 0)

    @property
    def grid_size(self) -> tuple[int, int]:
        return -(-self.luma_height // self.sy), -(-self.luma_width // self.sx)

    def planes_to_grid(self, planes: list[np.ndarray]) -> torch.Tensor:
        """Integer planes [(T, h, w)...] -> integer grid (T, H, W, C): uint8 for 8-bit, int16 above."""
        gh, gw = self.grid_size
        y = np.asarray(planes[0])
        t = y.shape[0]
        pad = ((0, 0), (0, gh * self.sy - y.shape[1]), (0, gw * self.sx - y.shape[2]))
        if any(p[1] for p in pad):
            y = np.pad(y, pad, mode="edge")
        y = y.reshape(t, gh, self.sy, gw, self.sx).transpose(0, 1, 3, 2, 4).reshape(t, gh, gw, self.luma_channels)
        parts = [y] + [np.asarray(p)[..., None] for p in planes[1:3]] if self.chroma else [y]
        grid = np.concatenate(parts, axis=-1)
        if grid.dtype != np.uint8:  # up to 12-bit samples fit int16, which torch supports everywhere
            grid = grid.astype(np.int16)
        return torch.from_numpy(np.ascontiguousarray(grid))

    def grid_to_planes(self, grid: torch.Tensor) -> list[torch.Tensor]:
        """A (T, H, W, C) grid (any dtype) -> planes [(T, h, w)...] cropped to the true sizes."""
        t, gh, gw, _ = grid.shape
        y = grid[..., : self.luma_channels].reshape(t, gh, gw, self.sy, self.sx)
        y = y.permute(0, 1, 3, 2, 4).reshape(t, gh * self.sy, gw * self.sx)
        planes = [y[:, : self.luma_height, : self.luma_width]]
        if self.chroma:
            planes += [grid[..., self.luma_channels], grid[..., self.luma_channels + 1]]
        return planes
