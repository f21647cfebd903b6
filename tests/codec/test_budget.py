"""What the encoder decides before training: ``--time-budget``'s epochs (timed on the clip, kept by a resume) and
the note that a fixed model size cannot meet a target."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import codec.encoder as encoder_module
from codec.budget import epochs_for_budget, time_train_step
from codec.encoder import EncodeOptions, encode, target_note
from codec.layout import PlaneLayout
from codec.train import TrainConfig, TrainingData
from codec.video import read_video
from inr.model import HiNeRV
from inr.presets import build_config

ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, log=lambda *_: None, checkpoint_interval=0)


def test_epochs_for_budget_fill_it_with_the_other_stages_priced_in():
    # 10 steps an epoch at 0.1 s: 1 s a train epoch; prune (0.2 x 2.0) and QAT (0.1 x 3.0) add 0.7 s
    assert epochs_for_budget(170.0, 0.1, 10, 2.0, 3.0) == 100
    assert epochs_for_budget(169.0, 0.1, 10, 2.0, 3.0) == 99
    assert epochs_for_budget(0.5, 0.1, 10, 2.0, 3.0) == 1  # never none


def test_a_budget_prices_a_prune_stage_held_to_a_minimum_of_steps():
    """A stage steering to a target runs at least the quantizer's min_steering_steps: on a short clip (few steps an
    epoch) that floor, not 20% of the epochs, is what the prune stage costs, and it comes off the budget first."""
    # 3 steps an epoch at 0.1 s: 1000 prune steps at 2.0x cost 200 s; each epoch then costs 0.3 s x 1.3
    assert epochs_for_budget(239.5, 0.1, 3, 2.0, 3.0, min_prune_steps=1000) == 101  # (239.5 - 200) // 0.39
    assert epochs_for_budget(239.5, 0.1, 3, 2.0, 3.0) == 469  # no floor: the share alone (0.51 s an epoch)
    spent = lambda e: 0.1 * (3 * e * 1.3 + 2.0 * max(1000, 0.2 * 3 * e))  # noqa: E731  what an encode takes
    assert spent(epochs_for_budget(239.5, 0.1, 3, 2.0, 3.0, min_prune_steps=1000)) <= 239.5
    long = epochs_for_budget(1e4, 0.1, 3, 2.0, 3.0, min_prune_steps=1000)  # 0.2 x 3 x 19607 steps: the floor is met
    assert long == epochs_for_budget(1e4, 0.1, 3, 2.0, 3.0) == 19607


def test_timing_a_step_leaves_the_model_and_the_random_state_alone(clip):
    video = read_video(clip)
    layout = PlaneLayout.for_format(video.format)
    data = TrainingData(layout.planes_to_grid(video.planes), video.format.max_value, layout, 2)
    model = HiNeRV(build_config(*layout.grid_size, video.num_frames, layout.channels, "s"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    seconds = time_train_step(model, data, TrainConfig())
    assert 0 < seconds < 10
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_budget_picks_the_epochs_and_a_resume_keeps_them(clip, tmp_path, interrupt, monkeypatch):
    options = EncodeOptions(preset="s", batch_size=2, time_budget=0.05, quant="entropy")
    monkeypatch.setattr(encoder_module, "time_train_step", lambda *a, **k: 0.1)  # 3 s at 3 steps x 0.1 s x 1.87
    ref = encode(clip, tmp_path / "ref.bin", options, **QUIET)
    assert ref.options["epochs"] == epochs_for_budget(3.0, 0.1, 3, 2.3, 2.9) == 5
    with pytest.raises(KeyboardInterrupt):
        encode(clip, tmp_path / "out.bin", options, observers=[interrupt("train", 4)], **QUIET)
    monkeypatch.setattr(encoder_module, "time_train_step", lambda *a, **k: 0.01)  # a faster machine now
    resumed = encode(clip, tmp_path / "out.bin", options, resume=True, **QUIET)
    assert resumed.options["epochs"] == 5
    assert (tmp_path / "out.bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()
    fresh = encode(clip, tmp_path / "fresh.bin", options, **QUIET)  # not resumed: timed afresh
    assert fresh.options["epochs"] == epochs_for_budget(3.0, 0.01, 3, 2.3, 2.9)


def test_a_budget_refuses_fixed_stage_epochs():
    with pytest.raises(ValueError, match="time-budget"):
        EncodeOptions(time_budget=1.0, qat_epochs=2)
    with pytest.raises(ValueError, match="time-budget"):
        EncodeOptions(time_budget=0.0)


@pytest.mark.parametrize("options,params,expected", [
    (EncodeOptions(preset="xs", target_bpp=0.2), 3603, "at most"),  # issue #19's case: 22 bits a parameter
    (EncodeOptions(preset="xl", target_bpp=0.001), 200_000, "at least"),
    (EncodeOptions(preset="s", target_bpp=0.02), 3894, None),  # 2.1 bits a parameter: reachable
    (EncodeOptions(target_bpp=0.2), 3603, None),  # --preset auto sizes the model
    (EncodeOptions(preset="xs"), 3603, None)])  # no target
def test_an_unreachable_target_is_named(options, params, expected):
    note = target_note(options, 16 * 176 * 144, params, (0.75, 12.0))
    assert (note is None) == (expected is None)
    if expected:
        assert expected in note and "--preset auto" in note and f"{params:,} parameters" in note


@pytest.mark.parametrize("params,expected", [
    (60_000, "too small"),  # the measured collapse: 9.2 KB on --params 60000 (54,125 built), 17.6 dB
    (36_000, None),  # 2.0 bits a parameter: at the floor
    (600_000, "out of reach"),  # under the reachable range too: that note, which names where it lands
    (20_000, None)])
def test_a_target_that_would_zero_most_of_the_model_is_named(params, expected):
    options = EncodeOptions(params=params, target_bpp=0.1814, quant="entropy")  # carphone's QP 27 rate
    note = target_note(options, 16 * 176 * 144, params, (0.75, 12.0), collapse_below=2.0)
    assert (note is None) == (expected is None), note
    if expected:
        assert note.startswith("the target (") and expected in note and f"--params {params:,}" in note
        assert ("loss of quality" in note) == (expected == "too small") and "--preset auto" in note
    assert target_note(options, 16 * 176 * 144, 60_000, (0.75, 12.0)) is None  # no floor: the range alone


def test_the_encoder_says_it_before_training(clip, tmp_path, interrupt):
    """The note reaches the log before the first train step (stopped there: the 4,000-step rate stage is minutes)."""
    lines: list[str] = []
    options = EncodeOptions(params=8000, target_size=1000, quant="entropy")  # 1,000 bytes on ~8k parameters: ~1 bit
    with pytest.raises(KeyboardInterrupt):
        encode(clip, tmp_path / "o.bin", options, observers=[interrupt("train", 1)],
               **{**QUIET, "log": lines.append})
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(notes) == 1 and "loss of quality" in notes[0] and "--params 8,000" in notes[0], lines
    assert not (tmp_path / "o.bin").exists()


def test_entropy_names_its_floor_and_the_others_none():
    from compress.quantizers import QUANTIZERS

    floors = {name: QUANTIZERS.get(name).collapse_below for name in ("entropy", "uniform", "sbs")}
    assert floors["entropy"] > QUANTIZERS.get("entropy").reachable[0] and floors["uniform"] == floors["sbs"] == 0.0


def test_cli_says_it_before_training_and_in_json(clip, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    report = tmp_path / "r.json"
    # uniform: the note is the CLI's whatever the quantizer (test_an_unreachable_target_is_named has the ranges),
    # and entropy would steer through its 4,000-step rate stage (minutes on CI) to a target it cannot reach
    r = subprocess.run([sys.executable, "-m", "codec.cli", "encode", str(clip), str(tmp_path / "o.bin"), "--preset",
                        "xs", "--target-bpp", "3", "--epochs", "2", "--quant", "uniform", "--json", str(report)],
                       cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    note = [line for line in r.stderr.splitlines() if "out of reach" in line]
    assert len(note) == 1 and r.stderr.index(note[0]) < r.stderr.index("train:")
    assert json.loads(report.read_text())["notes"] == [note[0].removeprefix("note: ")]
    both = subprocess.run([sys.executable, "-m", "codec.cli", "encode", str(clip), str(tmp_path / "p.bin"),
                           "--epochs", "5", "--time-budget", "1"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert both.returncode == 2 and "not both" in both.stderr and not (tmp_path / "p.bin").exists()


def test_prune_epochs_sets_the_rate_stage_from_the_cli(clip, tmp_path):
    """``--prune-epochs`` is the prune stage's length exactly, under a target too (no floor): the knob a user trades
    time for quality with (a rate stage of 8,000 steps against 4,000 measured +0.3..+0.6 dB, docs/results.md). Bad
    values and a clash with ``--time-budget`` are one line and exit 2, nothing written."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cli = [sys.executable, "-m", "codec.cli", "encode", str(clip)]
    r = subprocess.run(cli + [str(tmp_path / "o.bin"), "--preset", "xs", "--epochs", "2", "--prune-epochs", "3",
                              "--target-size", "700", "--json", str(tmp_path / "r.json")],
                       cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    totals = {int(t) for t in re.findall(r"prune:.*?\| *\d+/(\d+) \[", r.stderr)}
    assert totals == {3 * 3}, totals  # 3 epochs of the 6-frame clip's 3 steps, not the 4,000-step floor
    assert json.loads((tmp_path / "r.json").read_text())["options"]["prune_epochs"] == 3
    for bad, says in ((["--prune-epochs", "-1"], "--prune-epochs must be >= 0"),
                      (["--time-budget", "1", "--prune-epochs", "3"], "not both")):
        e = subprocess.run(cli + [str(tmp_path / "p.bin")] + bad, cwd=ROOT, capture_output=True, text=True, env=env)
        assert e.returncode == 2 and says in e.stderr and "Traceback" not in e.stderr, e.stderr
        assert not (tmp_path / "p.bin").exists()


def test_the_width_ladder_options_shape_the_model(clip, tmp_path):
    from codec.info import describe_file

    result = encode(clip, tmp_path / "w.bin", EncodeOptions(preset="s", epochs=1, prune_epochs=0, qat_epochs=1,
                                                            width_ratio=1.0, min_width=12), **QUIET)
    widths = describe_file(tmp_path / "w.bin")["model"]["channels"]
    assert min(widths) >= 12 and len(set(widths)) == 1 and result.options["min_width"] == 12
    with pytest.raises(ValueError, match="min width"):
        EncodeOptions(min_width=0)
