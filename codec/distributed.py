"""Data-parallel training across processes launched by ``torchrun`` (docs/design.md §7).

Every rank holds the whole model and the whole clip and draws the same seeded batch plan; each trains on its
own slice of every batch (``shard_batch``). Each rank's loss is the whole batch's loss, computed from batch
statistics averaged over the ranks (``batch_mean``) and differentiable only in its own frames, so summing the
ranks' gradients (``sum_gradients``) gives every rank the step one process would take on the whole batch:
the same up to float rounding, for any loss that is a function of means over frames (``yuvlog``, ``mse``,
``l1ssim``).

Gradients are summed by hand rather than by ``DistributedDataParallel``: the stage transforms (pruning, fake
quantization, SBS) register parametrizations that replace parameters after the model is built, and DDP then
silently stops synchronising them (measured: a DDP model given ``quantize_`` has unequal gradients across
ranks), so it would need a fresh wrapper every stage. One flat all-reduce per step is cheap next to a step
(2 gloo CPU ranks, carphone at preset m: 1.4 ms of a 31 ms step; DDP's step took 37 ms).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Iterator, Mapping, Sequence

import torch
import torch.distributed as tdist

DEVICES = ("auto", "cpu", "cuda")

# How long the other ranks wait for rank 0 to write the bitstream after training. Rank 0 works alone then: the
# last-mile size fit codes the file up to 20 times (~0.3 us a parameter each: minutes at the largest presets),
# past NCCL's default collective timeout of 10 minutes (gloo: 30), which would abort the wait and the launch.
FILE_WAIT_TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a multi-process launch."""

    rank: int  # 0 .. world_size - 1; rank 0 writes files and shows progress
    world_size: int
    local_rank: int = 0  # rank on this machine: picks the GPU
    wait_group: object = field(default=None, compare=False, repr=False)  # set by process_group (barrier's)

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise ValueError(f"invalid distributed launch {self!r}")


def from_env(env: Mapping[str, str] | None = None) -> DistContext | None:
    """The launch ``torchrun`` describes in RANK / WORLD_SIZE / LOCAL_RANK, or None for a plain run."""
    env = os.environ if env is None else env
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        return DistContext(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
    except ValueError:
        raise ValueError(f"bad torchrun environment: RANK={env['RANK']!r}, WORLD_SIZE={env['WORLD_SIZE']!r}, "
                         f"LOCAL_RANK={env.get('LOCAL_RANK')!r}") from None


def is_main(ctx: DistContext | None) -> bool:
    """Whether this process writes outputs and reports: rank 0, or the only process."""
    return ctx is None or ctx.rank == 0


def resolve_device(name: str, ctx: DistContext | None = None) -> torch.device:
    """``auto`` / ``cpu`` / ``cuda`` as the device this rank trains on (its own GPU under torchrun)."""
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but no CUDA device is available")
    return torch.device("cuda", 0 if ctx is None else ctx.local_rank)


@contextmanager
def process_group(ctx: DistContext | None, device: torch.device) -> Iterator[DistContext | None]:
    """Join the ranks' process group (NCCL on CUDA, gloo on CPU) for the duration; nothing for ``None``.

    Yields ``ctx`` with the group ``barrier`` waits on (``FILE_WAIT_TIMEOUT``). The rendezvous address comes
    from MASTER_ADDR / MASTER_PORT, as ``torchrun`` sets them.
    """
    if ctx is None:
        yield None
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                             rank=ctx.rank, world_size=ctx.world_size)
    try:
        yield replace(ctx, wait_group=tdist.new_group(timeout=FILE_WAIT_TIMEOUT))
    finally:
        tdist.destroy_process_group()


def barrier(ctx: DistContext | None) -> None:
    """Wait for every rank (nothing for a single process), for up to ``FILE_WAIT_TIMEOUT``."""
    if ctx is not None and ctx.world_size > 1:
        tdist.barrier(group=ctx.wait_group)


def shard_slice(batch: int, rank: int, world_size: int) -> slice:
    """Rank's contiguous part of ``batch`` items: disjoint, covering, sizes differing by at most one."""
    base, extra = divmod(batch, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def shard_batch(t: torch.Tensor, ctx: DistContext) -> tuple[torch.Tensor, float]:
    """This rank's frames of batch ``t`` and their share of the batch (the weight of their statistics).

    A rank left without frames (a batch smaller than the world) runs the batch's first frame with weight 0: it
    still runs forward and backward, so its random draws (Quant-Noise) stay in step with the other ranks and
    its gradients (zero) have the same parameters as theirs.
    """
    part = t[shard_slice(len(t), ctx.rank, ctx.world_size)]
    if len(part) == 0:
        return t[:1], 0.0
    return part, len(part) / len(t)


def batch_mean(local: torch.Tensor, weight: float) -> torch.Tensor:
    """The whole batch's mean of a statistic, from its mean over this rank's slice of ``weight`` of the batch.

    The value is the same on every rank; the gradient flows only into this rank's share, ``weight * local``,
    so the ranks' gradients sum to the gradient of the whole batch's statistic.
    """
    share = local * weight
    total = share.detach().clone()
    tdist.all_reduce(total)
    return total + (share - share.detach())


def broadcast_parameters(params: Sequence[torch.Tensor]) -> None:
    """Give every rank rank 0's values, as DDP does at wrap time: ranks that diverged start a stage equal."""
    with torch.no_grad():
        for p in params:
            tdist.broadcast(p.data, src=0)


def sum_gradients(params: Sequence[torch.Tensor]) -> None:
    """Replace every rank's gradients by their sum over the ranks, in one flat all-reduce.

    Every rank runs the same graph (see ``shard_batch``), so the parameters that have a gradient are the same
    on every rank; the others keep ``grad = None``, as in a single process.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    tdist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
