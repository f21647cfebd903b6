"""A HiNeRV's layers as distillation sees them: the base grid's features, the stem's output, each stage's output.

A teacher built for the same clip as its student shares the student's stride ladder and depths
(``codec.teacher``), so for one batch and region their layer maps have the same size and differ only in width:
layer l of one lines up with layer l of the other. ``LayerTap`` records a model's layer maps as its forward pass
makes them (the student's, with their gradient); ``TeacherFeatures`` gives a frozen teacher's, computed once per
frame and region and kept while they fit in a budget; ``channel_importance`` scores a layer's channels by the L1
norm of the weights that write them (InDistill's structured pruning criterion).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

__all__ = ["LayerTap", "TeacherFeatures", "channel_importance", "layer_modules", "layer_widths", "single_pass",
           "tapped_forward", "top_channels"]


def layer_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are the layers: the base grid, the stem, each stage's last block."""
    return [model.grid, model.stem] + [stage.blocks[-1] for stage in model.stages]


def layer_widths(model: nn.Module) -> tuple[int, ...]:
    """Channels of each layer in ``layer_modules`` order (a luma stage's is the last)."""
    stages = tuple(s.out_channels for s in model.config.stage_shapes())
    return (model.grid.out_channels, model.config.channels[0]) + stages


def _channels_last(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    return out.permute(0, 2, 3, 1) if isinstance(module, nn.Conv2d) else out  # the stem runs channels-first


class LayerTap:
    """Records the layer maps (B, h, w, C) of the model's last forward pass while attached (``close`` detaches)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.seen: list[list[torch.Tensor]] = [[] for _ in layer_modules(model)]
        self._handles = [model.register_forward_pre_hook(lambda module, args: self.clear())]
        self._handles += [m.register_forward_hook(self._recorder(i)) for i, m in enumerate(layer_modules(model))]

    def _recorder(self, i: int):
        def record(module: nn.Module, args, out: torch.Tensor) -> None:
            self.seen[i].append(_channels_last(module, out))
        return record

    def clear(self) -> None:
        for maps in self.seen:
            maps.clear()

    def maps(self, batch: int) -> list[torch.Tensor] | None:
        """Each layer's map of the last forward pass, if it made each in one piece for ``batch`` frames (a CPU
        forward may render in chunks or bands: then None, and ``single_pass`` makes them whole)."""
        if all(len(m) == 1 and m[0].shape[0] == batch for m in self.seen):
            return [m[0] for m in self.seen]
        return None

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.clear()


@contextmanager
def single_pass(model: nn.Module) -> Iterator[nn.Module]:
    """The model renders a batch in one pass (no CPU chunks or bands) inside the block."""
    before = getattr(model, "chunk_bytes", 0)
    model.chunk_bytes = 0
    try:
        yield model
    finally:
        model.chunk_bytes = before


def tapped_forward(model: nn.Module, tap: LayerTap, t: torch.Tensor,
                   region) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(output, layer maps) of one forward pass in one piece."""
    with single_pass(model):
        out = model(t, region)
    maps = tap.maps(t.shape[0])
    if maps is None:  # a layer ran other than once (a model whose forward is not HiNeRV's)
        raise RuntimeError("the layer taps did not see each layer once in a single-pass forward")
    return out, maps


class TeacherFeatures:
    """A frozen teacher's layer maps per frame and region: computed when first asked for and kept while their
    bytes stay within ``budget`` (then computed again each time)."""

    def __init__(self, teacher: nn.Module, budget: int = 512 << 20) -> None:
        self.teacher = teacher
        self.budget = budget
        self.kept: dict[tuple, list[torch.Tensor]] = {}
        self.bytes = 0

    @torch.no_grad()
    def of(self, t: torch.Tensor, region) -> list[torch.Tensor]:
        """Each layer's (B, h, w, C_l) maps for frames ``t`` of ``region``."""
        region = tuple(int(v) for v in region)
        frames = [int(i) for i in t.tolist()]
        missing = sorted({i for i in frames if (i, region) not in self.kept})
        fresh: dict[int, list[torch.Tensor]] = {}
        if missing:
            tap = LayerTap(self.teacher)  # attached for this pass only
            try:
                _, maps = tapped_forward(self.teacher, tap, torch.tensor(missing, device=t.device), region)
            finally:
                tap.close()
            for j, i in enumerate(missing):
                fresh[i] = [m[j] for m in maps]
                size = sum(m[j].numel() * m[j].element_size() for m in maps)
                if self.bytes + size <= self.budget:
                    self.kept[(i, region)] = [m[j].clone() for m in maps]  # not a view of the whole batch
                    self.bytes += size
        per_frame = [self.kept.get((i, region)) or fresh[i] for i in frames]
        return [torch.stack([f[layer] for f in per_frame]) for layer in range(len(per_frame[0]))]


@torch.no_grad()
def channel_importance(model: nn.Module) -> list[torch.Tensor]:
    """Of a plain HiNeRV (a teacher): per layer (``layer_modules`` order), each channel's L1 norm of the weights
    that write it, each writer's norms divided by their mean so layers of other kinds weigh alike.

    The grid's channels are written by the grid's values; the stem's by its filters; a stage's residual stream
    by its blocks' ``fc2`` rows, and, where the stage's first block keeps the width (a residual), by what wrote
    the previous layer too.
    """
    def normalised(v: torch.Tensor) -> torch.Tensor:
        v = v.float()
        return v / v.mean().clamp_min(1e-12)

    grid = torch.cat([g.detach().abs().flatten(0, -2).sum(0) for g in model.grid.grids])
    scores = [normalised(grid), normalised(model.stem.weight.abs().flatten(1).sum(1))]
    for stage in model.stages:
        own = sum(normalised(block.fc2.weight.abs().sum(1)) for block in stage.blocks)
        scores.append(own + scores[-1] if stage.blocks[0].residual else own)
    return scores


def top_channels(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """The indices of the ``keep`` highest scores, in channel order (ties: the lower index)."""
    order = torch.argsort(-scores, stable=True)[:keep]
    return torch.sort(order).values
