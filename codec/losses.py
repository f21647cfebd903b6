"""Training losses on the model's output grid, selected by name (``hinerv encode --loss``).

Both tensors are (B, H, W, C) in [0, 1] with the layout of ``codec.layout.PlaneLayout``: the first
``luma_channels`` channels are luma, then U and V.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim, ssim

from common.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
LOSSES: Registry[LossFn] = Registry("loss")


def plane_mse(pred: torch.Tensor, target: torch.Tensor, luma_channels: int) -> torch.Tensor:
    """Mean squared error per plane: (3,) for Y, U, V or (1,) for mono."""
    err = (pred - target).pow(2).flatten(0, -2).mean(dim=0)  # (C,)
    luma = err[:luma_channels].mean().unsqueeze(0)
    return torch.cat([luma, err[luma_channels:]]) if err.numel() > luma_channels else luma


def yuv_log(mse: torch.Tensor) -> torch.Tensor:
    """(6 log MSE_Y + log MSE_U + log MSE_V) / 8 of per-plane MSEs (log MSE_Y alone for mono)."""
    mse = mse.clamp_min(1e-10).log()
    if mse.numel() == 1:
        return mse[0]
    return (6 * mse[0] + mse[1] + mse[2]) / 8


@LOSSES.register("yuvlog")
def yuv_log_mse(pred: torch.Tensor, target: torch.Tensor, luma_channels: int) -> torch.Tensor:
    """(6 log MSE_Y + log MSE_U + log MSE_V) / 8: the log of the reported PSNR-YUV's terms.

    Aimed at the metric we report; measured +1.3 dB PSNR-YUV over plain MSE on carphone (docs/design.md §9).
    """
    return yuv_log(plane_mse(pred, target, luma_channels))


@LOSSES.register("mse")
def mse_loss(pred: torch.Tensor, target: torch.Tensor, luma_channels: int) -> torch.Tensor:
    return F.mse_loss(pred, target)


# Losses that are logarithms of a distortion: a rate weight λ is in their units (see log_scale)
LOGARITHMIC = frozenset({"yuvlog"})


def log_scale(name: str, loss: torch.Tensor) -> float | torch.Tensor:
    """d loss / d log(loss): what turns a rate weight stated per unit of log distortion (as ``--lambda`` and every
    rate controller's starting point are, tuned on yuvlog) into the units of the loss ``name``. 1 for a logarithmic
    loss, the loss's current value for any other (``--loss mse`` is ~1e-3: λ = 5 per log unit is ~5e-3 per unit
    of MSE; unscaled, its rate term swamped the distortion and the encode collapsed, issue #19). That value stays
    a detached 0-D tensor on the loss's device: read every step, a float would wait for the GPU each time."""
    return 1.0 if name in LOGARITHMIC else loss.detach().clamp_min(1e-12)


# Losses that are not a mean over frames, as (a statistic that is, the loss as a function of it): data-parallel
# training averages the statistic over the whole batch first, so its ranks train the whole batch's loss.
# Every other loss is a mean over frames (of equal sizes) and is averaged as it is.
BATCH_STATISTICS: dict[str, tuple[LossFn, Callable[[torch.Tensor], torch.Tensor]]] = {
    "yuvlog": (plane_mse, yuv_log),
}


def structural_similarity(pred: torch.Tensor, target: torch.Tensor, win_size: int = 5) -> torch.Tensor:
    """MS-SSIM over the grid channels, falling back to smaller windows and then SSIM on small patches."""
    x, y = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    side = min(x.shape[-2:])
    for win in range(win_size, 2, -2):
        if side > (win - 1) * 16:
            return ms_ssim(x, y, data_range=1.0, win_size=win)
    win = max(1, min(win_size, side if side % 2 else side - 1))
    if side == 1:  # a patch one pixel thick (a grid's last row or column of patches): pytorch_msssim would
        # squeeze its unit axis away and fail. A 1x1 window sees each pixel alone, so doubling the axis is exact.
        x, y = (v.repeat(1, 1, 2 if v.shape[-2] == 1 else 1, 2 if v.shape[-1] == 1 else 1) for v in (x, y))
    return ssim(x, y, data_range=1.0, win_size=win)


@LOSSES.register("l1ssim")
def l1_msssim(pred: torch.Tensor, target: torch.Tensor, luma_channels: int) -> torch.Tensor:
    """HiNeRV's loss: 0.7 * L1 + 0.3 * (1 - MS-SSIM) with a 5x5 window."""
    return 0.7 * F.l1_loss(pred, target) + 0.3 * (1 - structural_similarity(pred, target))


def psnr_yuv_from_mse(mse: torch.Tensor) -> float:
    """PSNR-YUV (6Y+U+V)/8 of per-plane MSEs on a [0, 1] scale (Y alone for mono)."""
    psnr = -10 * torch.log10(mse.clamp_min(1e-12))
    if psnr.numel() == 1:
        return float(psnr[0])
    return float((6 * psnr[0] + psnr[1] + psnr[2]) / 8)
