"""``lowrank``: truncated SVD of the MLP (1×1) layers, then fine-tuning of the factors (the survey's low-rank
factorisation, Cheng et al. 2017).

On entering the prune stage each target ``nn.Linear`` W (out × in) is replaced by ``LowRankLinear``: factors
U·√S (out × r) and √S·Vᵀ (r × in) of its truncated SVD, the rank r the fewest singular values that keep
``energy`` of ΣS² (or, with ``keep`` > 0, a budget of that fraction of the layer's parameters). A layer is
factorised only when the factors hold fewer parameters than W. The factors are what the quantizer quantizes and
the file codes; the file's PLUGINS record holds the ranks, from which the decoder rebuilds the same layers
(``rebuild``), so rendering costs r·(in + out) instead of in·out multiply-accumulates per position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

from bitstream.fields import Reader, write_uvarint
from compress.hooks import PLUGINS, Plugin

__all__ = ["LowRankLinear", "LowRankOptions", "LowRank", "rank_for"]

MAX_LAYERS = 4096  # the most ranks a file's record may hold
MAX_RANK = 1 << 16


class LowRankLinear(nn.Module):
    """``x @ v.T @ u.T + bias``: a linear layer of rank ``rank`` (``u``: out × r, ``v``: r × in).

    Built with defined values (each factor as ``nn.Linear`` draws its weight), never ``torch.empty``'s: a layer
    rebuilt on resume meets its quantizer before the checkpoint's values arrive, and the quantizer refuses NaN."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.u = nn.Parameter(torch.empty(out_features, rank))
        self.v = nn.Parameter(torch.empty(rank, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for factor in (self.u, self.v):
            nn.init.kaiming_uniform_(factor, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.v), self.u, self.bias)

    def macs_per_position(self) -> int:
        """Multiply-accumulates per position of the map: r·(in + out) (a dense layer: in·out)."""
        return self.rank * (self.in_features + self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def rank_for(singular: torch.Tensor, energy: float, keep: float, shape: tuple[int, int]) -> int:
    """The rank a layer keeps: by energy (the fewest values with Σs² >= energy·total) or by a parameter budget."""
    out, inp = shape
    if keep > 0:
        return max(1, min(len(singular), int(keep * out * inp / (out + inp))))
    sq = singular.double().pow(2)
    need = energy * float(sq.sum())
    return max(1, min(len(singular), int(torch.searchsorted(torch.cumsum(sq, 0), torch.tensor(need)).item()) + 1))


@dataclass(frozen=True)
class LowRankOptions:
    energy: float = field(default=0.9, metadata={"help": "share of Σs² each layer keeps (when keep is 0)"})
    keep: float = field(default=0.0, metadata={"help": "> 0: each layer's rank from this fraction of its params"})
    layers: Literal["mlp", "all"] = field(
        default="mlp", metadata={"help": "mlp: the blocks' fc1/fc2; all: every Linear (projections, head too)"})

    def __post_init__(self) -> None:
        if not 0 < self.energy <= 1:
            raise ValueError(f"energy must be in (0, 1], got {self.energy}")
        if not 0 <= self.keep < 1:
            raise ValueError(f"keep must be in [0, 1), got {self.keep}")


@PLUGINS.register("lowrank")
class LowRank(Plugin):
    """Truncated SVD of the MLP layers, then fine-tuning of the factors; the decoder rebuilds them."""

    Options = LowRankOptions
    coded = True

    def __init__(self, options: LowRankOptions | None = None) -> None:
        super().__init__(options)
        self.ranks: list[int] | None = None  # per target layer in model order; 0 = left dense

    def targets(self, model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Module]]:
        """(parent, attribute, layer) for every layer this plugin factorises or has factorised, in model order."""
        for name, module in list(model.named_modules()):
            for child_name, child in list(module.named_children()):
                if not isinstance(child, (nn.Linear, LowRankLinear)):
                    continue
                if self.options.layers == "mlp" and child_name not in ("fc1", "fc2"):
                    continue
                yield module, child_name, child

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        if stage != "prune":
            return model
        if self.ranks is not None:  # a resumed encode: the same layers as before (weights come from the checkpoint)
            return self.rebuild(model)
        self.ranks = []
        with torch.no_grad():
            for parent, attr, layer in list(self.targets(model)):
                w = layer.weight.detach().double()
                u, s, vh = torch.linalg.svd(w, full_matrices=False)
                r = rank_for(s, self.options.energy, self.options.keep, tuple(w.shape))
                if r * (w.shape[0] + w.shape[1]) >= w.numel():
                    self.ranks.append(0)  # the factors would not be smaller
                    continue
                root = s[:r].sqrt()
                new = LowRankLinear(w.shape[1], w.shape[0], r, layer.bias is not None).to(layer.weight.device)
                new.u.copy_((u[:, :r] * root).to(new.u.dtype))
                new.v.copy_((root[:, None] * vh[:r]).to(new.v.dtype))
                if layer.bias is not None:
                    new.bias.copy_(layer.bias.detach())
                setattr(parent, attr, new)
                self.ranks.append(r)
        return model

    def rebuild(self, model: nn.Module) -> nn.Module:
        if self.ranks is None:
            raise ValueError("lowrank: no ranks to rebuild from")
        found = list(self.targets(model))
        if len(found) != len(self.ranks):
            raise ValueError(f"lowrank: the record has {len(self.ranks)} ranks, the model {len(found)} layers")
        for (parent, attr, layer), r in zip(found, self.ranks):
            if r == 0 or isinstance(layer, LowRankLinear):
                continue
            out, inp = layer.weight.shape
            if r > min(out, inp):
                raise ValueError(f"lowrank: rank {r} is over {attr}'s {out}x{inp}")
            device = layer.weight.device
            setattr(parent, attr, LowRankLinear(inp, out, r, layer.bias is not None).to(device))
        return model

    def export_data(self, model: nn.Module) -> bytes:
        ranks = self.ranks or []
        return write_uvarint(len(ranks)) + b"".join(write_uvarint(r) for r in ranks)

    def load_data(self, data: bytes) -> None:
        r = Reader(data, what="lowrank record")
        n = r.uvarint("layer count", max_value=MAX_LAYERS)
        self.ranks = [r.uvarint("rank", max_value=MAX_RANK) for _ in range(n)]
        r.expect_end("the ranks")

    def summary(self, model: nn.Module) -> dict[str, Any]:
        if not self.ranks:
            return {"factorised": 0}
        layers = list(self.targets(model))
        dense = sum(lay.in_features * lay.out_features for _, _, lay in layers)
        now = sum(lay.rank * (lay.in_features + lay.out_features) if isinstance(lay, LowRankLinear)
                  else lay.in_features * lay.out_features for _, _, lay in layers)
        return {"factorised": sum(1 for r in self.ranks if r), "layers": len(self.ranks),
                "ranks": ",".join(map(str, self.ranks)), "weights_dense": dense, "weights_factored": now}

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": self.ranks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ranks = None if state["ranks"] is None else [int(r) for r in state["ranks"]]
