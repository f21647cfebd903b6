"""Format version 4's compact grids: 8-bit minifloat steps and scales, quarter-symbol locs."""
from __future__ import annotations

import numpy as np
import pytest

from bitstream.compact import (
    LOC_MAX,
    SCALE_EXP_MIN,
    STEP_EXP_MIN,
    loc_code,
    loc_from_code,
    minifloat_code,
    minifloat_from_code,
    minifloat_max,
    round_loc,
    round_minifloat,
)

EXP_MINS = [STEP_EXP_MIN, SCALE_EXP_MIN]


@pytest.mark.parametrize("exp_min", EXP_MINS)
def test_every_code_is_an_fp16_value_that_codes_back(exp_min: int) -> None:
    values = [minifloat_from_code(c, exp_min) for c in range(256)]
    assert all(b > a for a, b in zip(values, values[1:]))  # one value a code, in order
    assert all(float(np.float16(v)) == v for v in values)  # a QuantizedTensor's fp16 scales hold them exactly
    assert [minifloat_code(v, exp_min) for v in values] == list(range(256))
    assert values[0] == 2.0**exp_min and values[-1] == minifloat_max(exp_min) == 31 * 2.0 ** (exp_min + 11)


@pytest.mark.parametrize("exp_min", EXP_MINS)
def test_values_off_the_grid_have_no_code(exp_min: int) -> None:
    v = minifloat_from_code(100, exp_min)
    for off in (v * (1 + 2**-8), 2.0**exp_min / 2, minifloat_max(exp_min) * 2, 0.0, -v, float("nan"), float("inf")):
        assert minifloat_code(off, exp_min) is None


@pytest.mark.parametrize("exp_min", EXP_MINS)
def test_rounding_picks_the_nearest_grid_value_and_clamps(exp_min: int) -> None:
    grid = np.array([minifloat_from_code(c, exp_min) for c in range(256)])
    rng = np.random.default_rng(0)
    x = np.exp2(rng.uniform(exp_min - 2, exp_min + 14, 5000))
    r = round_minifloat(x, exp_min)
    nearest = grid[np.abs(np.clip(x, grid[0], grid[-1])[:, None] - grid[None, :]).argmin(axis=1)]
    assert np.array_equal(r, nearest)
    assert all(minifloat_code(v, exp_min) is not None for v in r)
    # the relative error on the grid is at most half a mantissa step: 1/32
    inside = (x >= grid[0]) & (x <= grid[-1])
    assert np.max(np.abs(r[inside] / x[inside] - 1)) <= 1 / 32


def test_locs_are_quarters_within_the_bound() -> None:
    assert [loc_code(v) for v in (0.0, 0.25, -1.75, LOC_MAX, -LOC_MAX)] == [0, 1, -7, 2048, -2048]
    assert all(loc_code(v) is None for v in (0.1, LOC_MAX + 0.25, float("nan"), float("inf")))
    assert loc_from_code(-7) == -1.75
    with pytest.raises(ValueError):
        loc_from_code(2049)
    x = np.array([0.12, 0.13, -0.4, 3.9, 700.0, -1e6])
    assert np.array_equal(round_loc(x), [0.0, 0.25, -0.5, 4.0, LOC_MAX, -LOC_MAX])
