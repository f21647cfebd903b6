"""Random access: ``hinerv decode --frames A:B`` gives exactly those frames of a whole decode, ``-`` streams the same
bytes to standard output, and a modular (``mwt``) file renders a segment with its module."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codec.clips import make_clip
from codec.decoder import decode_file, frame_range, render_chunks
from codec.encoder import EncodeOptions, encode
from codec.info import describe_file
from codec.y4m import read_y4m, write_y4m
from eval.datasets import two_scene_clip

ROOT = Path(__file__).resolve().parents[2]
FAST = EncodeOptions(preset="xs", epochs=4, prune_epochs=1, qat_epochs=1, batch_size=2, quant="entropy")
QUIET = dict(progress=False, log=lambda *_: None, checkpoint_interval=0)
RANGES = [(0, 11), (3, 9), (4, 8), (7, 8), (0, 1), (9, 11), (5, 11)]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A plain file of 11 frames (two full batches and a short one) and a modular one of two scenes."""
    d = tmp_path_factory.mktemp("range")
    make_clip(d / "plain.y4m", frames=11, crop=(40, 32, 64, 48))
    write_y4m(d / "two.y4m", two_scene_clip(6, (64, 48)))
    encode(d / "plain.y4m", d / "plain.bin", FAST, **QUIET)
    encode(d / "two.y4m", d / "mwt.bin", dataclasses.replace(FAST, plugins=("mwt:threshold=0.5",)), **QUIET)
    return {"plain": d / "plain.bin", "mwt": d / "mwt.bin"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "codec.cli", *args], cwd=ROOT, capture_output=True, env=env)


def test_frame_ranges_parse_and_refuse_what_is_outside() -> None:
    assert frame_range("2:5", 10) == (2, 5) and frame_range("7:", 10) == (7, 10) and frame_range(":3", 10) == (0, 3)
    assert frame_range(None, 10) == (0, 10) and frame_range(":", 10) == (0, 10)
    for bad, message in [("5:3", "empty"), ("0:11", "outside"), ("-1:4", "outside"), ("3", "A:B"),
                         ("a:b", "A:B"), ("1:2:3", "A:B")]:
        with pytest.raises(ValueError, match=message):
            frame_range(bad, 10)


def test_a_range_renders_in_the_batches_of_a_whole_decode() -> None:
    assert render_chunks(0, 11, 4, 11) == [(0, 4), (4, 8), (8, 11)]
    assert render_chunks(5, 9, 4, 11) == [(4, 8), (8, 11)]
    assert render_chunks(3, 4, 4, 11) == [(0, 4)]


@pytest.mark.parametrize("kind", ["plain", "mwt"])
def test_a_range_decode_equals_the_same_frames_of_the_whole_decode(files, kind) -> None:
    whole = decode_file(files[kind])
    assert whole.num_frames == (11 if kind == "plain" else 12)
    for a, b in RANGES:
        b = min(b, whole.num_frames)
        part = decode_file(files[kind], frames=(a, b))
        assert part.num_frames == b - a
        for full, got in zip(whole.planes, part.planes):
            assert np.array_equal(full[a:b], got), (kind, a, b)


def test_stdout_decode_is_the_file_decode_byte_for_byte(files, tmp_path) -> None:
    out = tmp_path / "part.y4m"
    to_file = _cli("decode", str(files["mwt"]), str(out), "--frames", "3:9", "-q")
    assert to_file.returncode == 0, to_file.stderr
    to_stdout = _cli("decode", str(files["mwt"]), "-", "--frames", "3:9", "-q")
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == out.read_bytes()
    assert b"<stdout>: 64x48 420 8-bit, 6 frames" in to_stdout.stderr  # messages go to standard error
    ref = tmp_path / "ref.y4m"
    write_y4m(ref, decode_file(files["mwt"]).frames(3, 9))
    assert ref.read_bytes() == out.read_bytes()
    whole = _cli("decode", str(files["plain"]), "-", "-q")
    assert whole.stdout == _bytes_of(decode_file(files["plain"]), tmp_path)


def _bytes_of(video, tmp_path: Path) -> bytes:
    path = tmp_path / "v.y4m"
    write_y4m(path, video)
    return path.read_bytes()


@pytest.mark.parametrize("spec,message", [("5:3", "empty"), ("0:99", "outside the video: it has 11 frames"),
                                          ("x", "A:B")])
def test_a_bad_range_is_one_line_and_no_file(files, tmp_path, spec, message) -> None:
    out = tmp_path / "x.y4m"
    r = _cli("decode", str(files["plain"]), str(out), "--frames", spec)
    err = r.stderr.decode()
    assert r.returncode == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_modular_file_shows_its_segments_and_a_segment_costs_less(files) -> None:
    info = describe_file(files["mwt"])
    (plugin,) = info["plugins"]
    segments = plugin["summary"]["segments"]
    assert [s["frames"] for s in segments] == ["0:6", "6:12"]  # the cut found between the two scenes
    assert all(0 < s["krr"] < 1 and s["macs_fraction"] < 1 for s in segments)
    r = _cli("info", str(files["mwt"]))
    assert b"segments: frames 0:6, krr" in r.stdout
    video = read_y4m(files["mwt"].with_name("two.y4m"))
    assert video.num_frames == 12


def test_a_stream_is_not_written_to_a_terminal(files) -> None:
    import pty

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    try:
        r = subprocess.run([sys.executable, "-m", "codec.cli", "decode", str(files["plain"]), "-"], cwd=ROOT,
                           stdout=follower, stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert r.returncode == 2 and b"will not write a Y4M stream to a terminal" in r.stderr
