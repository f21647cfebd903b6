"""Generic, reusable compression for any ``nn.Module``: pruning, quantization (QAT, export), SBS, entropy-aware
quantization with rate control, and training hooks.

See ``compress.prune``, ``compress.quantize`` and ``compress.hooks`` for the details and examples.
"""
from compress.hooks import PLUGINS, STAGES, HookContext, HookList, TrainingHook
from compress.prune import (
    FilterFn,
    Mask,
    PruneConfig,
    PruneReport,
    bake_,
    default_prune_filter,
    named_tensors,
    prune_,
    remember_param_order,
    sparsity,
)
from compress.quantize import (
    AxisFn,
    FakeQuant,
    QTensor,
    QuantConfig,
    compute_scales,
    default_axis,
    dequantize_tensor,
    export_quantized,
    load_dequantized_,
    quantize_,
    quantize_tensor,
)

__all__ = [
    "PLUGINS",
    "STAGES",
    "AxisFn",
    "FakeQuant",
    "FilterFn",
    "HookContext",
    "HookList",
    "Mask",
    "PruneConfig",
    "PruneReport",
    "QTensor",
    "QuantConfig",
    "TrainingHook",
    "bake_",
    "compute_scales",
    "default_axis",
    "default_prune_filter",
    "dequantize_tensor",
    "export_quantized",
    "load_dequantized_",
    "named_tensors",
    "prune_",
    "quantize_",
    "quantize_tensor",
    "remember_param_order",
    "sparsity",
]
from compress import sbs as _sbs  # noqa: E402,F401  (registers the 'sbs' plugin)
from compress import entropy_rate as _entropy_rate  # noqa: E402,F401  (registers the 'entropy' plugin)
