"""Training losses: registry, values on known cases, gradients, small patches."""
import math

import pytest
import torch

from codec.losses import LOGARITHMIC, LOSSES, log_scale, plane_mse, psnr_yuv_from_mse


@pytest.mark.parametrize("name", LOSSES.names())
@pytest.mark.parametrize("size", [(72, 88), (16, 16), (2, 7), (1, 6), (5, 1), (1, 1)])
def test_every_loss_is_finite_and_differentiable(name, size):
    torch.manual_seed(0)
    target = torch.rand(2, *size, 6)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_()
    loss = LOSSES.get(name)(pred, target, 4)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_l1ssim_on_a_patch_one_pixel_thick_is_ssim_with_a_1x1_window():
    """A 1x1 window has no variance: SSIM is the mean of (2xy + C1) / (x^2 + y^2 + C1), C1 = 0.01^2."""
    torch.manual_seed(2)
    for shape in [(2, 1, 6, 6), (2, 5, 1, 6), (1, 1, 1, 3)]:
        pred, target = torch.rand(shape), torch.rand(shape)
        ssim = ((2 * pred * target + 1e-4) / (pred**2 + target**2 + 1e-4)).mean()
        expected = 0.7 * (pred - target).abs().mean() + 0.3 * (1 - ssim)
        assert float(LOSSES.get("l1ssim")(pred, target, 4)) == pytest.approx(float(expected), rel=1e-5)


def test_losses_prefer_the_closer_prediction():
    torch.manual_seed(1)
    target = torch.rand(1, 72, 88, 6)
    near = (target + 0.01 * torch.randn_like(target)).clamp(0, 1)
    far = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    for name in LOSSES.names():
        fn = LOSSES.get(name)
        assert fn(near, target, 4) < fn(far, target, 4), name


def test_yuvlog_weights_luma_six_times():
    target = torch.zeros(1, 4, 4, 6)
    pred = target.clone()
    pred[..., :4] = 0.1  # luma error only
    luma_only = LOSSES.get("yuvlog")(pred, target, 4)
    mse = plane_mse(pred, target, 4)
    assert mse.shape == (3,)
    assert math.isclose(float(mse[0]), 0.01, rel_tol=1e-5)
    assert math.isclose(float(luma_only), (6 * math.log(0.01) + 2 * math.log(1e-10)) / 8, rel_tol=1e-5)


def test_psnr_yuv_from_mse():
    assert psnr_yuv_from_mse(torch.tensor([1e-4, 1e-2, 1e-2])) == pytest.approx((6 * 40 + 20 + 20) / 8)
    assert psnr_yuv_from_mse(torch.tensor([1e-3])) == pytest.approx(30)


def test_log_scale_turns_a_weight_per_log_unit_into_the_losss_units():
    """d loss / d log(loss): 1 for a loss that is already a logarithm, the loss's value for any other."""
    assert LOGARITHMIC <= set(LOSSES.names())
    assert log_scale("yuvlog", torch.tensor(-7.0)) == 1.0
    value = torch.tensor(2e-3, requires_grad=True)
    assert log_scale("mse", value * 1) == pytest.approx(2e-3)
    assert log_scale("l1ssim", torch.tensor(0.0)) > 0  # never a zero (or negative) weight
