"""Teachers (``codec.teacher``): trained before the student, kept in ``--teacher-cache`` and reused for the same
clip and settings only, kept beside the output for ``--resume`` and removed after, reported apart
(``teacher_seconds``), never in the file."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codec.bitstream_io import read_bitstream
from codec.encoder import EncodeOptions, encode
from codec.teacher import teacher_config
from compress.hooks import TeacherRequest
from inr.presets import SHALLOW_MAX_PARAMS, SMALL_WIDTH_RATIO, build_config, config_parameters

ROOT = Path(__file__).resolve().parents[2]
FAST = EncodeOptions(preset="s", epochs=4, prune_epochs=2, qat_epochs=2, batch_size=2,
                     plugins=("indistill:scale=2.0",))
QUIET = dict(progress=False, log=lambda *_: None, checkpoint_interval=0)


def test_the_teacher_lines_up_with_the_student_or_is_refused():
    student = build_config(72, 88, 8, 6, "xl")
    auto = teacher_config(TeacherRequest(scale=4.0), student)
    assert auto.strides == student.strides and all(c >= d for c, d in zip(auto.channels, student.channels))
    assert teacher_config(TeacherRequest("xl"), student).channels == student.channels
    with pytest.raises(ValueError, match="narrower than the student"):
        teacher_config(TeacherRequest("s"), student)
    small = build_config(72, 88, 8, 6, "s", 6000)  # its widths fall by SMALL_WIDTH_RATIO, a 64x teacher's would not
    big = teacher_config(TeacherRequest(scale=64.0), small)
    assert config_parameters(big) > SHALLOW_MAX_PARAMS and all(c >= d for c, d in zip(big.channels, small.channels))
    assert big.channels[1] == int(big.channels[0] * SMALL_WIDTH_RATIO)  # the student's ratio, not its budget's
    for luma in (True, False):  # the student's luma stage, or none, whatever the teacher's budget would choose
        small = build_config(72, 88, 8, 6, "s", 3000, luma=luma)
        assert (teacher_config(TeacherRequest(scale=8.0), small).luma is not None) == luma


def test_a_cached_teacher_is_reused_for_the_same_clip_and_settings_only(clip, tmp_path):
    cache = tmp_path / "teachers"
    options = dataclasses.replace(FAST, teacher_cache=str(cache))
    first = encode(clip, tmp_path / "a.bin", options, **QUIET)
    assert [t["cached"] for t in first.teachers] == [False] and first.teacher_seconds > 0
    assert len(list(cache.glob("teacher-*.pt"))) == 1 and not list(cache.glob("*.ckpt"))
    second = encode(clip, tmp_path / "b.bin", options, **QUIET)
    assert [t["cached"] for t in second.teachers] == [True]
    assert second.teachers[0]["train_seconds"] == first.teachers[0]["train_seconds"]
    assert (tmp_path / "b.bin").read_bytes() == (tmp_path / "a.bin").read_bytes()  # the same teacher taught
    # sharedproj asks for the same teacher: it reads it too; another seed trains another
    proj = encode(clip, tmp_path / "c.bin", dataclasses.replace(options, plugins=("sharedproj:scale=2.0",)), **QUIET)
    assert [t["cached"] for t in proj.teachers] == [True]
    other = encode(clip, tmp_path / "d.bin", dataclasses.replace(options, seed=1), **QUIET)
    assert [t["cached"] for t in other.teachers] == [False] and len(list(cache.glob("teacher-*.pt"))) == 2
    # a damaged file is trained afresh, not an error
    for f in cache.glob("teacher-*.pt"):
        f.write_bytes(b"garbage")
    again = encode(clip, tmp_path / "e.bin", options, **QUIET)
    assert [t["cached"] for t in again.teachers] == [False]
    assert (tmp_path / "e.bin").read_bytes() == (tmp_path / "a.bin").read_bytes()


def test_without_a_cache_the_teacher_is_removed_and_never_in_the_file(clip, tmp_path):
    out = tmp_path / "x.bin"
    result = encode(clip, out, FAST, **QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]
    parsed = read_bitstream(out.read_bytes())
    plain = encode(clip, tmp_path / "plain.bin", dataclasses.replace(FAST, plugins=()), **QUIET)
    assert len(parsed.tensors) == len(read_bitstream((tmp_path / "plain.bin").read_bytes()).tensors)
    assert result.params == plain.params and parsed.plugins[0].name == "indistill" and not parsed.plugins[0].coded


@pytest.mark.parametrize("stage,step", [("teacher", 5), ("train", 4)])
def test_an_encode_stopped_in_its_teacher_or_its_student_resumes_to_the_same_bytes(clip, tmp_path, interrupt,
                                                                                   stage, step):
    ref, out = tmp_path / "ref.bin", tmp_path / "out.bin"
    encode(clip, ref, FAST, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        encode(clip, out, FAST, observers=[interrupt(stage, step)], **QUIET)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out"))
    assert left == (["out.bin.teacher.ckpt"] if stage == "teacher" else
                    ["out.bin.ckpt", "out.bin.teacher"])
    resumed = encode(clip, out, FAST, resume=True, **QUIET)
    assert out.read_bytes() == ref.read_bytes()
    assert [t["cached"] for t in resumed.teachers] == [stage == "train"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out.bin"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "codec.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env)


def test_cli_reports_the_teacher_apart(clip, tmp_path):
    report, cache = tmp_path / "r.json", tmp_path / "cache"
    r = _cli("encode", str(clip), str(tmp_path / "o.bin"), "-q", "--preset", "s", "--epochs", "3",
             "--plugin", "sharedproj:scale=2.0,mix=0.5", "--teacher-cache", str(cache), "--json", str(report))
    assert r.returncode == 0, r.stderr
    data = json.loads(report.read_text())
    assert data["teacher_seconds"] > 0 and data["teachers"][0]["params"] > data["params"]
    assert data["encode_cpu_seconds"] > 0 and data["teachers"][0]["train_cpu_seconds"] > 0
    assert "of teacher" in r.stdout and data["options"]["teacher_cache"] == str(cache)
    bad = _cli("encode", str(clip), str(tmp_path / "p.bin"), "--teacher-cache", str(report), "--plugin", "indistill")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--teacher-cache" in bad.stderr
    narrow = _cli("encode", str(clip), str(tmp_path / "q.bin"), "--params", "20000", "--plugin", "indistill:teacher=s")
    assert narrow.returncode == 2 and "narrower than the student" in narrow.stderr
    assert not (tmp_path / "q.bin").exists()
