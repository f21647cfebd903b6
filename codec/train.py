"""The trainer: the stages of an encode (train, prune fine-tune, QAT), checkpointed, with every hook call.

Each stage is Adam (or a plugin's optimizer) with linear warm-up and cosine decay, gradient clipping, and a
progress bar. Randomness is re-seeded from (seed, stage, epoch) at every epoch, so a run resumed from an
epoch-boundary checkpoint takes exactly the steps the uninterrupted run would have taken. Compression methods
plug in through the ``compress.hooks`` interface, never by editing this loop; this module makes every call of it
that training needs (``run_stages`` and ``train_stage``).

On a GPU the clip lives on the device in its integer dtype (a batch never crosses from the host), the forward
pass may run under bf16 autocast (the loss stays fp32), and ``torchrun`` ranks split every batch between them
(``codec.distributed``).
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn
from tqdm import tqdm

from compress.hooks import HookContext, HookList, TrainingHook

from . import distributed
from .checkpoint import Checkpointer
from .distributed import DistContext
from .losses import BATCH_STATISTICS, LOSSES, log_scale, plane_mse, psnr_yuv_from_mse
from .layout import PlaneLayout

Region = tuple[int, int, int, int]


@dataclass(frozen=True)
class StageSpec:
    """One training stage."""

    name: str  # 'train', 'prune' or 'qat'
    epochs: int  # passes over every frame (and patch)
    lr: float  # peak learning rate
    warmup_fraction: float = 0.1  # share of the stage's steps spent warming up linearly
    min_lr_ratio: float = 0.01  # the cosine decays to lr * min_lr_ratio

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.lr <= 0 or not 0 <= self.warmup_fraction < 1 or self.min_lr_ratio < 0:
            raise ValueError(f"invalid stage {self!r}")

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate at ``step`` of ``total``: linear warm-up, then cosine to lr * min_lr_ratio."""
        warm = int(self.warmup_fraction * total)
        if step < warm:
            return self.lr * (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        floor = self.lr * self.min_lr_ratio
        return floor + 0.5 * (self.lr - floor) * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by all stages."""

    batch_size: int = 2  # frames per step
    patch_size: int = 0  # side of square training patches in grid pixels; 0 trains on whole frames
    grad_clip: float = 1.0  # max gradient norm
    loss: str = "yuvlog"  # a name from codec.losses.LOSSES
    seed: int = 0  # seeds initialisation and every epoch's sampling

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.patch_size < 0 or self.grad_clip <= 0:
            raise ValueError(f"invalid training config {self!r}")
        LOSSES.get(self.loss)


class TrainingData:
    """The clip as an integer grid and its sampling.

    The grid is copied to ``device`` once, in its storage dtype (uint8 / int16: 2-4x smaller than floats), and
    each batch is sliced and converted there, so training makes no host-to-device copy of pixels.
    """

    def __init__(self, grid: torch.Tensor, max_value: int, layout: PlaneLayout, batch_size: int,
                 patch_size: int = 0, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.grid = grid.to(self.device)  # (T, H, W, C) uint8 / int16
        self.scale = 1.0 / max_value
        self.layout = layout
        self.batch_size = batch_size
        frames, h, w, _ = grid.shape
        self.frames = frames
        p = patch_size if patch_size and patch_size < max(h, w) else 0
        self.regions: list[Region] = (
            [(y, min(y + p, h), x, min(x + p, w)) for y in range(0, h, p) for x in range(0, w, p)]
            if p else [(0, h, 0, w)])

    @property
    def steps_per_epoch(self) -> int:
        return len(self.regions) * math.ceil(self.frames / self.batch_size)

    def batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, Region]]:
        """One epoch: every (frame, region) once, batches share a region, in a seeded random order.

        The order is drawn on the host (the same on every device) and its frame indices are on ``device``.
        """
        plan: list[tuple[torch.Tensor, Region]] = []
        for region in self.regions:
            order = torch.randperm(self.frames, generator=generator).to(self.device)
            plan += [(order[i:i + self.batch_size], region) for i in range(0, self.frames, self.batch_size)]
        for i in torch.randperm(len(plan), generator=generator).tolist():
            yield plan[i]

    def target(self, t: torch.Tensor, region: Region) -> torch.Tensor:
        """(B, h, w, C) float targets in [0, 1]."""
        y0, y1, x0, x1 = region
        return self.grid[t, y0:y1, x0:x1].float().mul_(self.scale)


def epoch_seed(seed: int, stage_index: int, epoch: int) -> int:
    return (seed * 1_000_003 + stage_index * 10_007 + epoch) % (2**63)


def train_stage(model: nn.Module, data: TrainingData, spec: StageSpec, config: TrainConfig, stage_index: int,
                hooks: TrainingHook | None = None, start_epoch: int = 0, optimizer_state: dict | None = None,
                on_epoch_end: Callable[[int, torch.optim.Optimizer], None] | None = None,
                progress: bool = True, autocast_dtype: torch.dtype | None = None,
                dist: DistContext | None = None) -> None:
    """Run epochs ``start_epoch .. spec.epochs`` of one stage; ``model`` must be on ``data.device``.

    Makes the stage's hook calls from ``on_stage_start`` to ``on_stage_end`` (``transform_model`` is the
    caller's: see ``run_stages``).

    Args:
        on_epoch_end: called with (epochs done, optimizer) after every epoch, e.g. to checkpoint.
        optimizer_state: the optimizer's state to continue from (resume).
        autocast_dtype: run the forward pass under ``torch.autocast`` at this dtype (e.g. ``torch.bfloat16``);
            the loss is computed in fp32 from the upcast output. None: full fp32.
        dist: train as one rank of a process group: every rank draws the same batches, trains on its slice
            of each and takes the step of the whole batch (see ``codec.distributed``). The progress bar (the
            whole batch's loss, rank 0's slice's PSNR) shows on rank 0.
    """
    hooks = hooks or HookList([])
    loss_fn = LOSSES.get(config.loss)
    params = [p for p in model.parameters() if p.requires_grad]
    parallel = dist is not None and dist.world_size > 1
    if parallel:
        distributed.broadcast_parameters(params)
    autocast = (torch.autocast(data.device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else nullcontext())
    optimizer = hooks.make_optimizer(params, spec.lr, spec.name) or default_optimizer(params, spec.lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    per_epoch = data.steps_per_epoch
    total = max(1, spec.epochs * per_epoch)
    ctx = HookContext(stage=spec.name, step=start_epoch * per_epoch, total_steps=total, epoch=start_epoch,
                      optimizer=optimizer, lr=spec.lr_at(start_epoch * per_epoch, total), device=data.device)
    hooks.on_stage_start(spec.name, model, ctx)
    model.train()
    luma = data.layout.luma_channels
    show = progress and distributed.is_main(dist)
    with tqdm(total=spec.epochs * per_epoch, initial=start_epoch * per_epoch, desc=f"{spec.name:>5}",
              disable=not show, unit="step", dynamic_ncols=True, leave=True) as bar:
        for epoch in range(start_epoch, spec.epochs):
            seed = epoch_seed(config.seed, stage_index, epoch)
            torch.manual_seed(seed)  # Quant-Noise and any plugin randomness
            generator = torch.Generator().manual_seed(seed)
            running = None
            for i, (t, region) in enumerate(data.batches(generator)):
                step = epoch * per_epoch + i
                ctx.step, ctx.epoch, ctx.lr = step, epoch, spec.lr_at(step, total)
                for group in optimizer.param_groups:
                    group["lr"] = ctx.lr
                weight = 1.0  # this process's share of the batch
                if parallel:
                    t, weight = distributed.shard_batch(t, dist)
                ctx.rank_weight = weight
                target = data.target(t, region)
                with autocast:
                    pred = model(t, region)
                pred = pred.float()  # a no-op in fp32
                loss = batch_loss(config.loss, pred, target, luma, weight) if parallel else loss_fn(pred, target, luma)
                ctx.loss_scale = log_scale(config.loss, loss)
                if ctx.task_weight != 1.0:
                    loss = ctx.task_weight * loss
                extra = hooks.extra_loss(model, (t, region, target), pred, ctx)
                if extra is not None:  # a term on the parameters, the same on every rank: each adds its share
                    loss = loss + weight * extra
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if parallel:
                    distributed.sum_gradients(params)
                hooks.on_after_backward(model, ctx)
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                hooks.on_step_end(step, model, ctx)
                with torch.no_grad():
                    mse = plane_mse(pred.detach(), target, luma)
                    running = mse if running is None else 0.9 * running + 0.1 * mse
                bar.update(1)
                if i % 10 == 0 and show:
                    # the whole batch's loss: the data term already is; the parameter term counts every rank's share
                    shown = loss.item() + (0.0 if extra is None else (1 - weight) * float(extra.detach()))
                    bar.set_postfix(loss=f"{shown:.4f}", psnr=f"{psnr_yuv_from_mse(running):.2f}",
                                    refresh=False)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, optimizer)
    hooks.on_stage_end(spec.name, model, ctx)


def default_optimizer(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam; foreach: one kernel per op for all tensors at once (small models are per-op overhead bound on CPU)."""
    return torch.optim.Adam(params, lr=lr, foreach=True)


def run_stages(model: nn.Module, data: TrainingData, stages: list[StageSpec], config: TrainConfig,
               hooks: HookList, checkpointer: Checkpointer | None = None, resume: bool = False,
               observers: TrainingHook | None = None, progress: bool = True, log: Callable[[str], None] = print,
               autocast_dtype: torch.dtype | None = None, dist: DistContext | None = None) -> tuple[nn.Module, float]:
    """Run the stages, from the checkpoint when resuming; returns the model and the seconds spent before resume.

    ``hooks`` shape the result: their state is checkpointed (and must be the same on resume). ``observers``
    (``compress.hooks.Observers``) only watch. Rank 0 alone writes checkpoints.
    """
    start = time.monotonic()
    every = HookList([hooks] + ([observers] if observers is not None else []))
    first_stage, first_epoch, opt_state, elapsed_before = 0, 0, None, 0.0
    hooks.on_data(data)
    if resume and checkpointer is not None and (saved := checkpointer.load()) is not None:
        first_stage, first_epoch, opt_state, elapsed_before = saved.stage, saved.epoch, saved.optimizer, saved.elapsed
        hooks.load_state_dict(saved.hooks)  # first: a hook may rebuild the model from its state (e.g. its ranks)
        for k in range(first_stage + 1):
            model = every.transform_model(stages[k].name, model)
        model.load_state_dict(saved.model)
        log(f"resuming at stage '{stages[first_stage].name}', epoch {first_epoch}/{stages[first_stage].epochs}")
    for k in range(first_stage, len(stages)):
        spec = stages[k]
        resuming = k == first_stage and first_epoch > 0
        if not resuming:
            model = every.transform_model(spec.name, model)

        def on_epoch_end(epoch: int, optimizer: torch.optim.Optimizer, k: int = k, spec: StageSpec = spec) -> None:
            if checkpointer is None or not distributed.is_main(dist):
                return
            elapsed = elapsed_before + time.monotonic() - start
            checkpointer.save(k, epoch, model, optimizer, elapsed, hooks.state_dict(), force=epoch == spec.epochs)

        train_stage(model, data, spec, config, k, every, start_epoch=first_epoch if resuming else 0,
                    optimizer_state=opt_state if resuming else None, on_epoch_end=on_epoch_end,
                    progress=progress, autocast_dtype=autocast_dtype, dist=dist)
    return model, elapsed_before


def batch_loss(name: str, pred: torch.Tensor, target: torch.Tensor, luma: int, weight: float) -> torch.Tensor:
    """The whole batch's loss on every rank, differentiable in this rank's slice (``weight`` of the batch).

    A loss that is a mean over frames is averaged over the slices; one that is not (``yuvlog``: the log of
    per-plane MSEs) is computed from its statistic averaged so. Either way the ranks' gradients sum to the
    whole batch's.
    """
    statistic, finish = BATCH_STATISTICS.get(name, (LOSSES.get(name), None))
    mean = distributed.batch_mean(statistic(pred, target, luma), weight)
    return mean if finish is None else finish(mean)
