"""One-shot global magnitude pruning, applied as ``torch.nn.utils.parametrize`` masks.

Works on any ``nn.Module``. The score of a weight is ``|w| / n_layer ** size_exponent`` with ``n_layer`` the
number of elements of its tensor (HiNeRV's layer-size normalisation, docs/design.md §3), and the ``ratio`` fraction of all
selected weights with the lowest scores is pruned, globally across tensors.

A pruned tensor keeps its name: ``module.weight`` becomes ``Mask(original)``, so gradients of masked entries are
zero, the optimizer keeps training the same ``Parameter`` object, and further parametrizations (fake quantization,
see ``compress.quantize``) stack on top. ``bake_`` removes every parametrization, writing the parametrized values
into the parameters (pruned entries become exact zeros), before export.

Example::

    report = prune_(model, PruneConfig(ratio=0.15))   # masks registered in place
    ...fine-tune...
    bake_(model)                                       # plain parameters again, zeros where pruned
    assert abs(sparsity(model) - report.ratio) < 1e-6
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "FilterFn",
    "Mask",
    "PruneConfig",
    "PruneReport",
    "bake_",
    "default_prune_filter",
    "find_parametrization",
    "input_of",
    "named_tensors",
    "prune_",
    "remember_param_order",
    "restrict_",
    "sparsity",
]

# filter_fn(module_name, module, param_name, param) -> bool. module_name is the module's qualified name ("" for
# the root), param_name the attribute name on that module (e.g. "weight"), param the underlying nn.Parameter
# (for a parametrized tensor, the original Parameter under the parametrizations).
FilterFn = Callable[[str, nn.Module, str, torch.Tensor], bool]


@dataclass(frozen=True)
class PruneConfig:
    """One-shot global magnitude pruning."""

    ratio: float = 0.15  # fraction of all selected weights to prune (target global sparsity), in [0, 1]
    size_exponent: float = 0.5  # score = |w| / numel(tensor) ** size_exponent; 0 = plain global magnitude
    version: int = 1  # bump when the meaning of a field changes

    def __post_init__(self) -> None:
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)):
            raise ValueError(f"PruneConfig.ratio: expected a number in [0, 1], got {self.ratio!r}")
        if not (0.0 <= self.ratio <= 1.0):
            raise ValueError(f"PruneConfig.ratio: expected a number in [0, 1], got {self.ratio!r}")
        if isinstance(self.size_exponent, bool) or not isinstance(self.size_exponent, (int, float)):
            raise ValueError(f"PruneConfig.size_exponent: expected a finite number >= 0, got {self.size_exponent!r}")
        if not (math.isfinite(self.size_exponent) and self.size_exponent >= 0.0):
            raise ValueError(f"PruneConfig.size_exponent: expected a finite number >= 0, got {self.size_exponent!r}")
        if self.version != 1:
            raise ValueError(f"PruneConfig.version: expected 1, got {self.version!r}")


@dataclass(frozen=True)
class PruneReport:
    """What ``prune_`` did.

    Attributes:
        tensors: full parameter name (as in ``state_dict()`` after baking) -> (numel, pruned entries).
        total: number of selected weights.
        pruned: number of pruned weights (``round(ratio * total)``).
    """

    tensors: dict[str, tuple[int, int]] = field(default_factory=dict)
    total: int = 0
    pruned: int = 0

    @property
    def ratio(self) -> float:
        """Achieved global sparsity over the selected weights."""
        return self.pruned / self.total if self.total else 0.0


class Mask(nn.Module):
    """Parametrization ``x -> x`` with the entries where ``mask`` is False set to zero (zero gradient there too).

    Args:
        mask: bool tensor of the parameter's shape; True keeps the entry.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        if mask.dtype != torch.bool:
            raise TypeError(f"Mask: expected a bool tensor, got dtype {mask.dtype}")
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.masked_fill(~self.mask, 0.0)

    def extra_repr(self) -> str:
        kept = int(self.mask.sum())
        return f"shape={tuple(self.mask.shape)}, kept={kept}/{self.mask.numel()}"


def default_prune_filter(module_name: str, module: nn.Module, param_name: str, param: torch.Tensor) -> bool:
    """Default selection: the ``weight`` of ``nn.Linear`` and ``nn.Conv*`` (incl. transposed) modules."""
    return param_name == "weight" and isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))


def _parametrization_internals(model: nn.Module) -> set[int]:
    """ids of the modules that live inside some ``module.parametrizations`` (not user modules)."""
    skip: set[int] = set()
    for m in model.modules():
        if parametrize.is_parametrized(m):
            skip.update(id(sub) for sub in m.parametrizations.modules())
    return skip


def find_parametrization(module: nn.Module, param_name: str, kind: type) -> tuple[int, nn.Module] | None:
    """``(position, parametrization)`` of the first ``kind`` on ``module.<param_name>``, or None."""
    if not parametrize.is_parametrized(module, param_name):
        return None
    for i, p in enumerate(module.parametrizations[param_name]):
        if isinstance(p, kind):
            return i, p
    return None


def input_of(full: str, module: nn.Module, param_name: str, idx: int) -> torch.Tensor:
    """The tensor the last parametrization, at position ``idx``, sees: the original through those before it.

    Raises:
        ValueError: ``idx`` is not the last parametrization (a quantizer must see the final value).
    """
    plist = module.parametrizations[param_name]
    if idx != len(plist) - 1:
        after = [type(p).__name__ for p in list(plist)[idx + 1:]]
        raise ValueError(f"{full!r} has parametrizations {after} after {type(plist[idx]).__name__}; expected none")
    x = plist.original
    for p in list(plist)[:idx]:
        x = p(x)
    return x


def named_tensors(
    model: nn.Module, filter_fn: FilterFn | None = None
) -> Iterator[tuple[str, nn.Module, str, torch.Tensor]]:
    """Yield ``(full_name, module, param_name, param)`` for every logical parameter of ``model``.

    Parametrized tensors are reported under their logical name (``lin.weight``, as in ``state_dict()`` after
    baking) with ``param`` the original ``nn.Parameter``; the parametrizations' own internals are skipped. The
    order is that of a fresh model's ``named_parameters()`` (for tensors parametrized by ``prune_``/``quantize_``,
    see ``remember_param_order``).
    ``filter_fn(module_name, module, param_name, param)`` restricts the selection.
    """
    skip = _parametrization_internals(model)
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        if id(module) in skip:
            continue
        entries: list[tuple[str, torch.Tensor]] = list(module.named_parameters(recurse=False))
        if parametrize.is_parametrized(module):
            for pname, plist in module.parametrizations.items():
                if plist.is_tensor:
                    entries.append((pname, plist.original))
            order = getattr(module, _ORDER_ATTR, [])
            entries.sort(key=lambda e: order.index(e[0]) if e[0] in order else len(order))  # stable
        for param_name, param in entries:
            if id(param) in seen:  # tied parameters are reported once
                continue
            if filter_fn is not None and not filter_fn(module_name, module, param_name, param):
                continue
            seen.add(id(param))
            full = f"{module_name}.{param_name}" if module_name else param_name
            yield full, module, param_name, param


_ORDER_ATTR = "_compress_param_order"


def remember_param_order(module: nn.Module) -> None:
    """Record ``module``'s parameter order before its first parametrization (parametrize moves the tensors).

    ``named_tensors`` then reports the tensors in their original order and ``bake_`` restores it, so the
    order matches a fresh model's ``named_parameters()`` / ``state_dict()``. Call before
    ``register_parametrization`` (``prune_`` and ``quantize_`` do).
    """
    if not hasattr(module, _ORDER_ATTR):
        names = list(module._parameters)
        if parametrize.is_parametrized(module):
            names += list(module.parametrizations)
        setattr(module, _ORDER_ATTR, names)


def _find_mask(module: nn.Module, param_name: str) -> Mask | None:
    if not parametrize.is_parametrized(module, param_name):
        return None
    for p in module.parametrizations[param_name]:
        if isinstance(p, Mask):
            return p
    return None


@torch.no_grad()
def restrict_(module: nn.Module, param_name: str, keep: torch.Tensor) -> Mask:
    """Zero ``module.<param_name>`` where ``keep`` (bool, broadcastable to it) is False: merged into its ``Mask``
    (masks never stack), or a new one registered. Returns that Mask."""
    existing = _find_mask(module, param_name)
    if existing is not None:
        existing.mask &= keep
        return existing
    remember_param_order(module)
    mask = Mask(keep.expand(getattr(module, param_name).shape).clone())
    parametrize.register_parametrization(module, param_name, mask)
    return mask


@torch.no_grad()
def prune_(model: nn.Module, config: PruneConfig, filter_fn: FilterFn | None = None) -> PruneReport:
    """Prune ``model`` in place: global magnitude pruning with layer-size normalisation, as masks.

    Exactly ``round(config.ratio * N)`` of the ``N`` selected weights are masked (ties broken by parameter order
    and position, deterministically). Scores use the tensors' current (parametrized) values, so entries already
    zero score lowest and count toward the ratio: calling ``prune_`` again with a larger ratio extends the
    existing masks (they are merged into the existing ``Mask``, not stacked). Prune before ``quantize_``.

    Args:
        model: any module; modified in place.
        config: the pruning configuration.
        filter_fn: selects tensors, ``filter_fn(module_name, module, param_name, param) -> bool``; default
            ``default_prune_filter`` (weights of Linear and Conv layers).

    Returns:
        A ``PruneReport`` (per-tensor and total counts).

    Raises:
        ValueError: nothing selected, or a selected tensor already carries parametrizations other than a Mask
            (e.g. fake quantization: prune first).
    """
    if not isinstance(config, PruneConfig):
        raise TypeError(f"prune_: expected a PruneConfig, got {type(config).__name__}")
    selected = list(named_tensors(model, filter_fn or default_prune_filter))
    if not selected:
        raise ValueError("prune_: expected at least one selected tensor, got none (check filter_fn)")
    for full, module, param_name, _ in selected:
        if parametrize.is_parametrized(module, param_name):
            others = [type(p).__name__ for p in module.parametrizations[param_name] if not isinstance(p, Mask)]
            if others:
                raise ValueError(
                    f"prune_: {full!r} already has parametrizations {others}; expected none or only a Mask "
                    "(prune before quantize_)"
                )

    values = [getattr(module, param_name).detach() for _, module, param_name, _ in selected]
    device = values[0].device
    scores = torch.cat(
        [(v.abs().float() / float(v.numel()) ** config.size_exponent).reshape(-1).to(device) for v in values]
    )
    total = scores.numel()
    k = round(config.ratio * total)
    keep_flat = torch.ones(total, dtype=torch.bool, device=device)
    if k > 0:
        order = torch.argsort(scores, stable=True)
        keep_flat[order[:k]] = False

    tensors: dict[str, tuple[int, int]] = {}
    offset = 0
    for (full, module, param_name, _), v in zip(selected, values):
        n = v.numel()
        keep = keep_flat[offset : offset + n].reshape(v.shape).to(v.device)
        offset += n
        keep = restrict_(module, param_name, keep).mask
        tensors[full] = (n, int((~keep).sum()))
    return PruneReport(tensors=tensors, total=total, pruned=sum(p for _, p in tensors.values()))


@torch.no_grad()
def sparsity(model: nn.Module, filter_fn: FilterFn | None = None) -> float:
    """Fraction of exactly-zero entries over the selected tensors' current (parametrized) values.

    The selection defaults to ``default_prune_filter`` (Linear and Conv weights); pass ``lambda *a: True`` for
    every parameter. Returns 0.0 when nothing is selected.
    """
    zeros = total = 0
    for _, module, param_name, _ in named_tensors(model, filter_fn or default_prune_filter):
        v = getattr(module, param_name)
        zeros += int((v == 0).sum())
        total += v.numel()
    return zeros / total if total else 0.0


def bake_(model: nn.Module) -> list[str]:
    """Remove every parametrization in ``model``, leaving the parametrized values in the parameters (in place).

    Pruned entries become exact zeros. Fake-quantization parametrizations are evaluated in eval mode (every
    element quantized, deterministic) whatever the model's mode. The ``Parameter`` objects are kept, so an
    optimizer holding them stays valid.

    Returns:
        The full names of the baked tensors.
    """
    baked: list[str] = []
    for module_name, module in list(model.named_modules()):
        if not parametrize.is_parametrized(module):
            continue
        plists = module.parametrizations
        modes = [(m, m.training) for m in plists.modules()]
        for m, _ in modes:
            m.train(False)
        try:
            for param_name in list(plists.keys()):
                parametrize.remove_parametrizations(module, param_name, leave_parametrized=True)
                baked.append(f"{module_name}.{param_name}" if module_name else param_name)
        finally:
            for m, mode in modes:
                m.train(mode)
        order = module.__dict__.pop(_ORDER_ATTR, None)
        if order is not None:  # restore the original parameter order (state_dict order of a fresh model)
            items = dict(module._parameters)
            module._parameters.clear()
            for k in sorted(items, key=lambda k: order.index(k) if k in order else len(order)):
                module._parameters[k] = items[k]
    return baked
