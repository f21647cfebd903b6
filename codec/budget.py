"""``--time-budget MINUTES``: the epochs an encode can afford, from a timing of its own training steps.

The train stage's step is timed on the clip itself (a copy of the model, one warm-up step, the median of a few
more), so the estimate knows the machine, the threads, the model and the frame size. The prune and QAT stages
(0.2 and 0.1 x the epochs) cost more a step, by the quantizer's factors (``Quantizer.stage_cost``); then

    epochs = budget / (steps per epoch x step seconds x (1 + 0.2 f_prune + 0.1 f_qat))

unless the prune stage steers the rate to a target and so runs at least ``Quantizer.min_steering_steps`` steps: on
a short clip (few steps an epoch) that fixed cost comes off the budget first.

The plan is kept in the checkpoint, so a resumed encode trains the epochs it started with. A plugin's teacher
(``codec.teacher``) is not in the budget.
"""
from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn

from .losses import LOSSES
from .train import TrainConfig, TrainingData, default_optimizer

MIN_EPOCHS = 1
MAX_EPOCHS = 100_000


def time_train_step(model: nn.Module, data: TrainingData, config: TrainConfig, steps: int = 4) -> float:
    """Median seconds of a train-stage step (forward, loss, backward, Adam) on a copy of ``model``, after one
    warm-up step. The model itself and the global random state are left as they were."""
    probe = copy.deepcopy(model).train()
    params = [p for p in probe.parameters() if p.requires_grad]
    optimizer = default_optimizer(params, 1e-3)
    loss_fn = LOSSES.get(config.loss)
    times = []
    devices = [data.device] if data.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        plan = list(data.batches(torch.Generator().manual_seed(0)))  # one epoch's batches, reused if it is short
        for i in range(steps + 1):
            t, region = plan[i % len(plan)]
            start = time.perf_counter()
            loss = loss_fn(probe(t, region).float(), data.target(t, region), data.layout.luma_channels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if data.device.type == "cuda":
                torch.cuda.synchronize(data.device)
            if i:  # the first step pays for allocations and lazy initialisation
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def epochs_for_budget(seconds: float, step_seconds: float, steps_per_epoch: int, prune_cost: float,
                      qat_cost: float, prune_share: float = 0.2, qat_share: float = 0.1,
                      min_prune_steps: int = 0) -> int:
    """The most epochs whose train, prune and QAT stages fit in ``seconds`` (at least ``MIN_EPOCHS``).

    ``min_prune_steps``: the prune stage runs at least this many steps whatever the epochs (a stage steering the
    rate to a target: ``compress.quantizers.Quantizer.min_steering_steps``); on a short clip that floor, not the
    share, prices it.
    """
    step = max(step_seconds, 1e-12)
    per_epoch = steps_per_epoch * step * (1 + prune_share * prune_cost + qat_share * qat_cost)
    epochs = seconds // per_epoch
    if prune_share * epochs * steps_per_epoch < min_prune_steps:  # the floor holds: the prune stage is fixed
        rest = seconds - min_prune_steps * step * prune_cost
        epochs = rest // (steps_per_epoch * step * (1 + qat_share * qat_cost))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, epochs)))
