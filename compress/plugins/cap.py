"""``cap``: contrastive pruning (CAP, Xu et al., AAAI 2022), adapted to a video INR.

Structured pruning of the blocks' MLP hidden channels in ``steps`` steps across the prune stage (step i of n at
i/(n+1) of it), each to a larger share of every block's channels (``sparsity`` at the last). A channel's importance is CAP's first-order
``|∂L/∂mask|``: Σ|w·∂L/∂w| over its fc1 row, fc1 bias and fc2 column, accumulated since the last step (in
``on_after_backward``); the least important go. While it prunes, the model learns

* from the dense model (taken on entering the stage) and from a snapshot taken before each pruning step, through a
  contrastive loss on pooled features: the input of the head, averaged over the patch, L2-normalised. The anchor
  is the pruned model's feature of a frame; positives are the banks' features of the same frame (and region),
  negatives theirs of the other frames. ``negatives=infonce``: CAP's loss, −log of each positive's softmax share
  at temperature τ; ``negatives=rana``: RANA's attention-weighted multi-negative hinge, a_j = softmax(s(n_j)/τ),
  L = Σ_j a_j [γ + s(n_j) − s(p)]₊, whose share of steps with zero loss is reported beside that of a
  single-negative hinge (one random negative) computed alongside;
* to reproduce the dense model's output (``distill``, an MSE).

Control arm: ``loss=feature``, the same pruning and output distillation with a plain feature-MSE distillation to
the dense model in place of the contrastive term (CAP's claim holds only if it beats this).

Pruned channels are masked to exact zeros (fc1 rows and bias, fc2 columns): they cost a fraction of a bit each in
the file and nothing in the decoder beyond the dense layers' work.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from common.rana import rana_weights
from compress.hooks import PLUGINS, HookContext, Plugin
from compress.prune import Mask, find_parametrization, restrict_

__all__ = ["CAPOptions", "ContrastivePruning", "contrastive_loss", "rana_weights"]


def contrastive_loss(anchor: torch.Tensor, bank: torch.Tensor, positive: torch.Tensor, tau: float,
                     kind: str = "infonce", gamma: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, per-anchor single-negative hinge, no gradient) of ``anchor`` (B, C) against ``bank`` (N, C).

    ``positive`` (B, N) bool marks each anchor's positives (every row has at least one and one negative).
    Features are compared by cosine similarity s = a·b (both L2-normalised here).
    """
    a, b = F.normalize(anchor, dim=-1), F.normalize(bank, dim=-1)
    s = a @ b.T  # (B, N)
    neg = ~positive
    if kind == "infonce":
        log_share = torch.log_softmax(s / tau, dim=-1)
        loss = -(log_share * positive).sum(-1) / positive.sum(-1)
    else:  # rana: Σ_j a_j [γ + s(n_j) − s(p)]₊ per positive, a = softmax over the negatives
        weights = rana_weights(s, neg, tau)  # (B, N)
        margin = (gamma + s[:, None, :] - s[:, :, None]).clamp_min(0)  # (B, P=N, N): [γ + s(n_j) − s(p)]₊
        per_pos = (margin * weights[:, None, :]).sum(-1)  # (B, N): one value per candidate positive
        loss = (per_pos * positive).sum(-1) / positive.sum(-1)
    with torch.no_grad():  # the single-negative hinge: one random negative per anchor
        pick = torch.multinomial(neg.float(), 1).squeeze(1)
        s_pos = (s * positive).sum(-1) / positive.sum(-1)
        single = (gamma + s.gather(1, pick[:, None]).squeeze(1) - s_pos).clamp_min(0)
    return loss.mean(), single


@dataclass(frozen=True)
class CAPOptions:
    sparsity: float = field(default=0.5, metadata={"help": "share of each block's MLP channels pruned at the end"})
    steps: int = field(default=3, metadata={"help": "pruning steps across the prune stage"})
    loss: Literal["contrastive", "feature"] = field(
        default="contrastive", metadata={"help": "feature: the control arm, feature-MSE distillation"})
    negatives: Literal["infonce", "rana"] = field(default="infonce", metadata={"help": "the contrastive loss"})
    tau: float = field(default=0.1, metadata={"help": "temperature τ"})
    gamma: float = field(default=0.1, metadata={"help": "rana: the hinge margin γ"})
    weight: float = field(default=0.1, metadata={"help": "weight of the contrastive (or feature) term"})
    distill: float = field(default=1.0, metadata={"help": "weight of the output MSE to the dense model"})

    def __post_init__(self) -> None:
        if not 0 < self.sparsity < 1:
            raise ValueError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if not 1 <= self.steps <= 20:
            raise ValueError(f"steps must be in [1, 20], got {self.steps}")
        for name in ("tau", "gamma", "weight", "distill"):
            if not getattr(self, name) >= 0 or (name == "tau" and self.tau == 0):
                raise ValueError(f"{name} must be {'> 0' if name == 'tau' else '>= 0'}, got {getattr(self, name)}")


class _Bank:
    """A frozen copy of the model and, per region, its pooled features and outputs of
    every frame, computed when a region is first asked for."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval().requires_grad_(False)
        self.cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def of(self, region: tuple, frames: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (frames, C), outputs (frames, h, w, C_out)) for ``region``."""
        key = tuple(region)
        if key not in self.cache:
            feats, outs = [], []
            with torch.no_grad():
                for start in range(0, frames, 8):
                    t = torch.arange(start, min(start + 8, frames), device=device)
                    out, feat = _forward_with_features(self.model, t, region)
                    feats.append(feat)
                    outs.append(out)
            self.cache[key] = torch.cat(feats), torch.cat(outs)
        return self.cache[key]


def _forward_with_features(model: nn.Module, t: torch.Tensor, region: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, pooled input of the head): the model's last hidden features averaged over the region."""
    seen: list[torch.Tensor] = []
    handle = model.head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    try:
        out = model(t, region)
    finally:
        handle.remove()
    return out, seen[-1].flatten(1, -2).mean(1)


@PLUGINS.register("cap")
class ContrastivePruning(Plugin):
    """Contrastive pruning (CAP): MLP channels pruned in steps, learning from the dense model and snapshots."""

    Options = CAPOptions

    def __init__(self, options: CAPOptions | None = None) -> None:
        super().__init__(options)
        self.banks: list[_Bank] = []
        self.saved_banks: list[dict[str, torch.Tensor]] | None = None  # bank weights from a checkpoint
        self.done_steps = 0
        self.importance: dict[str, torch.Tensor] = {}
        self.zero_steps = self.zero_single = self.loss_steps = 0
        self.active = False
        self._seen: list[torch.Tensor] = []  # the head's inputs in the trainer's last forward
        self._handles: list[Any] = []

    # ---- the MLPs it prunes
    @staticmethod
    def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
        return [(n, m) for n, m in model.named_modules() if isinstance(getattr(m, "fc1", None), nn.Linear)
                and isinstance(getattr(m, "fc2", None), nn.Linear)]

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        if stage != "prune":
            return model
        for _, block in self.blocks(model):  # masks now, before a quantizer stacks on the weights
            for layer, name in ((block.fc1, "weight"), (block.fc1, "bias"), (block.fc2, "weight")):
                if getattr(layer, name, None) is not None:
                    restrict_(layer, name, torch.ones((), dtype=torch.bool))
        return model

    def _snapshot(self, model: nn.Module) -> _Bank:
        """A frozen copy, evaluated in eval mode (its parametrizations give their exact values: masks, quantizers).
        Not baked: removing a copy's parametrizations would strip the class it shares with the model."""
        frozen = copy.deepcopy(model)
        for m in frozen.modules():  # not this plugin's capture hooks
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
        return _Bank(frozen)

    def on_stage_start(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        self.active = stage == "prune"
        if not self.active:
            return
        self._handles = [model.register_forward_pre_hook(lambda module, args: self._seen.clear()),
                         model.head.register_forward_hook(lambda module, args, out: self._seen.append(args[0]))]
        if self.saved_banks is not None:  # resumed: the banks as they were
            self.banks = []
            for state in self.saved_banks:
                bank = self._snapshot(model)
                bank.model.load_state_dict(state)
                self.banks.append(bank)
            self.saved_banks = None
        elif not self.banks:
            self.banks = [self._snapshot(model)]  # the dense model

    def on_stage_end(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        if stage == "prune":
            self.active = False
            self.banks = []  # the file never needs them
            for handle in self._handles:
                handle.remove()
            self._handles = []

    def on_after_backward(self, model: nn.Module, ctx: HookContext) -> None:
        if not self.active:
            return
        with torch.no_grad():
            for name, block in self.blocks(model):
                score = torch.zeros(block.fc1.out_features, device=ctx.device)
                for layer, pname, dim in ((block.fc1, "weight", 1), (block.fc1, "bias", None), (block.fc2, "weight", 0)):
                    p = layer.parametrizations[pname].original if parametrize.is_parametrized(layer, pname) \
                        else getattr(layer, pname, None)
                    if p is None or p.grad is None:
                        continue
                    contrib = (p * p.grad).abs()
                    score += contrib if dim is None else contrib.sum(dim)
                self.importance[name] = self.importance.get(name, torch.zeros_like(score)) + score

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        if not self.active or self.done_steps >= self.options.steps:
            return
        # step i of n at progress i/(n+1): importance gathered before each, time to recover after the last
        if (ctx.step + 1) / ctx.total_steps >= (self.done_steps + 1) / (self.options.steps + 1):
            self._prune_step(model)

    @torch.no_grad()
    def _prune_step(self, model: nn.Module) -> None:
        if self.done_steps:  # CAP: a snapshot before each pruning step (before the first: the dense model)
            self.banks.append(self._snapshot(model))
        self.done_steps += 1
        share = self.options.sparsity * self.done_steps / self.options.steps
        for name, block in self.blocks(model):
            alive = find_parametrization(block.fc1, "weight", Mask)[1].mask.any(1)
            score = self.importance.get(name, torch.zeros(alive.shape, device=alive.device)).clone()
            score[~alive] = -1  # already pruned: stay pruned
            drop = torch.argsort(score, stable=True)[: int(share * alive.numel())]
            keep = torch.ones_like(alive)
            keep[drop] = False
            restrict_(block.fc1, "weight", keep[:, None])
            if block.fc1.bias is not None:
                restrict_(block.fc1, "bias", keep)
            restrict_(block.fc2, "weight", keep[None, :])
        self.importance = {}

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        if not self.active or not self.banks:
            return None
        t, region, _ = batch
        frames = model.config.frames if hasattr(model, "config") else int(t.max()) + 1
        if len(self._seen) == 1 and self._seen[0].shape[0] == t.shape[0]:  # the trainer's forward, in one pass
            feats = self._seen[0].flatten(1, -2).mean(1)
        else:  # rendered in chunks or bands: a forward of its own (the hooks see it too)
            output, feats = _forward_with_features(model, t, region)
            self._seen.clear()
        dense_feats, dense_out = self.banks[0].of(region, frames, t.device)
        term = self.options.distill * F.mse_loss(output, dense_out[t]) if self.options.distill else 0.0
        if self.options.weight == 0:
            return term
        if self.options.loss == "feature":
            return term + self.options.weight * F.mse_loss(feats, dense_feats[t])
        bank = torch.cat([b.of(region, frames, t.device)[0] for b in self.banks])  # (banks * frames, C)
        ids = torch.arange(frames, device=t.device).repeat(len(self.banks))
        positive = ids[None, :] == t[:, None]
        loss, single = contrastive_loss(feats, bank, positive, self.options.tau, self.options.negatives,
                                        self.options.gamma)
        self.loss_steps += 1
        self.zero_steps += int(float(loss.detach()) == 0.0)
        self.zero_single += int(bool((single == 0).all()))
        return term + self.options.weight * loss

    def summary(self, model: nn.Module) -> dict[str, Any]:
        kept = total = 0
        for _, block in self.blocks(model):
            found = find_parametrization(block.fc1, "weight", Mask)
            alive = found[1].mask.any(1) if found else torch.ones(block.fc1.out_features, dtype=torch.bool)
            kept, total = kept + int(alive.sum()), total + alive.numel()
        out = {"channels_kept": kept, "channels": total, "pruning_steps": self.done_steps}
        if self.options.loss == "contrastive" and self.loss_steps:
            out["zero_loss_share"] = self.zero_steps / self.loss_steps
            out["zero_loss_share_single_negative"] = self.zero_single / self.loss_steps
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"done_steps": self.done_steps, "importance": dict(self.importance),
                "counts": [self.zero_steps, self.zero_single, self.loss_steps],
                "banks": [b.model.state_dict() for b in self.banks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done_steps = int(state["done_steps"])
        self.importance = dict(state["importance"])
        self.zero_steps, self.zero_single, self.loss_steps = (int(v) for v in state["counts"])
        self.saved_banks = list(state["banks"]) or None

