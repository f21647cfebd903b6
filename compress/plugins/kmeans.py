"""``kmeans``: weight sharing (Deep Compression; the survey's "pruning & sharing"): each large weight tensor keeps
2^b shared values, its elements index them.

On entering ``stage`` (default the prune stage) each claimed tensor is clustered by 1-D k-means (centroids
initialised evenly between its min and max, the survey's linear init; Lloyd iterations) and replaced by a
``SharedWeights`` parametrization: the value is ``codebook[index]``. The indices stay fixed; the codebook trains
(the gradient of a centroid is the sum over its cluster, which indexing gives). The codebook is held on a 16-bit
grid (one fp16 step), so what the file codes decodes exactly to what training used. The plugin codes its tensors
itself (the quantizer leaves them alone): the indices (b-bit symbols, entropy-coded by the best fitted model) and
the codebook, two records in place of the tensor; the decoder maps the indices back (``decode_tensors``).

Control arm: uniform quantization at the same index bits (``--quant uniform --bits b``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from bitstream.tensors import QuantizedTensor
from compress.hooks import PLUGINS, Plugin
from compress.prune import named_tensors, remember_param_order
from compress.quantize import compute_scales

__all__ = ["KMeansOptions", "KMeans", "SharedWeights", "kmeans_1d"]

CODEBOOK_BITS = 16


def kmeans_1d(x: torch.Tensor, k: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids (k,) ascending, index of each element (x's shape)): Lloyd's algorithm from an even spread."""
    flat = x.detach().reshape(-1).double()
    lo, hi = float(flat.min()), float(flat.max())
    c = torch.linspace(lo, hi, k, dtype=torch.float64, device=flat.device)
    for _ in range(max(1, iters)):
        idx = torch.bucketize(flat, (c[1:] + c[:-1]) / 2)  # nearest centroid (c ascending)
        sums = torch.zeros(k, dtype=torch.float64, device=flat.device).index_add_(0, idx, flat)
        counts = torch.bincount(idx, minlength=k).double()
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c).sort().values  # empty clusters stay put
    idx = torch.bucketize(flat, (c[1:] + c[:-1]) / 2)
    return c, idx.reshape(x.shape)


class SharedWeights(nn.Module):
    """Parametrization: ``codebook[index]``, the codebook held on a 16-bit grid (straight-through)."""

    def __init__(self, codebook: torch.Tensor, index: torch.Tensor) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook.float().clone())
        self.register_buffer("index", index.long().clone())

    def grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(int symbols as float32, fp16-representable step): the codebook as the file holds it."""
        with torch.no_grad():
            step = compute_scales(self.codebook, CODEBOOK_BITS, None)
            safe = torch.where(step > 0, step, torch.ones_like(step))
            m = torch.round(self.codebook / safe).clamp_(-(2**15 - 1), 2**15 - 1)
        return m, step

    def values(self) -> torch.Tensor:
        m, step = self.grid()
        exact = m * step  # float32, as the decoder computes it
        return self.codebook + (exact - self.codebook).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.values()[self.index].to(x.dtype)


@dataclass(frozen=True)
class KMeansOptions:
    bits: int = field(default=4, metadata={"help": "index bits: 2^bits shared values per tensor"})
    min_size: int = field(default=256, metadata={"help": "tensors with fewer elements are left to the quantizer"})
    scope: Literal["weights", "all"] = field(
        default="weights", metadata={"help": "weights: layers' weights; all: feature grids too"})
    iters: int = field(default=20, metadata={"help": "Lloyd iterations of the clustering"})
    stage: Literal["train", "prune", "qat"] = field(default="prune", metadata={"help": "the stage that clusters"})

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 8:
            raise ValueError(f"bits must be in [1, 8], got {self.bits}")
        if self.min_size < 2:
            raise ValueError(f"min_size must be at least 2, got {self.min_size}")
        if self.iters < 1:
            raise ValueError(f"iters must be at least 1, got {self.iters}")


@PLUGINS.register("kmeans")
class KMeans(Plugin):
    """Weight sharing: 2^bits k-means centroids per tensor, indices and codebook entropy-coded."""

    Options = KMeansOptions
    coded = True

    def claims(self, name: str, param: torch.Tensor) -> bool:
        if param.numel() < self.options.min_size or param.ndim < 1:
            return False
        return self.options.scope == "all" or name.endswith(".weight")

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        if stage != self.options.stage:
            return model
        k = 1 << self.options.bits
        for name, module, param_name, param in list(named_tensors(model)):
            if not self.claims(name, param) or parametrize.is_parametrized(module, param_name):
                continue
            centroids, index = kmeans_1d(getattr(module, param_name), k, self.options.iters)
            remember_param_order(module)
            parametrize.register_parametrization(module, param_name, SharedWeights(centroids, index))
        return model

    def _shared(self, model: nn.Module) -> dict[str, SharedWeights]:
        out = {}
        for name, module, param_name, _ in named_tensors(model):
            if parametrize.is_parametrized(module, param_name):
                for p in module.parametrizations[param_name]:
                    if isinstance(p, SharedWeights):
                        out[name] = p
        return out

    def on_export(self, model: nn.Module, tensors: list[QuantizedTensor]) -> list[QuantizedTensor]:
        shared = self._shared(model)
        if not shared:
            return tensors
        mine: dict[str, list[QuantizedTensor]] = {}
        k = 1 << self.options.bits
        for name, sw in shared.items():
            m, step = sw.grid()
            mine[name] = [
                QuantizedTensor(name + ".index", tuple(sw.index.shape), sw.index.cpu().numpy().astype(np.int32),
                                np.ones(1, np.float16), None, self.options.bits),
                QuantizedTensor(name + ".codebook", (k,), m.cpu().numpy().astype(np.int32),
                                step.cpu().numpy().astype(np.float16), None, CODEBOOK_BITS)]
        by_name = {t.name: t for t in tensors}
        out = []
        for name, _, _, _ in named_tensors(model):  # the model's order, each shared tensor where it stands
            if name in mine:
                out += mine[name]
            elif name in by_name:
                out.append(by_name.pop(name))
        return out + [t for t in tensors if t.name in by_name]  # others' additions keep their order, after

    def decode_tensors(self, model: nn.Module, tensors: list[QuantizedTensor]) -> list[QuantizedTensor]:
        k = 1 << self.options.bits
        queue = list(tensors)
        out = []
        for name, param in model.named_parameters():
            if not queue:
                break
            if not self.claims(name, param):
                out.append(queue.pop(0))
                continue
            if len(queue) < 2:
                raise ValueError(f"kmeans: {name} needs an index and a codebook record")
            index, book = queue.pop(0), queue.pop(0)
            if index.shape != tuple(param.shape) or book.shape != (k,):
                raise ValueError(f"kmeans: {name}: expected index {tuple(param.shape)} and codebook ({k},), got "
                                 f"{index.shape} and {book.shape}")
            if index.numel and (int(index.symbols.min()) < 0 or int(index.symbols.max()) >= k):
                raise ValueError(f"kmeans: {name}: an index is outside 0..{k - 1}")
            out.append(QuantizedTensor("", index.shape, book.symbols[index.symbols], book.scales, None,
                                       CODEBOOK_BITS))
        return out + queue

    def summary(self, model: nn.Module) -> dict[str, Any]:
        shared = self._shared(model)
        params = sum(p.numel() for _, _, _, p in named_tensors(model))
        elements = sum(sw.index.numel() for sw in shared.values())
        return {"tensors_shared": len(shared), "index_bits": self.options.bits,
                "shared_fraction": elements / params if params else 0.0}
