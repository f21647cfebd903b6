"""Generic, reusable compression for any ``nn.Module``: pruning, quantization (QAT, export), SBS, entropy-aware
quantization with rate control, the quantizer registry, and the plugin interface with its plugins.

See ``compress.prune``, ``compress.quantize``, ``compress.quantizers`` and ``compress.hooks`` for the details and
examples.
"""
from compress.hooks import PLUGINS, STAGES, HookContext, HookList, Observers, Plugin, TrainingHook
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
    "Observers",
    "Plugin",
    "Mask",
    "PruneConfig",
    "PruneReport",
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
from compress import plugins as _plugins  # noqa: E402,F401  (registers the plugins)
