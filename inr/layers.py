"""Building blocks of HiNeRV, each with explicit arguments (never the whole config).

Feature maps are kept channels-last, ``(B, H, W, C)``: the MLPs and LayerNorms act on the last axis with no
transposes, and the depthwise convolutions run on a channels-last NCHW view of the same memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .regions import Region


def temporal_lerp(grid: torch.Tensor, t: torch.Tensor, frames: int) -> torch.Tensor:
    """Linearly interpolate ``grid`` (T_g, ...) along time at frame indices ``t`` (B,) of a T-frame video.

    Frame t sits at grid position (t + 0.5) * T_g / T - 0.5 (cell centres aligned), clamped to the ends.
    """
    tg = grid.shape[0]
    pos = ((t.to(torch.float64) + 0.5) * (tg / frames) - 0.5).clamp(0.0, tg - 1)
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=tg - 1)
    w = (pos - i0.to(torch.float64)).to(grid.dtype)
    w = w.view(-1, *([1] * (grid.dim() - 1)))
    return torch.lerp(grid[i0], grid[i1], w)


def depthwise_conv_nhwc(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Apply a conv to a channels-last (B, H, W, C) map and return (B, H, W, C')."""
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def conv_crop_nhwc(conv: nn.Conv2d, x: torch.Tensor, crop: tuple[slice, slice]) -> torch.Tensor:
    """``depthwise_conv_nhwc(conv, x)[:, crop[0], crop[1]]``, computed as a valid conv of just what the crop reads.

    Only the sides where the crop reaches the edge of ``x`` get zero rows (the 'same' padding of ``conv``), so a
    patch's interior runs with no padding and no copy; the result is contiguous and its backward makes no
    zero-filled full-size gradient (as slicing a full conv output would). Stride-1 square 'same' convs only.
    """
    p = conv.padding[0]
    (ys, xs), (h, w) = crop, x.shape[1:3]
    top, bottom, left, right = ys.start - p, ys.stop + p, xs.start - p, xs.stop + p
    inner = x[:, max(top, 0):min(bottom, h), max(left, 0):min(right, w)]
    pads = (0, 0, max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    if any(pads):
        inner = F.pad(inner, pads)  # zeros where the whole map is zero-padded too
    out = F.conv2d(inner.permute(0, 3, 1, 2), conv.weight, conv.bias, groups=conv.groups)
    return out.permute(0, 2, 3, 1)


class TemporalGrid(nn.Module):
    """HiNeRV's base feature grid: ``levels`` grids (T/2^l, H, W, C*2^l), interpolated in time, concatenated."""

    def __init__(self, frames: int, grid_frames: int, height: int, width: int, channels: int, levels: int,
                 init_range: float = 1e-3) -> None:
        super().__init__()
        self.frames = frames
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(max(1, grid_frames >> l), height, width, channels << l).uniform_(
                -init_range, init_range))
            for l in range(levels))

    @property
    def out_channels(self) -> int:
        return sum(g.shape[-1] for g in self.grids)

    def forward(self, t: torch.Tensor, region: Region) -> torch.Tensor:
        """(B,) frame indices -> (B, h, w, C_total) features of ``region``."""
        y0, y1, x0, x1 = region
        return torch.cat([temporal_lerp(g[:, y0:y1, x0:x1], t, self.frames) for g in self.grids], dim=-1)


class HierarchicalEncoding(nn.Module):
    """Hierarchical positional encoding of one upsampling stage (temporal local grids).

    Level l is a parameter (T_loc/2^l, s*s*C*2^l): interpolated in time it gives, for the frame, one
    C*2^l-vector per sub-pixel phase of the s x s upsampling. Levels are concatenated and projected to
    the stage width; pixel (h, w) takes the vector of phase (h mod s, w mod s).
    """

    def __init__(self, stride: int, out_channels: int, frames: int, local_frames: int, channels: int,
                 levels: int, init_range: float = 1e-3) -> None:
        super().__init__()
        self.stride = stride
        self.frames = frames
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(max(1, local_frames >> l), stride * stride * (channels << l)).uniform_(
                -init_range, init_range))
            for l in range(levels))
        self.proj = nn.Linear(sum(channels << l for l in range(levels)), out_channels)

    def tiles(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) frame indices -> (B, s, s, C_out) encoding per sub-pixel phase."""
        s = self.stride
        parts = [temporal_lerp(g, t, self.frames).view(t.shape[0], s, s, -1) for g in self.grids]
        return self.proj(torch.cat(parts, dim=-1))

    def forward(self, t: torch.Tensor, region: Region) -> torch.Tensor:
        """(B,) frame indices -> (B, h, w, C_out) encoding of ``region``."""
        y0, y1, x0, x1 = region
        s = self.stride
        oy, ox = y0 % s, x0 % s
        tiles = self.tiles(t)  # (B, s, s, C)
        reps = (1, -(-(y1 - y0 + oy) // s), -(-(x1 - x0 + ox) // s), 1)
        return tiles.repeat(reps)[:, oy:oy + y1 - y0, ox:ox + x1 - x0]


class ConvNeXtBlock(nn.Module):
    """Depthwise 3x3 conv -> LayerNorm -> Linear(C_in -> e*C_out) -> GELU -> Linear(-> C_out), residual if widths match.

    The hidden width follows the output width, so a width-halving block costs what the blocks after it cost.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(in_channels, in_channels, kernel_size, padding=kernel_size // 2,
                                groups=in_channels)
        self.fc1 = nn.Linear(in_channels, out_channels * expansion)
        self.fc2 = nn.Linear(out_channels * expansion, out_channels)
        self.residual = in_channels == out_channels

    def forward(self, x: torch.Tensor, crop: tuple[slice, slice] | None = None,
                t: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, W, C_in) -> (B, h, w, C_out): the pixels ``crop`` of the conv output (default: all of them).

        A patch's outer ring is wrong after the zero-padded conv (its neighbours lie outside the patch), so
        the caller crops it here, before the MLP spends most of the block's work on it. ``t``: the (B,) frame
        indices of the batch, for subclasses whose MLP depends on the frame (``compress.plugins.mwt``).
        """
        if crop is None:
            y = depthwise_conv_nhwc(self.dwconv, x)
        else:
            x, y = x[:, crop[0], crop[1]], conv_crop_nhwc(self.dwconv, x, crop)
        y = self.mlp(F.layer_norm(y, y.shape[-1:]), t)
        return x + y if self.residual else y

    def mlp(self, y: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        """The pointwise MLP on the normalised conv output: fc1 -> GELU -> fc2."""
        return self.fc2(F.gelu(self.fc1(y)))
