"""Scaling the trainer: bf16 autocast, batch sharding, and 2 gloo ranks train, encode and resume what one process does.

The ranks are launched as ``torchrun`` launches them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the
environment), each running this file as a script.
"""
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from codec.checkpoint import checkpoint_path
from codec.clips import make_clip
from codec.decoder import decode_file
from codec.distributed import (FILE_WAIT_TIMEOUT, DistContext, from_env, is_main, process_group, resolve_device,
                               shard_batch, shard_slice)
from codec.encoder import EncodeOptions, encode
from codec.layout import PlaneLayout
from codec.train import StageSpec, TrainConfig, TrainingData, train_stage
from codec.y4m import read_y4m
from compress.hooks import HookList, TrainingHook
from compress.quantize import QuantConfig, quantize_
from eval.metrics import evaluate
from inr.config import HiNeRVConfig
from inr.model import HiNeRV

# Largest parameter difference from one process, measured on this test's model (parameters 0.03 .. 0.4, moved
# 0.035 by training): 6e-8 here, 9e-7 after 180 steps (yuvlog or mse), 7e-6 for mse and 1.4e-5 for l1ssim over
# this test's 9 steps. Float rounding differs (a batch of 2 vs 2 of 1), and Adam's early steps, ~lr * sign(g),
# turn a rounding difference in a near-zero gradient into a visible one. 1e-4 is 1% of one step at lr 1e-2.
TOLERANCE = 1e-4
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("batch", [0, 1, 2, 3, 5, 8])
def test_shards_are_disjoint_balanced_and_cover_the_batch(batch, world):
    slices = [shard_slice(batch, rank, world) for rank in range(world)]
    items = [i for s in slices for i in range(batch)[s]]
    assert items == list(range(batch))  # disjoint, in order, everything once
    sizes = [len(range(batch)[s]) for s in slices]
    assert max(sizes) - min(sizes) <= 1


def test_shard_weights_add_up_and_an_empty_rank_pads_with_weight_zero():
    t = torch.tensor([4, 1, 3])
    parts = [shard_batch(t, DistContext(rank, 2)) for rank in range(2)]
    assert [p.tolist() for p, _ in parts] == [[4, 1], [3]]
    assert [w for _, w in parts] == [2 / 3, 1 / 3]
    part, weight = shard_batch(torch.tensor([7]), DistContext(1, 2))
    assert part.tolist() == [7] and weight == 0.0  # runs a frame to keep random draws in step, counts nothing


def test_launch_is_read_from_the_torchrun_environment():
    assert from_env({}) is None
    ctx = from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert ctx == DistContext(1, 2, 1) and not is_main(ctx)
    assert is_main(None) and is_main(DistContext(0, 2))
    with pytest.raises(ValueError):
        from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError):
        from_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")


def _clip() -> tuple[torch.Tensor, PlaneLayout]:
    """5 frames of smooth moving 4:2:0 content as a (5, 12, 16, 6) uint8 grid: 5 frames leave a 1-frame batch."""
    t, y, x, c = torch.meshgrid(torch.arange(5.0), torch.arange(12.0), torch.arange(16.0), torch.arange(6.0),
                                indexing="ij")
    grid = 128 + 100 * torch.sin(0.3 * x + 0.2 * y + 0.5 * t + c)
    return grid.round().to(torch.uint8), PlaneLayout(24, 32, 2, 2, True)


def _model() -> HiNeRV:
    torch.manual_seed(0)
    return HiNeRV(HiNeRVConfig(frames=5, height=12, width=16, out_channels=6, strides=(2, 2), channels=(8, 8),
                               depths=(1, 1), expansions=(2, 1), grid_frames=2, grid_channels=2, local_frames=4,
                               local_channels=4))


def _train(dist: DistContext | None) -> dict[str, torch.Tensor]:
    """A yuvlog train stage, then mse QAT with Quant-Noise (random draws every forward), batches of 2 frames.

    yuvlog is not a mean over frames (the ranks average its per-plane MSEs), mse is (they average it).
    """
    grid, layout = _clip()
    model = _model()
    data = TrainingData(grid, 255, layout, batch_size=2)
    train_stage(model, data, StageSpec("train", 2, 1e-2), TrainConfig(batch_size=2, loss="yuvlog", seed=3), 0,
                progress=False, dist=dist)
    quantize_(model, QuantConfig(bits=6))
    train_stage(model, data, StageSpec("qat", 1, 1e-3), TrainConfig(batch_size=2, loss="mse", seed=3), 2,
                progress=False, dist=dist)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class OutputDtype(TrainingHook):
    """Records the dtype of the output the loss sees."""

    def extra_loss(self, model, batch, output, ctx):
        self.dtype = output.dtype


def test_bf16_autocast_runs_the_forward_in_bf16_and_the_loss_in_fp32():
    grid, layout = _clip()
    model, seen, loss_input = _model(), set(), OutputDtype()
    model.head.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
    train_stage(model, TrainingData(grid, 255, layout, batch_size=2), StageSpec("train", 1, 1e-2),
                TrainConfig(batch_size=2), 0, HookList([loss_input]), progress=False, autocast_dtype=torch.bfloat16)
    assert seen == {torch.bfloat16} and loss_input.dtype == torch.float32
    assert all(p.dtype == torch.float32 and bool(p.isfinite().all()) for p in model.parameters())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ranks(argv: list[str], world: int, cwd: Path) -> list[subprocess.Popen]:
    """``world`` processes running ``argv`` as ``torchrun`` would launch them (one thread each)."""
    env = {**os.environ, "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return [subprocess.Popen(argv, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, cwd=cwd,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]


def test_two_ranks_train_what_one_process_trains(tmp_path):
    out = tmp_path / "rank0.pt"
    ranks = _ranks([sys.executable, __file__, str(out)], 2, ROOT)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _train(None)  # while the ranks run
    finally:
        torch.set_num_threads(threads)
    for r, proc in enumerate(ranks):
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"rank {r}:\n{output}"
    parallel = torch.load(out, weights_only=True)
    assert parallel.keys() == single.keys()
    worst = max(float((parallel[k] - single[k]).abs().max()) for k in single)
    assert worst <= TOLERANCE, worst
    initial = _model().state_dict()
    trained = {k.replace("parametrizations.", "").removesuffix(".original"): v for k, v in single.items()}
    assert min(float((trained[k] - initial[k]).abs().max()) for k in initial) > 100 * TOLERANCE  # all trained


CLI_ARGS = ["--preset", "s", "--epochs", "6", "--batch-size", "2", "--device", "cpu", "--quiet"]
CLI_OPTIONS = EncodeOptions(preset="s", epochs=6, batch_size=2, device="cpu")  # the same, for encode()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "codec.cli", *args, *CLI_ARGS]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> tuple[Path, Path]:
    """A 64x48 6-frame clip and its file from a single-process `hinerv encode` (one thread)."""
    folder = tmp_path_factory.mktemp("ddp")
    clip, out = folder / "clip.y4m", folder / "one.bin"
    make_clip(clip, frames=6, crop=(40, 32, 64, 48))
    subprocess.run(_cli("encode", str(clip), str(out)), cwd=folder, check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    return clip, out


def _assert_same_file(clip: Path, one: Path, two: Path) -> None:
    """The same file up to float rounding: sizes within 1%, decoded PSNR within 0.02 dB."""
    assert abs(two.stat().st_size - one.stat().st_size) <= 0.01 * one.stat().st_size
    psnr = [evaluate(read_y4m(clip), decode_file(f)).psnr_yuv for f in (one, two)]
    assert abs(psnr[0] - psnr[1]) < 0.02, psnr


def test_two_ranks_encode_the_file_one_process_encodes(one_process, tmp_path):
    """`hinerv encode` under 2 gloo ranks: rank 0 alone reports and writes, and the file is the one-process file
    up to float rounding (measured: the same bytes, 1,253 of them, for this clip and options)."""
    clip, one = one_process
    two = tmp_path / "two.bin"
    ranks = _ranks(_cli("encode", str(clip), str(two)), 2, tmp_path)
    outputs = [proc.communicate(timeout=300)[0] for proc in ranks]
    assert [proc.returncode for proc in ranks] == [0, 0], outputs
    assert "two.bin:" in outputs[0] and outputs[1] == ""  # rank 0 reports; rank 1 says nothing
    _assert_same_file(clip, one, two)
    assert not checkpoint_path(two).exists()


class Interrupt(TrainingHook):
    """Stops an encode at one step, as a kill would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, step, model, ctx):
        if ctx.stage == "train" and step == self.step:
            raise KeyboardInterrupt


def test_an_encode_interrupted_alone_resumes_on_two_ranks(one_process, tmp_path):
    """The checkpoint holds no trace of the process count: a one-process encode resumes under 2 ranks."""
    clip, one = one_process
    out = tmp_path / "resumed.bin"
    with pytest.raises(KeyboardInterrupt):
        encode(clip, out, CLI_OPTIONS, observers=[Interrupt(7)], progress=False, log=lambda *_: None,
               checkpoint_interval=0)
    assert checkpoint_path(out).exists() and not out.exists()
    ranks = _ranks(_cli("encode", str(clip), str(out), "--resume"), 2, tmp_path)
    outputs = [proc.communicate(timeout=300)[0] for proc in ranks]
    assert [proc.returncode for proc in ranks] == [0, 0], outputs
    assert "resum" in outputs[0].lower(), outputs[0]
    _assert_same_file(clip, one, out)
    assert not checkpoint_path(out).exists()


def test_the_wait_for_rank_0s_file_outlasts_the_collective_timeout(monkeypatch):
    """After training the other ranks wait while rank 0 fits and writes the file alone: a group of its own,
    with a timeout longer than the default groups' (NCCL 10 min, gloo 30 min)."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    cpu = torch.device("cpu")
    with process_group(DistContext(0, 1), cpu) as ctx:
        wait = ctx.wait_group._get_backend(cpu).options._timeout
        default = torch.distributed.group.WORLD._get_backend(cpu).options._timeout
        assert wait == FILE_WAIT_TIMEOUT > max(default, timedelta(minutes=30))
    assert not torch.distributed.is_initialized()


if __name__ == "__main__":  # one rank of test_two_ranks_train_what_one_process_trains
    torch.set_num_threads(1)
    ctx = from_env()
    with process_group(ctx, torch.device("cpu")):
        state = _train(ctx)
    if is_main(ctx):
        torch.save(state, Path(sys.argv[1]))
