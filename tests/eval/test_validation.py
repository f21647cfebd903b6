"""The validation set (``eval.datasets.validation``): every clip at its size from installed packages, the same
samples each time, two halves of other contents."""
from __future__ import annotations

import numpy as np
import pytest

from eval.datasets.validation import SPLITS, VALIDATION_CLIPS, rgb_to_video, validation_clip


def test_the_halves_split_the_clips():
    tune, check = set(SPLITS["tune"]), set(SPLITS["check"])
    assert not tune & check and tune | check == set(VALIDATION_CLIPS) and len(check) >= 3


@pytest.mark.parametrize("name", sorted(VALIDATION_CLIPS))
def test_each_clip_is_what_it_says_and_the_same_each_time(name):
    video = validation_clip(name, frames=3)
    assert (video.format.width, video.format.height, video.num_frames, video.format.chroma) == (176, 144, 3, "420")
    again = validation_clip(name, frames=3)
    assert all(np.array_equal(a, b) for a, b in zip(video.planes, again.planes))
    y, u = video.planes[0].astype(float), video.planes[1].astype(float)
    assert y.std() > 5 and u.std() > 0.5  # content in luma and in chroma (no capped chroma PSNR)
    assert np.abs(np.diff(y, axis=0)).mean() > 0.5  # it moves


def test_rgb_conversion_is_bt709_full_range():
    grey = np.full((1, 2, 2, 3), 100, np.uint8)
    video = rgb_to_video(grey)
    assert [int(p[0, 0, 0]) for p in video.planes] == [100, 128, 128]
    red = rgb_to_video(np.tile(np.array([255, 0, 0], np.uint8), (1, 2, 2, 1)))
    assert int(red.planes[0][0, 0, 0]) == round(0.2126 * 255) and int(red.planes[2][0, 0, 0]) == 255
    with pytest.raises(ValueError, match="4:2:0"):
        rgb_to_video(np.zeros((1, 3, 2, 3), np.uint8))


def test_unknown_clips_and_sizes_are_refused():
    with pytest.raises(ValueError, match="unknown validation clip"):
        validation_clip("foreman")
    with pytest.raises(ValueError, match="smaller than"):
        validation_clip("carphone", frames=2, size=(352, 288))
