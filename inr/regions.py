"""Overlap padding for patch rendering: which region every stage must compute for one output patch.

A patch of the output is rendered exactly as the same pixels of a whole frame would be, because each stage
computes its region grown by its receptive field (one pixel per 3x3 conv) and the bilinear upsampling reads
the input rows and columns it really touches. Regions are half-open ``(y0, y1, x0, x1)`` in the padded
coordinates of each stage; everything is clipped to the padded frame, whose border is zero padding for the
convolutions exactly as in frame mode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Region = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open


def grow(region: Region, pad: int, size: tuple[int, int]) -> Region:
    """Grow ``region`` by ``pad`` on every side, clipped to ``[0, size)``."""
    y0, y1, x0, x1 = region
    h, w = size
    return max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)


def _source_span(lo: int, hi: int, stride: int, in_size: int) -> tuple[int, int]:
    """Input rows read by bilinear upsampling (align_corners=False, edge clamped) of output rows [lo, hi)."""
    first = max((lo + 0.5) / stride - 0.5, 0.0)
    last = max((hi - 1 + 0.5) / stride - 0.5, 0.0)
    return int(math.floor(first)), min(int(math.floor(last)) + 1, in_size - 1) + 1


def upsample_source(region: Region, stride: int, in_size: tuple[int, int]) -> Region:
    """The input region a bilinear upsampling by ``stride`` needs to produce ``region``."""
    y0, y1, x0, x1 = region
    sy0, sy1 = _source_span(y0, y1, stride, in_size[0])
    sx0, sx1 = _source_span(x0, x1, stride, in_size[1])
    return sy0, sy1, sx0, sx1


@dataclass(frozen=True)
class RenderPlan:
    """The regions each part of the network computes for one output region.

    ``stem`` is the base-grid region read by the stem conv; ``stem_out`` the stem output kept;
    ``blocks[n]`` the region stage n upsamples to and runs its blocks on; ``keep[n]`` the part of it
    that is exact after those blocks (and what stage n+1 reads).
    """

    stem: Region
    stem_out: Region
    blocks: tuple[Region, ...]
    keep: tuple[Region, ...]


def plan_regions(output: Region, sizes: list[tuple[int, int]], strides: tuple[int, ...],
                 depths: tuple[int, ...], stem_pad: int = 1) -> RenderPlan:
    """Work backwards from the output region to what every stage must compute.

    Args:
        output: the wanted region of the final (padded) feature map.
        sizes: padded sizes after the stem (index 0) and after each stage (``HiNeRVConfig.stage_sizes``).
        strides, depths: per stage.
        stem_pad: receptive-field radius of the stem conv.
    """
    keep: list[Region] = [output]
    blocks: list[Region] = []
    for n in range(len(strides) - 1, -1, -1):
        need = grow(keep[0], depths[n], sizes[n + 1])
        blocks.insert(0, need)
        keep.insert(0, upsample_source(need, strides[n], sizes[n]))
    stem_out = keep.pop(0)
    return RenderPlan(stem=grow(stem_out, stem_pad, sizes[0]), stem_out=stem_out,
                      blocks=tuple(blocks), keep=tuple(keep))


def crop_to(x_region: Region, want: Region) -> tuple[slice, slice]:
    """Slices that cut region ``want`` out of a tensor that holds region ``x_region``."""
    y0, y1, x0, x1 = x_region
    wy0, wy1, wx0, wx1 = want
    if not (y0 <= wy0 and wy1 <= y1 and x0 <= wx0 and wx1 <= x1):
        raise ValueError(f"region {want} is not inside {x_region}")
    return slice(wy0 - y0, wy1 - y0), slice(wx0 - x0, wx1 - x0)
