"""``mwt``: segments, MwT's losses, the modules a block keeps, and the masks' record in the file."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bitstream.errors import BitstreamError
from compress.plugins.mwt import (ModularBlock, MwT, MwTOptions, cohesion_coupling, find_shots, fixed_windows,
                                  segment_of)
from eval.datasets import two_scene_clip
from inr.presets import build_config
from inr.layers import ConvNeXtBlock
from inr.model import HiNeRV


def test_shots_are_found_at_the_scene_cut_and_nowhere_else() -> None:
    video = two_scene_clip(12, (64, 48))
    assert find_shots(video.planes[0], 255) == [0, 12]
    assert find_shots(video.planes[0][:12], 255) == [0]  # carphone alone: one shot
    assert find_shots(video.planes[0][:14], 255) == [0]  # a cut 2 frames before the end: too short a shot


def test_windows_and_segment_lookup() -> None:
    assert fixed_windows(10, 3) == [0, 3, 6] and fixed_windows(2, 5) == [0, 1]
    starts = torch.tensor([0, 3, 6])
    assert segment_of(torch.arange(10), starts).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]


def test_cohesion_and_coupling_measure_what_they_name() -> None:
    a, b = torch.tensor([1.0, 1, 0, 0]), torch.tensor([0.0, 0, 1, 1])
    labels = torch.tensor([0, 0, 1, 1])
    coh, coup = cohesion_coupling(torch.stack([a, a, b, b]), labels)
    assert coh.item() == pytest.approx(0, abs=1e-6) and coup.item() == pytest.approx(0, abs=1e-6)
    coh, coup = cohesion_coupling(torch.stack([a, b, a, b]), labels)  # each segment's pair disagrees
    assert coh.item() == pytest.approx(1) and coup.item() == pytest.approx(0.5)
    # with prototypes, one sample alone still has pairs: its own segment's and the others'
    protos = torch.stack([a, b])
    coh, coup = cohesion_coupling(b[None], torch.tensor([0]), protos, torch.tensor([True, True]))
    assert coh.item() == pytest.approx(1) and coup.item() == pytest.approx(1)  # b is like the other segment
    masks = torch.rand(4, 4, requires_grad=True)
    sum(cohesion_coupling(masks, labels, protos, torch.tensor([True, False]))).backward()
    assert masks.grad.abs().sum() > 0


def _block(seed: int = 0) -> ConvNeXtBlock:
    torch.manual_seed(seed)
    block = ConvNeXtBlock(6, 6, 4)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
    return block


def test_a_modules_output_equals_the_full_block_with_its_channels_removed() -> None:
    block = _block()
    keep = torch.zeros(2, 24, dtype=torch.bool)
    keep[0, ::3] = True
    keep[1, 1:14] = True
    modular = ModularBlock(_block())
    modular.set_modules(torch.tensor([0, 5]), keep)
    modular.eval()
    x = torch.randn(4, 7, 9, 6)
    t = torch.tensor([1, 6, 2, 9])
    out = modular(x, None, t)
    for s, rows in ((0, [0, 2]), (1, [1, 3])):
        masked = _block()
        with torch.no_grad():  # the channels the module drops, removed from the full block
            masked.fc1.weight[~keep[s]] = 0
            masked.fc1.bias[~keep[s]] = 0
        torch.testing.assert_close(out[rows], masked(x[rows]), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(out[rows], block(x[rows]), atol=1e-3)
    # training multiplies the hard masks instead (a batch mixes segments); the same values to rounding
    modular.train()
    torch.testing.assert_close(modular(x, None, t), out, atol=1e-5, rtol=1e-5)


def test_a_module_computes_only_its_channels(monkeypatch) -> None:
    modular = ModularBlock(_block())
    keep = torch.zeros(1, 24, dtype=torch.bool)
    keep[0, :5] = True
    modular.set_modules(torch.tensor([0]), keep)
    modular.eval()
    shapes = []
    real = F.linear
    monkeypatch.setattr(F, "linear", lambda x, w, b=None: shapes.append(tuple(w.shape)) or real(x, w, b))
    modular(torch.randn(2, 5, 5, 6), None, torch.tensor([0, 1]))
    assert shapes == [(5, 6), (6, 5)]


def _model(frames: int = 8) -> HiNeRV:
    torch.manual_seed(0)
    return HiNeRV(build_config(12, 16, frames, 6, "xxs"))


def test_modules_keep_the_channels_that_fire_on_enough_of_a_segments_frames() -> None:
    plugin = MwT(MwTOptions(segments="2", threshold=0.9))
    plugin.starts = fixed_windows(8, 2)
    model = plugin.transform_model("train", _model())
    blocks = [b for stage in model.stages for b in stage.blocks]
    assert blocks and all(isinstance(b, ModularBlock) and b.gate is not None for b in blocks)
    for b in blocks:  # channel 0 always fires, channel 1 never, channel 2 on frames 0..5 only (by the pooled input)
        with torch.no_grad():
            b.gate[2].weight.zero_()
            b.gate[2].bias.fill_(-1.0)
            b.gate[2].bias[0] = 1.0

    def fire(module, args, out):  # channel 2 from the frame index: a stand-in for a learned gate
        t = module.current_t
        out[:, 2] = torch.where(t < 6, 1.0, -1.0)
        return out

    for b in blocks:
        b.gate[2].register_forward_hook(fire)
        b.register_forward_pre_hook(lambda m, args: setattr(m.gate[2], "current_t", args[2]))
    keep = plugin.measure_modules(model)
    for k in keep:
        assert k[:, 0].all() and not k[:, 1].any()
        assert k[0, 2] and not k[1, 2]  # segment 1 (frames 4..7) fired on 2 of 4 frames: below 0.9
    plugin.keep = keep
    plugin.transform_model("prune", model)
    assert all(b.gate is None and torch.equal(b.keep, k) for b, k in zip(blocks, keep))
    unused = ~keep[0].any(0)  # channels no module keeps are zero in the weights the file codes
    assert (blocks[0].fc1.weight[unused] == 0).all() and (blocks[0].fc2.weight[:, unused] == 0).all()


def test_the_generators_are_claimed_and_never_reach_the_file() -> None:
    plugin = MwT(MwTOptions(segments="2"))
    plugin.starts = [0, 4]
    model = plugin.transform_model("train", _model())
    names = [n for n, p in model.named_parameters() if plugin.claims(n, p)]
    assert names and all(".gate." in n for n in names)
    plugin.transform_model("prune", model)
    assert not [n for n, _ in model.named_parameters() if ".gate." in n]


def test_the_masks_round_trip_through_the_record_and_bad_records_are_refused() -> None:
    plugin = MwT()
    plugin.starts = [0, 3, 5]
    torch.manual_seed(1)
    plugin.keep = [torch.rand(3, 24) > 0.5, torch.rand(3, 13) > 0.3]
    data = plugin.export_data(None)
    other = MwT()
    other.load_data(data)
    assert other.starts == [0, 3, 5] and all(torch.equal(a, b) for a, b in zip(plugin.keep, other.keep))
    assert len(data) == 1 + 1 + 2 + 1 + 1 + 3 * 3 + 1 + 3 * 2  # version, count, gaps, blocks, masks
    for bad, message in [(data[:-1], "mwt record"), (b"\x02" + data[1:], "version"), (b"\x01\x00\x00", "no segment"),
                         (data + b"\x00", "mwt record"), (b"\x01\x02\x00\x00", "empty segment")]:
        with pytest.raises((ValueError, BitstreamError), match=message):
            MwT().load_data(bad)
    model = _model(frames=4)  # a segment that starts past the video's end
    with pytest.raises(ValueError, match="starts at frame 5"):
        other.rebuild(model)
    with pytest.raises(ValueError, match="masks of 2 blocks, the model 1"):
        other.rebuild(_model(frames=8))


def test_options_are_validated() -> None:
    for bad in (dict(segments="x"), dict(segments="0"), dict(threshold=0.0), dict(alpha=-1.0), dict(cut=1.0)):
        with pytest.raises(ValueError):
            MwTOptions(**bad)
    assert MwTOptions(segments="3").segments == "3"


def test_a_modules_weights_are_kept_only_while_the_weights_are_unchanged() -> None:
    modular = ModularBlock(_block())
    keep = torch.zeros(1, 24, dtype=torch.bool)
    keep[0, :7] = True
    modular.set_modules(torch.tensor([0]), keep)
    modular.eval()
    x, t = torch.randn(2, 5, 5, 6), torch.tensor([0, 1])
    with torch.no_grad():
        first = modular(x, None, t)
        assert torch.equal(modular(x, None, t), first)  # from the kept slices
        modular.fc1.weight.mul_(2)  # a new weight: the slices are made again
        changed = modular(x, None, t)
    fresh = ModularBlock(_block())
    with torch.no_grad():
        fresh.fc1.weight.mul_(2)
    fresh.set_modules(torch.tensor([0]), keep)
    fresh.eval()
    with torch.no_grad():
        assert not torch.equal(changed, first) and torch.equal(changed, fresh(x, None, t))
