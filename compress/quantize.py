"""Per-channel symmetric uniform quantization, fake quantization for QAT (with Quant-Noise), export and import.

Works on any ``nn.Module``. For ``bits`` = n the symbols are integers in ``[-qmax, qmax]`` with
``qmax = 2**(n-1) - 1`` (a mid-tread grid with a zero level, so pruned zeros stay zero), and per channel along
``axis`` (or per tensor when ``axis`` is None)::

    scale = fp16(max|x| / qmax)          # rounded to float16 (nearest): the bitstream stores fp16 scales
    q     = clamp(round(x / scale), -qmax, qmax)    (0 where scale == 0, i.e. an all-zero channel)
    x^    = q * scale                    # float32

The encoder and the decoder compute ``x^`` with the same float32 product from the same fp16 scale and int
symbols, so the encoder's reconstruction equals the decoder's bit for bit. Where rounding to nearest would make
the channel's largest value clip by more than half a step (only for bits >= 12 or scales in fp16's subnormal
range, below 6.1e-5), the scale is rounded up instead, so every element is within half a step; in particular a
non-zero channel never gets scale 0. A scale above the fp16 maximum saturates (values then clip). The fp16
rounding is done in float32/int32 arithmetic, so a ``torch.compile``d FakeQuant gives the same values as eager.
(The HiNeRV paper writes scale = 2·max|x| / (2**n - 1), a grid without an exact ``±qmax`` pair; this symmetric
``qmax = 2**(n-1) - 1`` grid spends one level less and keeps 0 and ±max exact.)

QAT: ``quantize_`` registers a ``FakeQuant`` parametrization on each selected parameter (on top of a prune
``Mask`` if there is one). Its forward returns the fake-quantized tensor with a straight-through estimator; in
training mode only a random ``quant_noise`` fraction of the elements is quantized (Quant-Noise, Fan et al. 2020),
in eval mode all of them. Export with ``export_quantized`` (reads the values the FakeQuant sees, so it matches the
eval-mode forward exactly), and load the dequantized values into a plain model with ``load_dequantized_``.

Example::

    prune_(model, PruneConfig())              # optional, before quantize_
    quantize_(model, QuantConfig(bits=6))     # FakeQuant registered in place; fine-tune (QAT)
    qts = export_quantized(model, QuantConfig(bits=6))   # list[QuantizedTensor]: symbols + fp16 scales
    bake_(model)                              # plain parameters (= dequantized values, eval-mode FakeQuant)
    load_dequantized_(decoder_model, qts)     # decoder side: same values, bit for bit
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from bitstream.tensors import QuantizedTensor
from compress.numerics import FP16_MAX, FP16_TINY, ceil_fp16, normalize_axis, round_fp16
from compress.prune import FilterFn, find_parametrization, input_of, named_tensors, remember_param_order

__all__ = [
    "AxisFn",
    "FakeQuant",
    "QuantConfig",
    "compute_scales",
    "default_axis",
    "dequantize_tensor",
    "export_quantized",
    "load_dequantized_",
    "quantize_",
    "quantize_tensor",
]

MIN_BITS, MAX_BITS = 2, 16

# axis_fn(full_name, param) -> channel axis, or None for one scale for the whole tensor.
AxisFn = Callable[[str, torch.Tensor], "int | None"]


@dataclass(frozen=True)
class QuantConfig:
    """Symmetric uniform quantization and QAT."""

    bits: int = 8  # bits per symbol n: symbols in [-(2**(n-1) - 1), 2**(n-1) - 1]; 2..16
    per_channel: bool = True  # one fp16 scale per channel (axis from axis_fn); False = one scale per tensor
    quant_noise: float = 0.9  # QAT, training mode: fraction of elements quantized per forward, in [0, 1]
    version: int = 1  # bump when the meaning of a field changes

    def __post_init__(self) -> None:
        _check_bits(self.bits, "QuantConfig.bits")
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"QuantConfig.per_channel: expected a bool, got {self.per_channel!r}")
        _check_fraction(self.quant_noise, "QuantConfig.quant_noise")
        if self.version != 1:
            raise ValueError(f"QuantConfig.version: expected 1, got {self.version!r}")


def _check_bits(bits: object, what: str) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not (MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(f"{what}: expected an int in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")


def _check_fraction(p: object, what: str) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 <= p <= 1.0):
        raise ValueError(f"{what}: expected a number in [0, 1], got {p!r}")


def _qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def _bshape(scales: torch.Tensor, ndim: int, axis: int | None) -> torch.Tensor:
    """Reshape 1-D scales so they broadcast against a tensor of ``ndim`` dims along ``axis``."""
    if axis is None:
        return scales.reshape([1] * ndim) if ndim else scales.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return scales.reshape(shape)


def default_axis(name: str, param: torch.Tensor) -> int | None:
    """Default channel axis: 0 (output channels) for tensors with ndim >= 2, per tensor (None) for 1-D/0-D."""
    return 0 if param.ndim >= 2 else None


@torch.no_grad()
def compute_scales(x: torch.Tensor, bits: int, axis: int | None) -> torch.Tensor:
    """Symmetric scales ``fp16(max|x| / qmax)`` per channel along ``axis`` (or one for the tensor).

    Rounded to the nearest fp16, or up where nearest would clip the channel's max by more than half a step (see
    the module docstring).

    Returns:
        float32 tensor holding fp16-representable values, shape ``(x.shape[axis],)`` or ``(1,)`` when ``axis``
        is None. 0 exactly for an all-zero channel. Detached.
    """
    _check_bits(bits, "compute_scales: bits")
    axis = normalize_axis(axis, x.ndim)
    n = 1 if axis is None else x.shape[axis]
    a = x.detach().abs().float()
    if x.numel() == 0:
        return torch.zeros(n, dtype=torch.float32, device=x.device)
    if axis is None:
        amax = a.amax().reshape(1)
    else:
        dims = tuple(d for d in range(x.ndim) if d != axis)
        amax = a.amax(dim=dims) if dims else a
    qmax = _qmax(bits)
    nearest = round_fp16((amax / qmax).clamp(max=FP16_MAX))
    # Never let the fp16 rounding clip a channel's max by more than half a step: the scale must satisfy
    # max|x| / scale <= qmax + 1/2. Only bites for bits >= 12 or fp16-subnormal scales; else s == nearest.
    floor_ok = ceil_fp16((amax / (qmax + 0.5)).clamp(max=FP16_MAX))
    s = torch.maximum(nearest, floor_ok)
    return torch.where(amax > 0, s.clamp(min=FP16_TINY), torch.zeros_like(s))  # (n,)


def _quantize_float(x: torch.Tensor, scales: torch.Tensor, bits: int, axis: int | None) -> torch.Tensor:
    """Integer symbols as float32 (exact), same shape as ``x``; shared by FakeQuant and ``quantize_tensor``."""
    qmax = _qmax(bits)
    s = _bshape(scales, x.ndim, axis)
    safe = torch.where(s > 0, s, torch.ones_like(s))  # all-zero channel: x == 0 there, so q == 0
    return torch.round(x.float() / safe).clamp_(-qmax, qmax)


def _dequantize_float(q: torch.Tensor, scales: torch.Tensor, axis: int | None) -> torch.Tensor:
    """``q * scale`` in float32: the single formula both the encoder and the decoder use."""
    return q.float() * _bshape(scales.float(), q.ndim, axis)


@torch.no_grad()
def quantize_tensor(x: torch.Tensor, bits: int, axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x`` symmetrically.

    Returns:
        ``(symbols, scales)``: int32 symbols of ``x``'s shape in ``[-qmax, qmax]``, and ``compute_scales(x, bits,
        axis)``.

    Raises:
        ValueError: non-finite values, bad ``bits`` or ``axis``.
    """
    if not torch.is_floating_point(x):
        raise ValueError(f"quantize_tensor: expected a floating-point tensor, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("quantize_tensor: expected finite values, got NaN or inf")
    axis = normalize_axis(axis, x.ndim)
    scales = compute_scales(x, bits, axis)
    return _quantize_float(x.detach(), scales, bits, axis).to(torch.int32), scales


def dequantize_tensor(symbols: torch.Tensor, scales: torch.Tensor, axis: int | None) -> torch.Tensor:
    """``symbols * scales`` as a float32 tensor of the symbols' shape.

    Raises:
        ValueError: the number of scales does not match the channel count along ``axis`` (or 1 when None).
    """
    symbols = torch.as_tensor(symbols)
    scales = torch.as_tensor(scales).reshape(-1)
    axis = normalize_axis(axis, symbols.ndim)
    expected = 1 if axis is None else symbols.shape[axis]
    if scales.numel() != expected:
        raise ValueError(
            f"dequantize_tensor: expected {expected} scale(s) for shape {tuple(symbols.shape)} and axis {axis}, "
            f"got {scales.numel()}"
        )
    return _dequantize_float(symbols, scales.to(symbols.device), axis)


class FakeQuant(nn.Module):
    """Parametrization: fake quantization with a straight-through estimator and Quant-Noise.

    Scales are recomputed (detached) from the incoming tensor at every forward. In eval mode every element is
    replaced by its quantized value (equal, bit for bit, to ``dequantize_tensor(*quantize_tensor(x))``); in
    training mode a random ``quant_noise`` fraction of the elements is, the rest pass through unchanged. The
    gradient passes to the latent weight unchanged (identity) for every element.

    Args:
        bits: bits per symbol, 2..16.
        axis: channel axis (already normalised to >= 0), or None for one scale per tensor.
        quant_noise: training-mode fraction of quantized elements, in [0, 1].
    """

    def __init__(self, bits: int, axis: int | None, quant_noise: float = 1.0) -> None:
        super().__init__()
        _check_bits(bits, "FakeQuant: bits")
        _check_fraction(quant_noise, "FakeQuant: quant_noise")
        self.bits = bits
        self.axis = axis
        self.quant_noise = float(quant_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            scales = compute_scales(x, self.bits, self.axis)
            xq = _dequantize_float(_quantize_float(x, scales, self.bits, self.axis), scales, self.axis)
        ste = xq.to(x.dtype) + (x - x.detach())  # value xq exactly, gradient identity to x
        if self.training and self.quant_noise < 1.0:
            pick = torch.rand(x.shape, device=x.device) < self.quant_noise
            return torch.where(pick, ste, x)
        return ste

    def extra_repr(self) -> str:
        return f"bits={self.bits}, axis={self.axis}, quant_noise={self.quant_noise}"


def _select(
    model: nn.Module, config: QuantConfig, axis_fn: AxisFn | None, filter_fn: FilterFn | None
) -> list[tuple[str, nn.Module, str, torch.Tensor, int | None]]:
    out = []
    for full, module, param_name, param in named_tensors(model, filter_fn):
        axis = (axis_fn or default_axis)(full, param) if config.per_channel else None
        try:
            axis = normalize_axis(axis, param.ndim)
        except ValueError as e:
            raise ValueError(f"{full!r} (shape {tuple(param.shape)}): {e}") from None
        out.append((full, module, param_name, param, axis))
    return out


def quantize_(
    model: nn.Module, config: QuantConfig, axis_fn: AxisFn | None = None, filter_fn: FilterFn | None = None
) -> list[str]:
    """Register ``FakeQuant`` on the selected parameters of ``model`` (in place), for QAT.

    Stacks on top of existing parametrizations (a prune ``Mask``: masked entries stay exactly zero). Note that
    ``torch.nn.utils.parametrize`` adds a ``parametrizations`` child module: a container such as ``nn.Sequential``
    that owns a raw parameter itself would then try to run that child in its forward; keep raw parameters on
    ordinary modules (or exclude them with ``filter_fn``).

    Args:
        model: any module; modified in place.
        config: bits, per-channel or per-tensor, Quant-Noise fraction.
        axis_fn: ``axis_fn(full_name, param) -> int | None``, the channel axis; default ``default_axis``. Ignored
            (per tensor) when ``config.per_channel`` is False.
        filter_fn: ``filter_fn(module_name, module, param_name, param) -> bool``; default: every parameter
            (weights, biases and raw Parameters such as feature grids).

    Returns:
        The full names of the quantized tensors.

    Raises:
        ValueError: a selected tensor already has a FakeQuant, or a bad axis.
    """
    if not isinstance(config, QuantConfig):
        raise TypeError(f"quantize_: expected a QuantConfig, got {type(config).__name__}")
    selected = _select(model, config, axis_fn, filter_fn)
    for full, module, param_name, _, _ in selected:
        if find_parametrization(module, param_name, FakeQuant) is not None:
            raise ValueError(f"quantize_: {full!r} already has a FakeQuant; expected an unquantized tensor")
    for _, module, param_name, _, axis in selected:
        remember_param_order(module)
        parametrize.register_parametrization(module, param_name, FakeQuant(config.bits, axis, config.quant_noise))
    return [full for full, *_ in selected]


def _pre_quant_value(full: str, module: nn.Module, param_name: str) -> tuple[torch.Tensor, FakeQuant | None]:
    """The value a FakeQuant on this tensor sees (the parametrizations before it), or the current value."""
    found = find_parametrization(module, param_name, FakeQuant)
    if found is None:
        return getattr(module, param_name).detach(), None
    idx, fq = found
    try:
        return input_of(full, module, param_name, idx).detach(), fq
    except ValueError as e:
        raise ValueError(f"export_quantized: {e}") from None


@torch.no_grad()
def export_quantized(
    model: nn.Module, config: QuantConfig, axis_fn: AxisFn | None = None, filter_fn: FilterFn | None = None
) -> list[QuantizedTensor]:
    """Quantize the selected parameters' current values into ``QuantizedTensor``s (the model is not modified).

    Use the same ``config``, ``axis_fn`` and ``filter_fn`` as ``quantize_``. On a model with ``FakeQuant``
    parametrizations the values fed to the FakeQuant are quantized (so ``load_dequantized_`` reproduces the
    eval-mode forward exactly); otherwise the current (masked or baked) values.

    Raises:
        ValueError: a FakeQuant's bits or axis differ from ``config``/``axis_fn``, or non-finite values.
    """
    out: list[QuantizedTensor] = []
    for full, module, param_name, _, axis in _select(model, config, axis_fn, filter_fn):
        x, fq = _pre_quant_value(full, module, param_name)
        if fq is not None and (fq.bits, fq.axis) != (config.bits, axis):
            raise ValueError(
                f"export_quantized: {full!r}: expected bits={config.bits}, axis={axis} from the config, "
                f"got a FakeQuant with bits={fq.bits}, axis={fq.axis}"
            )
        try:
            symbols, scales = quantize_tensor(x, config.bits, axis)
        except ValueError as e:
            raise ValueError(f"export_quantized: {full!r}: {e}") from None
        out.append(
            QuantizedTensor(
                name=full,
                shape=tuple(x.shape),
                symbols=symbols.cpu().numpy(),
                scales=scales.cpu().to(torch.float16).numpy(),
                axis=axis,
                bits=config.bits,
            )
        )
    return out


@torch.no_grad()
def load_dequantized_(model: nn.Module, qtensors: list[QuantizedTensor]) -> None:
    """Set each named parameter of ``model`` to its dequantized value (in place; all checked before any write).

    Raises:
        LookupError: a name that is not a parameter of ``model`` (a parametrized tensor is not one: ``bake_``
            the model first).
        ValueError: shape, bits, symbol range or scale count mismatch.
    """
    params = dict(model.named_parameters(remove_duplicate=False))
    writes: list[tuple[torch.Tensor, torch.Tensor]] = []
    for qt in qtensors:
        if qt.name not in params:
            if any(parametrize.is_parametrized(m) for m in model.modules()):
                hint = " (the model has parametrizations: bake_ it first)"
            else:
                hint = ""
            raise LookupError(
                f"load_dequantized_: unknown parameter {qt.name!r}; expected one of {len(params)} parameters such as "
                f"{sorted(params)[:5]}{hint}"
            )
        param = params[qt.name]
        if tuple(param.shape) != tuple(qt.shape) or tuple(qt.symbols.shape) != tuple(qt.shape):
            raise ValueError(
                f"load_dequantized_: {qt.name!r}: expected shape {tuple(param.shape)}, got QuantizedTensor shape "
                f"{tuple(qt.shape)} with symbols {tuple(qt.symbols.shape)}"
            )
        _check_bits(qt.bits, f"load_dequantized_: {qt.name!r}: bits")
        qmax = _qmax(qt.bits)
        if qt.symbols.size and int(np.abs(qt.symbols.astype(np.int64)).max()) > qmax:
            raise ValueError(f"load_dequantized_: {qt.name!r}: expected symbols in [-{qmax}, {qmax}], got out of range")
        try:
            value = torch.from_numpy(qt.dequantize())
        except ValueError as e:
            raise ValueError(f"load_dequantized_: {qt.name!r}: {e}") from None
        writes.append((param, value))
    for param, value in writes:
        param.copy_(value.to(device=param.device, dtype=param.dtype))
