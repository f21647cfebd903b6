"""Plugins end to end: selected on the command line, in the resume fingerprint and the checkpoint, named by
``hinerv info``; a plugin that changes what the file codes decodes from the file alone."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from bitstream.errors import BitstreamError
from codec.bitstream_io import read_bitstream
from codec.info import describe_file
from codec.checkpoint import checkpoint_path
from codec.clips import make_clip
from codec.decoder import build_model, decode_file
from codec.encoder import EncodeOptions, encode
from codec.y4m import read_y4m
from compress.hooks import PLUGINS, Plugin
from eval.metrics import evaluate

ROOT = Path(__file__).resolve().parents[2]
FAST = EncodeOptions(preset="s", epochs=4, prune_epochs=2, qat_epochs=2, batch_size=2)
L1 = dataclasses.replace(FAST, plugins=("l1:weight=1e-6",))
QUIET = dict(progress=False, log=lambda *_: None, checkpoint_interval=0)


@dataclass(frozen=True)
class GainOptions:
    init: float = field(default=1.0, metadata={"help": "the gain's first value"})


@PLUGINS.register("test-gain")
class OutputGain(Plugin):
    """A learned gain on the output: a module the decoder must rebuild, and decode data it must read."""

    Options = GainOptions
    coded = True

    def transform_model(self, stage, model):
        return self.rebuild(model) if stage == "train" else model

    def rebuild(self, model):
        if not hasattr(model, "plugin_gain"):
            model.register_parameter("plugin_gain", nn.Parameter(torch.full((1,), self.options.init)))
            model.register_forward_hook(lambda module, args, out: out * module.plugin_gain)
        return model

    def export_data(self, model):
        return b"gain-v1"

    def load_data(self, data):
        if data != b"gain-v1":
            raise ValueError(f"expected b'gain-v1', got {data[:16]!r}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "carphone.y4m"
    make_clip(path, frames=6, crop=(40, 32, 64, 48))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "codec.cli", *args], cwd=ROOT, capture_output=True, text=True, env=env)


def test_cli_plugin_encodes_and_info_names_it(clip, tmp_path):
    out, rep = tmp_path / "l1.bin", tmp_path / "l1.json"
    r = _cli("encode", str(clip), str(out), "--preset", "xxs", "--epochs", "2", "--frames", "3",
             "--plugin", "l1:weight=1e-6", "--json", str(rep), "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads(rep.read_text())["options"]["plugins"] == ["l1:weight=1e-06,stages=train"]
    r = _cli("info", str(out))
    assert r.returncode == 0 and "plugin      l1:weight=1e-06,stages=train" in r.stdout
    info = json.loads(_cli("info", str(out), "--json").stdout)
    assert info["plugins"] == [{"name": "l1", "options": "l1:weight=1e-06,stages=train", "coded": False,
                                "data_bytes": 0}]
    assert info["sections"]["PLUGINS"] > 0 and sum(info["breakdown"].values()) == info["bytes"]


def test_hinerv_plugins_lists_each_plugin_with_its_options():
    r = _cli("plugins")
    assert r.returncode == 0, r.stderr
    assert "l1 " in r.stdout and "weight=1e-06" in r.stdout and "stages=train" in r.stdout
    listing = json.loads(_cli("plugins", "--json").stdout)
    l1 = next(p for p in listing["plugins"] if p["name"] == "l1")
    assert [o["name"] for o in l1["options"]] == ["weight", "stages"] and l1["doc"]
    assert {q["name"] for q in listing["quantizers"]} == {"uniform", "sbs", "entropy"}


@pytest.mark.parametrize("spec,message", [
    ("nope", "unknown plugin 'nope'"),
    ("l1:size=3", "plugin l1 has no option 'size'"),
    ("l1:weight=heavy", "plugin l1: weight must be a finite number"),
])
def test_bad_plugin_is_one_line_and_exit_2(clip, tmp_path, spec, message):
    r = _cli("encode", str(clip), str(tmp_path / "o.bin"), "--plugin", spec)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("hinerv: error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "o.bin").exists()


def test_plugin_options_are_canonical_and_in_the_fingerprint():
    assert EncodeOptions(plugins=["l1"]).plugins == ("l1:weight=1e-06,stages=train",)
    assert EncodeOptions(plugins=("l1",)).result_fields() == EncodeOptions(plugins=("l1:weight=1e-6",)).result_fields()
    assert L1.result_fields() != FAST.result_fields()
    assert L1.result_fields() != dataclasses.replace(FAST, plugins=("l1:weight=2e-6",)).result_fields()
    with pytest.raises(TypeError, match="one string"):
        EncodeOptions(plugins="l1")


def test_plugin_encode_resumes_to_the_same_bytes(clip, tmp_path, interrupt):
    ref, out = tmp_path / "ref.bin", tmp_path / "resumed.bin"
    encode(clip, ref, L1, **QUIET)
    plain = tmp_path / "plain.bin"
    encode(clip, plain, FAST, **QUIET)
    assert ref.read_bytes() != plain.read_bytes()  # the plugin changed the result
    with pytest.raises(KeyboardInterrupt):
        encode(clip, out, L1, observers=[interrupt("train", 7)], **QUIET)
    assert checkpoint_path(out).exists()
    with pytest.raises(ValueError, match="another input or other options"):  # a plugin's options are in it
        encode(clip, out, dataclasses.replace(L1, plugins=("l1:weight=2e-6",)), resume=True, **QUIET)
    encode(clip, out, L1, resume=True, **QUIET)
    assert out.read_bytes() == ref.read_bytes()


def test_a_coded_plugin_decodes_from_the_file_alone(clip, tmp_path):
    out = tmp_path / "gain.bin"
    options = dataclasses.replace(FAST, plugins=("test-gain:init=1.5",))
    result = encode(clip, out, options, **QUIET)
    parsed = read_bitstream(out.read_bytes())
    assert [(p.name, p.options, p.coded, p.data) for p in parsed.plugins] == \
        [("test-gain", "test-gain:init=1.5", True, b"gain-v1")]
    model = build_model(parsed.config, parsed.tensors, parsed.plugins)
    assert hasattr(model, "plugin_gain") and len(parsed.tensors) == len(list(model.parameters()))
    decoded = decode_file(out)
    assert evaluate(read_y4m(clip), decoded).psnr_yuv > 12 and result.bytes == out.stat().st_size
    with torch.no_grad():  # the decoder renders through the rebuilt module: without the gain, other samples
        gain = float(model.plugin_gain)
    assert gain != 1.0
    info = describe_file(out)
    assert info["plugins"][0]["coded"] is True and info["plugins"][0]["data_bytes"] == 7
    # a decoder that lacks the plugin refuses the file in one line
    code = "import sys; from codec.cli import main; sys.argv[0] = 'hinerv'; main()"
    r = subprocess.run([sys.executable, "-c", code, "decode", str(out), str(tmp_path / "x.y4m")], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "the file needs plugin 'test-gain'" in r.stderr
    # damaged decode data is a BitstreamError, never a crash
    bad = parsed.plugins[0].__class__("test-gain", "test-gain:init=1.5", True, b"other")
    with pytest.raises(BitstreamError, match="bad PLUGINS section: test-gain"):
        build_model(parsed.config, parsed.tensors, (bad,))


METHODS = ["lowrank:keep=0.3,layers=all", "kmeans:bits=3,min_size=16", "cap:negatives=rana",
           "htsgd:sigma=0.05,energy=0.3", "mwt:segments=2,threshold=0.5", "indistill:scale=2.0,warmup=0.6",
           "sharedproj:scale=2.0,mix=0.5,ramp=0.2"]


@pytest.mark.parametrize("quant,luma", [("uniform", "auto"), ("entropy", "auto"), ("entropy", "on")])
@pytest.mark.parametrize("spec", METHODS)
def test_each_method_decodes_to_the_encoders_reconstruction(clip, tmp_path, spec, quant, luma, capture):
    """Also with a full-resolution luma stage: the methods' layers and maps include it."""
    out, capture = tmp_path / "m.bin", capture()
    options = dataclasses.replace(FAST, quant=quant, plugins=(spec,), luma_stage=luma)
    result = encode(clip, out, options, observers=[capture], **QUIET)
    parsed = read_bitstream(out.read_bytes())
    with torch.no_grad():
        decoded = build_model(parsed.config, parsed.tensors, parsed.plugins)(torch.arange(6))
    assert torch.equal(decoded, capture.frames)  # bit for bit what training ended with
    name = spec.partition(":")[0]
    summary = result.plugins[options.plugins[0]]
    assert {"lowrank": "factorised", "kmeans": "tensors_shared", "htsgd": "prunable_fraction",
            "cap": "zero_loss_share", "mwt": "krr_mean", "indistill": "warmup_steps",
            "sharedproj": "projections"}[name] in summary
    assert list(summary.values())[0] or name == "htsgd"
    info = describe_file(out)
    assert info["plugins"][0]["name"] == name and info["macs_per_pixel"] > 0
    assert (result.params, result.macs_per_pixel) == (info["params"], pytest.approx(info["macs_per_pixel"]))
    if name == "lowrank":  # the rebuilt factors render with fewer multiply-accumulates than the dense layers
        plain = tmp_path / "plain.bin"
        encode(clip, plain, dataclasses.replace(FAST, quant=quant, luma_stage=luma), **QUIET)
        assert info["macs_per_pixel"] < describe_file(plain)["macs_per_pixel"]


@pytest.mark.parametrize("spec,stage", [(METHODS[0], "qat"), (METHODS[1], "qat"), (METHODS[2], "prune"),
                                        (METHODS[4], "train"), (METHODS[4], "prune"), (METHODS[5], "train"),
                                        (METHODS[6], "train"), ("softround", "prune")])
def test_a_method_with_state_resumes_to_the_same_bytes(clip, tmp_path, spec, stage, interrupt):
    """lowrank rebuilds its layers from its ranks, kmeans its clusters; cap, stopped mid-way through its pruning,
    its banks (the dense model and a snapshot) and its importance scores; mwt its mask generators and running
    masks (train), or its modules (prune); indistill, stopped in its curriculum, its teacher (kept beside the
    output) and its phase; sharedproj its teacher, its projections and their optimizer; softround, stopped in the
    rate stage, the temperature of the step it stopped at."""
    options = dataclasses.replace(FAST, plugins=(spec,))
    ref, out = tmp_path / "ref.bin", tmp_path / "resumed.bin"
    encode(clip, ref, options, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        encode(clip, out, options, observers=[interrupt(stage, 3)], **QUIET)
    encode(clip, out, options, resume=True, **QUIET)
    assert out.read_bytes() == ref.read_bytes()
