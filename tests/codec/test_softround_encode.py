"""The ``softround`` plugin in an encode: the rate stage's temperatures, the decode, the refusal (its resume:
tests/codec/test_plugin_pipeline.py)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from codec.bitstream_io import read_bitstream
from codec.decoder import build_model
from codec.encoder import EncodeOptions, encode
from compress.entropy_quant import entropy_tensors
from compress.hooks import TrainingHook

FAST = EncodeOptions(preset="s", epochs=4, prune_epochs=2, qat_epochs=2, batch_size=2, plugins=("softround",))
QUIET = dict(progress=False, log=lambda *_: None, checkpoint_interval=0)


class Temperatures(TrainingHook):
    """Keeps each step's temperature of the first entropy quantizer, per stage (an observer)."""

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {}

    def on_step_end(self, step, model, ctx):
        found = next(iter(entropy_tensors(model)), None)
        if found is not None:
            self.seen.setdefault(ctx.stage, []).append(found[1].temperature)


def test_an_encode_anneals_the_rate_stage_and_decodes_to_its_reconstruction(clip, tmp_path, capture):
    out, seen, capture = tmp_path / "s.bin", Temperatures(), capture()
    result = encode(clip, out, FAST, observers=[seen, capture], **QUIET)
    prune = seen.seen["prune"]
    assert prune[0] < 0.3 and prune[-1] == pytest.approx(0.1) and prune == sorted(prune, reverse=True)
    assert result.plugins[FAST.plugins[0]]["temperature"] == pytest.approx(0.1)
    parsed = read_bitstream(out.read_bytes())
    with torch.no_grad():
        decoded = build_model(parsed.config, parsed.tensors, parsed.plugins)(torch.arange(6))
    assert torch.equal(decoded, capture.frames)  # the eval-mode forward never soft-rounds


def test_another_quantizer_is_refused_in_one_line(clip, tmp_path):
    with pytest.raises(ValueError, match="softround soft-rounds --quant entropy's noise proxy"):
        encode(clip, tmp_path / "u.bin", dataclasses.replace(FAST, quant="uniform"), **QUIET)
    assert not (tmp_path / "u.bin").exists()
