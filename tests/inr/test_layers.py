"""conv_crop_nhwc: a cropped 'same' conv computed as a valid conv equals cropping the full conv's output."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from inr.layers import conv_crop_nhwc, depthwise_conv_nhwc


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("crop", [
    (slice(1, 11), slice(1, 8)),  # interior: no padding at all
    (slice(0, 11), slice(0, 8)),  # touches the top and left edges: zero rows there only
    (slice(1, 12), slice(1, 9)),  # bottom and right edges
    (slice(0, 12), slice(0, 9)),  # the whole map: a plain 'same' conv
    (slice(3, 4), slice(6, 7)),  # one pixel, deep inside
    (slice(0, 1), slice(8, 9)),  # one pixel in a corner
])
def test_conv_crop_equals_cropped_full_conv(kernel, crop):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, kernel, padding=kernel // 2, groups=6)
    x = torch.randn(2, 12, 9, 6, requires_grad=True)
    ref = depthwise_conv_nhwc(conv, x)[:, crop[0], crop[1]]
    got = conv_crop_nhwc(conv, x, crop)
    assert got.shape == ref.shape and got.is_contiguous()
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    g = torch.randn_like(ref)
    params = (x, conv.weight, conv.bias)
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
