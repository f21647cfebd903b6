"""The quantizers the encoder can use, one registry entry each (``--quant NAME``).

An entry owns everything that differs between ways of quantizing: what entering each stage does to the model,
the training hooks, the export of the coded tensors, the file's side bits its rate controller needs, the
last-mile fit to a target size, and its defaults. The encoder holds no quantizer branch: it builds the entry
``QUANTIZERS.get(name)(settings, coding)`` and calls it.

* ``uniform``: magnitude pruning, then QAT at ``--bits`` everywhere (HiNeRV's pipeline).
* ``sbs``: per-layer widths (and optionally pruning) searched with SBS in the prune stage, frozen after.
* ``entropy``: learned steps and entropy models with the rate in the loss (NVRC-style), hard rounding in QAT.

Measurements behind the defaults: ``docs/results.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from bitstream.tensors import QuantizedTensor
from common.registry import Registry
from compress.entropy_quant import EntropyQuantConfig, export_entropy, hard_tensor_bits, rescale_steps_
from compress.entropy_rate import EntropyHook
from compress.hooks import TrainingHook
from compress.prune import FilterFn, PruneConfig, default_prune_filter, named_tensors, prune_
from compress.quantize import AxisFn, QuantConfig, export_quantized, quantize_
from compress.rate_control import fit_to_size
from compress.sbs import SBSConfig, export_sbs
from compress.sbs_rate import RATE_TERMS, SBSHook, rescale_v_, tensor_bits

__all__ = ["DEFAULT_QUANTIZER", "QUANTIZERS", "CodingContext", "QuantSettings", "Quantizer"]

DEFAULT_QUANTIZER = "entropy"  # measured best: README, "Rate-distortion training"
STEP_KINDS = ("tensor", "channel")


@dataclass(frozen=True)
class QuantSettings:
    """What the user chose about quantization (``hinerv encode`` flags); each quantizer reads what it uses."""

    bits: int = 6  # uniform: bits per weight; sbs: the width of tensors outside the search
    prune: float = 0.15  # uniform: fraction of weights pruned by magnitude (0: no prune stage)
    lam: float | None = None  # the rate weight λ; None: the quantizer's default
    steps: str = "tensor"  # entropy: one learned step per 'tensor' or per 'channel'; sbs: one clipping range v so
    sbs_rate: str = "linear"  # sbs: the rate term, 'linear' (λ·bpp) or 'log' (λ·log of the file's bits)
    sbs_prune: bool = False  # sbs: learn pruning gates (the 0-bit choice) in the search

    def __post_init__(self) -> None:
        QuantConfig(bits=self.bits)
        if not 0 <= self.prune < 1:
            raise ValueError(f"--prune must be in [0, 1), got {self.prune}")
        if self.lam is not None and not self.lam >= 0:
            raise ValueError(f"--lambda must be >= 0, got {self.lam}")
        if self.steps not in STEP_KINDS:
            raise ValueError(f"--steps must be tensor or channel, got {self.steps!r}")
        if self.sbs_rate not in RATE_TERMS:
            raise ValueError(f"--sbs-rate must be one of {', '.join(RATE_TERMS)}, got {self.sbs_rate!r}")
        if not isinstance(self.sbs_prune, bool):
            raise ValueError(f"--sbs-prune must be a bool, got {self.sbs_prune!r}")


# write(model, payload_bits=None) -> the file's bytes for the model as it is now. With payload_bits (one per
# tensor the quantizer exports) the file is laid out with a stand-in stream of those bits: the exact size of
# every other byte, for a rate estimate (bitstream.packed.encode_packed).
FileWriter = Callable[[nn.Module, "list[float] | None"], bytes]


@dataclass
class CodingContext:
    """What a quantizer needs to know of the encode: the clip's size, the target, the model's channel axes, and
    how to lay out the file."""

    pixels: int  # luma pixels of the clip (width × height × frames): bits / pixels is bpp
    target_bits: float | None  # the requested file size, or None
    axis_fn: AxisFn  # per-channel scales where they are cheap (inr.model.quant_axis)
    write: FileWriter
    claimed: Callable[[str, torch.Tensor], bool] | None = None  # tensors a plugin codes itself: left alone

    def only(self, base: FilterFn | None = None) -> FilterFn | None:
        """``base`` (None: every tensor) less the claimed tensors; None when nothing is claimed (no filter)."""
        claimed = self.claimed
        if claimed is None:
            return base

        def keep(module_name: str, module: nn.Module, param_name: str, param: torch.Tensor) -> bool:
            full = f"{module_name}.{param_name}" if module_name else param_name
            return not claimed(full, param) and (base is None or base(module_name, module, param_name, param))
        return keep


class Quantizer:
    """One way of quantizing: subclasses set ``default_lambda`` and override what differs."""

    name: ClassVar[str]
    default_lambda: ClassVar[float] = 0.0  # λ when --lambda is not given
    target_bits_per_param: ClassVar[float] = 3.5  # --preset auto with a target: a budget of this many bits each
    # a fixed model's file spends about this many bits per parameter at least and at most, side information
    # included (entropy: a 3,603-parameter model asked for 0.2 bpp landed at 14.6 bits each, issue #19)
    reachable: ClassVar[tuple[float, float]] = (0.75, 12.0)
    # a fixed model's target under this many bits per parameter is landed, but by zeroing much of the model, at a
    # steep loss of quality: ``hinerv encode`` says so before training (0: no such floor measured)
    collapse_below: ClassVar[float] = 0.0
    # seconds of a prune and of a QAT step per train step (--time-budget; measured on 16 frames of carphone,
    # preset m, one thread: uniform 1.2 / 2.7, entropy 2.3 / 2.9, sbs 8.5 / 3.1)
    stage_cost: ClassVar[tuple[float, float]] = (2.3, 2.9)
    # a prune stage that steers λ to a target size runs at least this many steps, however short the clip: the
    # multiplicative controller moves λ ~2% a step, and a 16-frame clip's 20% of 300 epochs (480 steps) ended 50%
    # over a low target (issue #19)
    min_steering_steps: ClassVar[int] = 1000
    # the prune stage's peak learning rate over --lr (the train stage's peak)
    prune_lr_ratio: ClassVar[float] = 1.0

    def __init__(self, settings: QuantSettings, coding: CodingContext) -> None:
        self.settings, self.coding = settings, coding

    @property
    def lam(self) -> float:
        return self.default_lambda if self.settings.lam is None else self.settings.lam

    def bits_per_param(self) -> float:
        """Bits per parameter the coded file spends about: ``--preset auto`` sizes the model for a target so."""
        return self.target_bits_per_param

    def reachable_bits_per_param(self) -> tuple[float, float]:
        """The file bits per model parameter this quantizer can land a target at (a fixed model size): targets
        outside are missed, and ``hinerv encode`` says so before training."""
        return self.reachable

    def prune_stage(self) -> bool:
        """Whether the prune stage has anything to do (else it runs no epochs)."""
        return True

    def steers_to_target(self) -> bool:
        """Whether training steers the rate to the target size (a controller on λ in the prune stage)."""
        return False

    def min_prune_steps(self) -> int:
        """The fewest steps the prune stage runs whatever the epochs: ``min_steering_steps`` when it steers the
        rate to a target, else none (the stage plan and ``--time-budget`` both hold to it)."""
        return self.min_steering_steps if self.steers_to_target() and self.prune_stage() else 0

    def hooks(self) -> list[TrainingHook]:
        """The hooks that quantize during training (built once per encode; their state is checkpointed)."""
        return []

    def export(self, model: nn.Module) -> list[QuantizedTensor]:
        """The quantized tensors to code, in ``model.named_parameters()`` order."""
        raise NotImplementedError

    def side_bits(self, model: nn.Module) -> float:
        """The file's bits besides the symbols' estimated payloads (for the rate controllers)."""
        return 0.0

    def estimated_bytes(self, model: nn.Module) -> int | None:
        """The file size rate-aware training estimates for the current weights, or None."""
        return None

    def fit_to_target(self, model: nn.Module, log: Callable[[str], None]) -> None:
        """After training: bring the file to the target (if any) as far as this quantizer can."""

    def _file_bytes(self, model: nn.Module) -> int:
        return len(self.coding.write(model, None))


QUANTIZERS: Registry[type[Quantizer]] = Registry("quantizer")


class PruneThenQuantize(TrainingHook):
    """What the uniform quantizer does on entering a stage: prune before the fine-tune, fake-quantize before QAT."""

    def __init__(self, prune: float, bits: int, coding: CodingContext) -> None:
        self.prune, self.bits, self.coding = prune, bits, coding

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        selected = self.coding.only(default_prune_filter)
        if stage == "prune" and self.prune > 0 and next(iter(named_tensors(model, selected)), None) is not None:
            prune_(model, PruneConfig(ratio=self.prune), selected)  # (plugins may have claimed every weight)
        elif stage == "qat":
            quantize_(model, QuantConfig(bits=self.bits), axis_fn=self.coding.axis_fn, filter_fn=self.coding.only())
        return model


@QUANTIZERS.register("uniform")
class Uniform(Quantizer):
    """--bits everywhere: magnitude pruning, then quantization-aware training."""

    # ~0.96 x --bits bits per parameter land in the file, side information included: a target picks the size
    coded_fraction: ClassVar[float] = 0.96
    stage_cost = (1.2, 2.7)

    def bits_per_param(self) -> float:
        return self.coded_fraction * self.settings.bits

    def reachable_bits_per_param(self) -> tuple[float, float]:
        """Uniform does not steer to a target: a fixed model lands at about ``bits_per_param`` (±15%)."""
        return 0.85 * self.bits_per_param(), 1.15 * self.bits_per_param()

    def prune_stage(self) -> bool:
        return self.settings.prune > 0

    def hooks(self) -> list[TrainingHook]:
        return [PruneThenQuantize(self.settings.prune, self.settings.bits, self.coding)]

    def export(self, model: nn.Module) -> list[QuantizedTensor]:
        return export_quantized(model, QuantConfig(bits=self.settings.bits), axis_fn=self.coding.axis_fn,
                                filter_fn=self.coding.only())

    def fit_to_target(self, model: nn.Module, log: Callable[[str], None]) -> None:
        if self.coding.target_bits is not None:
            log(f"target {self.coding.target_bits / 8:,.0f} bytes: uniform quantization only picks the model size "
                f"for it (with --preset auto); --quant entropy meets it within 2%, sbs from above")


def _last_mile(model: nn.Module, target_bits: float, size: Callable[[nn.Module], int],
               rescale: Callable[[nn.Module, float], None], grow: bool, log: Callable[[str], None]) -> tuple[float, int]:
    """Scale every step by one factor to land on the target; say so, and say when training missed it by far."""
    factor, size_now = fit_to_size(model, size, target_bits / 8, rescale, grow=grow)
    log(f"target {target_bits / 8:,.0f} bytes: steps scaled by {factor:.3f} -> {size_now:,} bytes")
    if not 0.5 <= factor <= 2:
        log(f"note: training missed the target by far; a {'smaller' if factor > 1 else 'larger'} --preset "
            f"would meet it with better quality")
    return factor, size_now


@QUANTIZERS.register("sbs")
class SBS(Quantizer):
    """Per-layer widths searched (SBS) in the prune stage, frozen for QAT; optionally pruning gates."""

    default_lambda = 5.0  # --sbs-rate linear: per bpp, as --quant entropy
    reachable = (0.75, 8.0)  # the search picks widths of 2, 4 or 8 bits (pruned: 0)
    stage_cost = (8.5, 3.1)
    log_lambda: ClassVar[float] = 0.1  # --sbs-rate log: of log(bits)
    target_start_lambda: ClassVar[float] = 1e-3  # with a target and no --lambda: where the controller starts
    target_max_lambda: ClassVar[dict[str, float]] = {"log": 0.3, "linear": 3.0}  # the most it may raise λ to,
    #                                                  in the log term's units (linear: converted at the target)

    @property
    def lam(self) -> float:
        if self.settings.lam is not None:
            return self.settings.lam
        return self.log_lambda if self.settings.sbs_rate == "log" else self.default_lambda

    def steers_to_target(self) -> bool:
        return self.coding.target_bits is not None

    def config(self) -> SBSConfig:
        return SBSConfig(v_per_channel=self.settings.steps == "channel", prune=self.settings.sbs_prune)

    def hooks(self) -> list[TrainingHook]:
        config, s, pixels = self.config(), self.settings, self.coding.pixels
        coded = config.rate == "coded"
        target = self.coding.target_bits
        # λ·log(R + S) and λ·bpp price a bit alike where λ_linear = λ_log / bpp: the target's bpp converts
        # the controller's start and cap
        per_log = 1.0 if s.sbs_rate == "log" or target is None else pixels / target
        # a target starts λ low and lets the controller raise it: a search that starts at a high λ closes
        # gates and prunes tensors early, and lands far below the target
        lam = self.target_start_lambda * per_log if target is not None and s.lam is None else self.lam
        return [SBSHook(config, lam=lam, stage="prune", target_bits=target,
                        lam_bounds=(1e-6, max(lam, self.target_max_lambda[s.sbs_rate] * per_log)),
                        axis_fn=self.coding.axis_fn, rate_after="qat" if coded else None,
                        filter_fn=self.coding.only(),
                        side_bits=self.side_bits if coded else None, term=s.sbs_rate,
                        unit=1.0 / pixels if s.sbs_rate == "linear" else 1.0)]

    def export(self, model: nn.Module) -> list[QuantizedTensor]:
        return export_sbs(model, fallback=QuantConfig(bits=self.settings.bits), axis_fn=self.coding.axis_fn,
                          filter_fn=self.coding.only())

    def side_bits(self, model: nn.Module) -> float:
        # the coder fits its own models: code the file, keep what the estimate lacks
        return 8.0 * self._file_bytes(model) - sum(tensor_bits(model))

    def fit_to_target(self, model: nn.Module, log: Callable[[str], None]) -> None:
        target = self.coding.target_bits
        if target is None:
            return
        # only shrinks: finer steps at the searched widths clip, and measured files got smaller, not larger
        factor, size = _last_mile(model, target, self._file_bytes, rescale_v_, False, log)
        if 0.5 <= factor <= 2 and size < 0.98 * target / 8:
            log(f"note: the file ends {100 * (1 - 8 * size / target):.0f}% under the target: the SBS search chose "
                f"narrower widths (or pruned more) than the target allows to grow back; a larger --preset or "
                f"--quant entropy would spend it")


@QUANTIZERS.register("entropy")
class Entropy(Quantizer):
    """Learned steps and entropy models with the rate in the loss (prune stage), hard rounding in QAT."""

    default_lambda = 5.0  # per bpp
    # the rate stage retrains the model under quantization noise: 4,000 steps kept more of the quality than the
    # 1,000 that land the target, and 2,000 (docs/results.md)
    min_steering_steps = 4000
    # ... and it is training more than fine-tuning: at twice the train stage's peak learning rate it ends higher
    # than at the same peak, and at 0.3x / 0.1x lower (docs/results.md)
    prune_lr_ratio = 2.0
    # carphone's 0.18 bpp (16 frames, 9.2 KB) with --params: PSNR-YUV 38.1 dB at 3.7 bits a parameter (--preset
    # auto), 37.4 at 3.0, 36.1 at 2.0, 33.6 at 1.8, 17.6 at 1.4 (docs/results.md)
    collapse_below = 2.0

    def steers_to_target(self) -> bool:
        return self.coding.target_bits is not None

    def hooks(self) -> list[TrainingHook]:
        # the rate term zeroes weights, so the prune stage prunes nothing by magnitude: it trains the rate
        return [EntropyHook(self.coding.pixels, lam=self.lam, attach_stage="prune", ste_stage="qat",
                            target_bits=self.coding.target_bits, side_bits=self.side_bits,
                            axis_fn=self.coding.axis_fn, filter_fn=self.coding.only(),
                            config=EntropyQuantConfig(per_channel=self.settings.steps == "channel"))]

    def export(self, model: nn.Module) -> list[QuantizedTensor]:
        return export_entropy(model)

    def side_bits(self, model: nn.Module) -> float:
        bits = hard_tensor_bits(model)
        return 8.0 * len(self.coding.write(model, bits)) - sum(bits)

    def estimated_bytes(self, model: nn.Module) -> int | None:
        return len(self.coding.write(model, hard_tensor_bits(model)))

    def fit_to_target(self, model: nn.Module, log: Callable[[str], None]) -> None:
        if self.coding.target_bits is not None:
            _last_mile(model, self.coding.target_bits, self._file_bytes, rescale_steps_, True, log)

