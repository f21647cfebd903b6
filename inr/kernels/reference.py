"""Pure-PyTorch references of the fused kernels: the model's two-step path, written out on its own.

They compute exactly what bilinear upsampling of the held region followed by ``x + HierarchicalEncoding(t, region)``
compute (``tests/inr/test_kernels.py`` checks it), so they serve both as the CPU path and as the oracle the
Triton kernels are tested against. They do not import ``inr.layers``, so the model may dispatch to them.

Conventions: feature maps are channels-last ``(B, H, W, C)``; ``tiles`` is ``(B, s, s, C)``, the encoding of
each sub-pixel phase; regions are half-open ``(y0, y1, x0, x1)`` in the coordinates of their own stage.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Region = tuple[int, int, int, int]


def check_upsample_args(x_in: torch.Tensor, tiles: torch.Tensor, in_region: Region, out_region: Region,
                        stride: int) -> None:
    """Refuse shapes and regions the upsampling cannot serve (shared by the reference and the kernels)."""
    if x_in.dim() != 4 or tiles.dim() != 4:
        raise ValueError(f"x_in and tiles must be (B, H, W, C) and (B, s, s, C), got {tuple(x_in.shape)} "
                         f"and {tuple(tiles.shape)}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    b, h, w, c = x_in.shape
    if tuple(tiles.shape) != (b, stride, stride, c):
        raise ValueError(f"tiles must be {(b, stride, stride, c)}, got {tuple(tiles.shape)}")
    iy0, iy1, ix0, ix1 = in_region
    if (iy1 - iy0, ix1 - ix0) != (h, w):
        raise ValueError(f"x_in holds {h}x{w} pixels but in_region {in_region} is {iy1 - iy0}x{ix1 - ix0}")
    oy0, oy1, ox0, ox1 = out_region
    if not (iy0 * stride <= oy0 < oy1 <= iy1 * stride and ix0 * stride <= ox0 < ox1 <= ix1 * stride):
        raise ValueError(f"out_region {out_region} is not inside the upsampled in_region "
                         f"{(iy0 * stride, iy1 * stride, ix0 * stride, ix1 * stride)}")


def phase_gather(tiles: torch.Tensor, height: int, width: int, y0: int, x0: int) -> torch.Tensor:
    """(B, s, s, C) tiles -> (B, height, width, C): pixel (h, w) takes ``tiles[:, (y0+h) % s, (x0+w) % s]``.

    The same ops as ``inr.layers.HierarchicalEncoding.forward`` (repeat, then crop at the phase offset).
    """
    s = tiles.shape[1]
    oy, ox = y0 % s, x0 % s
    reps = (1, -(-(height + oy) // s), -(-(width + ox) // s), 1)
    return tiles.repeat(reps)[:, oy:oy + height, ox:ox + width]


def phase_gather_add_ref(x: torch.Tensor, tiles: torch.Tensor, y0: int, x0: int) -> torch.Tensor:
    """``x + tiles[:, (y0+h) % s, (x0+w) % s]`` for every pixel (h, w) of x (B, H, W, C)."""
    if x.dim() != 4 or tiles.dim() != 4 or tiles.shape[1] != tiles.shape[2] or tiles.shape[0] != x.shape[0] \
            or tiles.shape[3] != x.shape[3]:
        raise ValueError(f"x must be (B, H, W, C) and tiles (B, s, s, C), got {tuple(x.shape)} "
                         f"and {tuple(tiles.shape)}")
    return x + phase_gather(tiles, x.shape[1], x.shape[2], y0, x0)


def upsample_bilinear_ref(x_in: torch.Tensor, in_region: Region, out_region: Region, stride: int) -> torch.Tensor:
    """Bilinear x``stride`` upsampling (align_corners=False) of the held region, cropped to ``out_region``.

    Identical to bilinear upsampling of the held region: (B, h, w, C) holding ``in_region`` -> (B, oh, ow, C).
    """
    y = F.interpolate(x_in.permute(0, 3, 1, 2), scale_factor=stride, mode="bilinear", align_corners=False)
    y = y.permute(0, 2, 3, 1)  # (B, h*s, w*s, C)
    oy, ox = in_region[0] * stride, in_region[2] * stride
    return y[:, out_region[0] - oy:out_region[1] - oy, out_region[2] - ox:out_region[3] - ox]


def upsample_add_encoding_ref(x_in: torch.Tensor, tiles: torch.Tensor, in_region: Region, out_region: Region,
                              stride: int) -> torch.Tensor:
    """Upsample the held ``in_region`` by ``stride``, crop ``out_region``, add the phase-gathered tiles.

    Args:
        x_in: (B, h, w, C) holding ``in_region`` of the stage input.
        tiles: (B, s, s, C) encoding per sub-pixel phase (``HierarchicalEncoding.tiles``).
        in_region, out_region: regions of the stage input and output (``out_region`` inside the upsampled
            ``in_region``).
    Returns:
        (B, oh, ow, C) in the promoted dtype of x_in and tiles.
    """
    check_upsample_args(x_in, tiles, in_region, out_region, stride)
    b, h, w, c = x_in.shape
    s = stride
    y = F.interpolate(x_in.permute(0, 3, 1, 2), scale_factor=s, mode="bilinear", align_corners=False)
    # The encoding is added on the whole upsampled in_region, whose first row and column have phase 0 (it starts
    # at in_region * s): a broadcast of the tiles over (h, s, w, s), so no gathered copy of them is made, and
    # its backward is one reduction. Values equal phase_gather's add bit for bit; the crop comes last.
    y = y.permute(0, 2, 3, 1).reshape(b, h, s, w, s, c) + tiles.view(b, 1, s, 1, s, c)
    y = y.view(b, h * s, w * s, c)
    oy, ox = in_region[0] * s, in_region[2] * s
    return y[:, out_region[0] - oy:out_region[1] - oy, out_region[2] - ox:out_region[3] - ox]


__all__ = ["check_upsample_args", "phase_gather", "phase_gather_add_ref", "upsample_add_encoding_ref",
           "upsample_bilinear_ref"]
