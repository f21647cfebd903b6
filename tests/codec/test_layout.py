"""Planes <-> model grid: lossless both ways for every chroma format, odd sizes included."""
import numpy as np
import pytest

from codec.layout import PlaneLayout
from codec.video import VideoFormat


@pytest.mark.parametrize("chroma,expected_channels", [("420jpeg", 6), ("422", 4), ("444", 3), ("mono", 1)])
@pytest.mark.parametrize("size", [(16, 12), (17, 13), (1, 1)])
@pytest.mark.parametrize("bit_depth", [8, 10])
def test_round_trip(chroma, expected_channels, size, bit_depth):
    w, h = size
    fmt = VideoFormat(width=w, height=h, fps_num=25, fps_den=1, chroma=chroma if bit_depth == 8 or chroma != "420jpeg" else "420", bit_depth=bit_depth)
    rng = np.random.default_rng(0)
    planes = [rng.integers(0, fmt.max_value + 1, size=(3, ph, pw)).astype(fmt.dtype) for ph, pw in fmt.plane_shapes]
    layout = PlaneLayout.for_format(fmt)
    assert layout.channels == expected_channels
    grid = layout.planes_to_grid(planes)
    assert grid.shape == (3, *layout.grid_size, expected_channels)
    back = layout.grid_to_planes(grid)
    for a, b in zip(planes, back):
        np.testing.assert_array_equal(a, b.numpy())


def test_420_grid_is_half_resolution_with_luma_subpixels():
    fmt = VideoFormat(width=4, height=2, fps_num=25, fps_den=1, chroma="420jpeg", bit_depth=8)
    y = np.arange(8, dtype=np.uint8).reshape(1, 2, 4)
    u = np.full((1, 1, 2), 100, np.uint8)
    v = np.full((1, 1, 2), 200, np.uint8)
    grid = PlaneLayout.for_format(fmt).planes_to_grid([y, u, v])
    assert grid.shape == (1, 1, 2, 6)
    assert grid[0, 0, 0].tolist() == [0, 1, 4, 5, 100, 200]
    assert grid[0, 0, 1].tolist() == [2, 3, 6, 7, 100, 200]
