"""HiNeRV model: shapes, patch rendering equals frame rendering, gradients, MAC/param counts."""
import dataclasses

import pytest
import torch

from inr.config import GlobalMotion, HiNeRVConfig, LumaStage
from inr.model import HiNeRV, count_parameters, macs_per_pixel


def small_config(**kw) -> HiNeRVConfig:
    base = dict(frames=12, height=37, width=45, out_channels=6, strides=(3, 2, 2), channels=(32, 16, 8),
                depths=(2, 2, 1), expansions=(4, 4, 1), grid_frames=6, grid_channels=2, local_frames=12,
                local_channels=4)
    base.update(kw)
    return HiNeRVConfig(**base)


def randomised(config: HiNeRVConfig, seed: int = 0) -> HiNeRV:
    torch.manual_seed(seed)
    model = HiNeRV(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)  # large weights, so any overlap-padding mistake shows
    return model


def test_output_shape_and_range():
    model = randomised(small_config())
    with torch.no_grad():
        out = model(torch.tensor([0, 11]))
    assert out.shape == (2, 37, 45, 6)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


LUMA = LumaStage(6, depth=2, expansion=2)  # two blocks: the luma map's halo is two pixels deep


@pytest.mark.parametrize("strides,depths,luma", [((3, 2, 2), (2, 2, 1), None), ((2, 2), (3, 1), None),
                                                 ((5, 3, 2, 2), (1, 1, 1, 1), None), ((3, 2, 2), (2, 2, 1), LUMA),
                                                 ((2, 2), (1, 1), LumaStage(4))])
def test_patches_equal_whole_frame(strides, depths, luma):
    n = len(strides)
    cfg = small_config(strides=strides, depths=depths, channels=(16,) * n, expansions=(2,) * n, luma=luma)
    model = randomised(cfg)
    t = torch.tensor([1, 7, 11])
    whole = model(t)
    regions = [(0, 10, 0, 10), (5, 20, 7, 45), (30, 37, 40, 45), (13, 14, 0, 45), (0, 37, 44, 45)]
    for y0, y1, x0, x1 in regions:
        patch = model(t, (y0, y1, x0, x1))
        torch.testing.assert_close(patch, whole[:, y0:y1, x0:x1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("luma", [None, LUMA])
def test_tiled_patches_rebuild_frame(luma):
    model = randomised(small_config(luma=luma))
    t = torch.tensor([4])
    whole = model(t)
    rebuilt = torch.zeros_like(whole)
    for y in range(0, 37, 16):
        for x in range(0, 45, 16):
            rebuilt[:, y:y + 16, x:x + 16] = model(t, (y, min(y + 16, 37), x, min(x + 16, 45)))
    torch.testing.assert_close(rebuilt, whole, rtol=0, atol=1e-5)


def test_region_outside_frame_is_refused():
    model = HiNeRV(small_config())
    with pytest.raises(ValueError, match="outside"):
        model(torch.tensor([0]), (0, 38, 0, 10))


@pytest.mark.parametrize("luma", [None, LUMA])
def test_gradients_reach_every_parameter(luma):
    model = randomised(small_config(luma=luma))
    loss = model(torch.tensor([0, 5]), (3, 20, 4, 30)).square().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(float(p.grad.abs().sum()) > 0 for n, p in model.named_parameters() if "grids" in n)


def test_frames_differ_over_time():
    model = randomised(small_config())
    out = model(torch.tensor([0, 11]))
    assert float((out[0] - out[1]).detach().abs().max()) > 1e-3


def test_hinerv_s_reference_size():
    """The UVG HiNeRV-S config reproduces the paper's size: 3.19 M params, 87.7 kMAC/pixel (docs/design.md §3)."""
    cfg = HiNeRVConfig(frames=600, height=1080, width=1920, out_channels=3, strides=(5, 3, 2, 2),
                       channels=(280, 140, 70, 35), depths=(3, 3, 3, 1), expansions=(4, 4, 4, 1),
                       grid_frames=150, grid_channels=2, local_frames=600, local_channels=4)
    with torch.device("meta"):
        params = count_parameters(HiNeRV(cfg))
    assert abs(params / 3.19e6 - 1) < 0.02
    assert abs(macs_per_pixel(cfg) / 87.7e3 - 1) < 0.02


@pytest.mark.parametrize("field,value", [("frames", 0), ("strides", ()), ("channels", (8, 8)), ("height", -3),
                                         ("version", 1), ("strides", (3, 2, 99)), ("depths", (1, 1, 0))])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError):
        dataclasses.replace(small_config(), **{field: value})


def test_kernel_choice_is_validated_and_torch_path_is_exact():
    model = randomised(small_config())
    t = torch.tensor([2, 9])
    ref = model(t)
    assert torch.equal(model.set_kernels("torch")(t), ref)  # 'auto' on CPU is the PyTorch path
    with pytest.raises(ValueError, match="kernels must be one of"):
        model.set_kernels("cuda-magic")


@pytest.mark.parametrize("luma", [None, LUMA])
@pytest.mark.parametrize("region", [None, (3, 20, 4, 30)])
def test_cpu_batch_chunks_match_one_pass(region, luma):
    """Chunked CPU rendering (inr.model.CPU_CHUNK_BYTES) gives the one-pass values and gradients, Quant-Noise
    included: the quantized weights are drawn once per batch, not once per chunk."""
    from compress.quantize import QuantConfig, quantize_

    model = randomised(small_config(luma=luma))
    quantize_(model, QuantConfig(bits=6, quant_noise=0.5))
    model.train()
    t = torch.tensor([0, 3, 5, 7, 11])
    plan_bytes = model.largest_activation(model.plan(region or model.full_region))
    results = []
    for chunk_bytes in (0, 2 * plan_bytes):  # one pass; chunks of two frames (3 chunks: 2, 2, 1)
        model.chunk_bytes = chunk_bytes
        model.zero_grad()
        torch.manual_seed(1)
        out = model(t, region)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (one, g_one), (chunked, g_chunked) = results
    torch.testing.assert_close(chunked, one, rtol=0, atol=1e-6)
    for a, b in zip(g_chunked, g_one):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


PAN = GlobalMotion.from_positions([(2 * t, 3 * t) for t in range(12)], precision=2)  # frames 2, 9: luma shifts 0, -1


@pytest.mark.parametrize("motion", [None, PAN])
@pytest.mark.parametrize("luma", [None, LUMA])
@pytest.mark.parametrize("region", [None, (3, 20, 4, 30)])
def test_cpu_frames_too_large_alone_render_in_bands(region, luma, motion):
    """A frame whose largest map passes chunk_bytes renders in bands of rows: the one-pass values and gradients
    (with global motion too: each frame's window in bands, its luma window moved with them)."""
    model = randomised(small_config(luma=luma, motion=motion))
    t = torch.tensor([2, 9])
    frame_bytes = model.largest_activation(model.plan(region or model.full_region))
    results = []
    render, calls = model.render, []
    model.render = lambda *a: calls.append(a) or render(*a)
    for chunk_bytes in (0, frame_bytes // 3):  # one pass; bands of a sixth of the frame's rows (2 * 3)
        model.chunk_bytes = chunk_bytes
        model.zero_grad()
        out = model(t, region)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    bands = len(calls) - (1 if motion is None else 2)  # one pass a window, then each frame in bands
    assert bands == 2 * 6 if motion is None else bands >= 2 * 6  # a window off the edge keeps more halo
    (one, g_one), (banded, g_banded) = results
    torch.testing.assert_close(banded, one, rtol=0, atol=1e-5)
    for a, b in zip(g_banded, g_one):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_cpu_chunks_split_only_what_exceeds_the_limit():
    from inr.model import cpu_chunks

    assert cpu_chunks(8, 4 << 20, 32 << 20) == 1  # 32 MiB in all: one pass
    assert cpu_chunks(8, 5 << 20, 32 << 20) == 2
    assert cpu_chunks(3, 100 << 20, 32 << 20) == 3  # never more chunks than frames
    assert cpu_chunks(1, 1, 32 << 20) == 1
    assert cpu_chunks(4, 10, 15) == 4  # 3 chunks would be 2 + 1 + 1 frames: 20 > 15
    for batch in range(1, 13):
        for frame_bytes in range(1, 40):
            chunks = cpu_chunks(batch, frame_bytes, 16)
            largest = max(len(c) for c in torch.arange(batch).tensor_split(chunks))
            assert 1 <= chunks <= batch
            assert largest * frame_bytes <= 16 or largest == 1  # within the limit, or one frame alone
            if chunks > 1:  # and the fewest that are
                fewer = max(len(c) for c in torch.arange(batch).tensor_split(chunks - 1))
                assert fewer * frame_bytes > 16


@pytest.mark.parametrize("luma", [None, LUMA])
def test_macs_counted_on_the_model_equal_the_formula(luma):
    from inr.model import model_macs_per_pixel

    cfg = HiNeRVConfig(frames=4, height=24, width=40, out_channels=6, strides=(2, 3), channels=(16, 8),
                       depths=(2, 1), expansions=(4, 2), grid_frames=2, grid_channels=2, local_frames=4,
                       local_channels=4, luma=luma)
    with torch.device("meta"):
        assert model_macs_per_pixel(HiNeRV(cfg)) == pytest.approx(macs_per_pixel(cfg))


def test_luma_stage_makes_y_at_luma_resolution():
    """With a luma stage the head makes U and V on the output grid and the luma head one Y sample a luma pixel,
    pixel-unshuffled into the grid's first four channels (``codec.layout``): the luma stage's map, 2x the grid."""
    model = randomised(small_config(luma=LUMA))
    assert model.head.out_features == 2 and model.luma_head.in_features == LUMA.channels
    assert model.sizes[-1] == tuple(2 * v for v in model.sizes[-2])
    maps = []
    model.luma_head.register_forward_hook(lambda m, args, out: maps.append(out))
    with torch.no_grad():
        out = model(torch.tensor([3]))
    y = torch.sigmoid(maps[0])[0, :2 * 37, :2 * 45, 0]  # (74, 90) luma samples
    torch.testing.assert_close(out[0, ..., :4], y.view(37, 2, 45, 2).permute(0, 2, 1, 3).reshape(37, 45, 4))
    assert float(out[..., 4:].std()) > 0.01  # U and V from the head


def test_luma_stage_needs_420_output():
    with pytest.raises(ValueError, match="4:2:0"):
        small_config(out_channels=3, luma=LUMA)
    with pytest.raises(ValueError, match="luma depth"):
        LumaStage(8, depth=0)
