"""``hinerv encode``: load -> train -> prune -> quantize -> code -> write, then measure the written file."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from compress.hooks import HookContext, HookList
from compress.prune import PruneConfig, prune_
from compress.quantize import QuantConfig, export_quantized, quantize_
from compress.entropy_quant import EntropyQuantConfig, export_entropy, hard_tensor_bits, rescale_steps_
from compress.entropy_rate import EntropyHook, fit_to_size
from compress.sbs import SBSConfig, SBSHook, export_sbs
from compress.sbs_rate import RATE_TERMS as SBS_RATE_TERMS, rescale_v_, tensor_bits as sbs_tensor_bits  # --sbs-rate
from inr.kernels import KERNEL_MODES, resolve_kernels
from inr.model import HiNeRV, count_parameters, macs_per_pixel
from inr.presets import MIN_PARAMS, PRESETS, build_config

from . import distributed
from .bitstream_io import estimated_file_bytes, write_bitstream
from .checkpoint import Checkpointer, checkpoint_path, fingerprint
from .decoder import decode_file
from .fileio import atomic_write_bytes, check_writable
from .layout import PlaneLayout
from .train import StageSpec, TrainConfig, TrainingData, train_stage
from .video import Video, read_video


QUANTIZERS = ("uniform", "sbs", "entropy")
DEFAULT_LAMBDA = {"uniform": 0.0, "sbs": 0.1, "entropy": 5.0}  # --lambda when not given, per quantizer (sbs: with
#                                                                 --sbs-rate log; linear: SBS_LINEAR_LAMBDA)
SBS_TARGET_START_LAMBDA = 1e-3  # sbs with a target and no --lambda: where the controller starts
# ...and the most it may raise λ to, per rate term, in the log term's units (linear: converted at the target's bpp).
# log: 3x its default; uncapped, one search for an 11 KB target on carphone ran away to 1.2 KB at 17.4 dB. linear:
# at 0.3 the search for carphone's 4-bit size (no pruning gates) stopped at the cap 5% over the target, and the
# last-mile scaling of v (x1.3) left it at 30.29 dB; at 3.0 it settled at ~11.5 per bpp and met the target inside
# the search at 32.45 dB. A target below what the cap reaches is met by the last-mile scaling of v instead.
SBS_TARGET_MAX_LAMBDA = {"log": 0.3, "linear": 3.0}
SBS_LINEAR_LAMBDA = 5.0  # --sbs-rate linear: the default λ (per bpp, as --quant entropy). Carphone, preset s, 150
#                          epochs: 14,484 B at 32.97 dB; with --sbs-prune 6,950 B at 31.05 dB (log's default 0.1,
#                          with --sbs-prune: 6,582 B at 30.89 dB)
# EncodeOptions fields that say how, not what, to compute (float rounding only): left out of the resume fingerprint
# and of the sweep's record of what decided a point
RUNTIME_FIELDS = ("kernels",)
AUTO_PATCH_MAX_PIXELS = 256 * 256  # frames with larger output grids train on patches by default
# --preset auto with a target: a parameter budget the target gives ~this many bits each. tools/bench_rd.py
# (carphone, preset m): lambda 50 / 20 / 8 / 3 -> 1.6 / 2.9 / 4.3 / 5.4 bits per parameter; the middle trades best.
TARGET_BITS_PER_PARAM = 3.5
UNIFORM_CODED_FRACTION = 0.96  # --quant uniform writes ~0.96 x --bits bits per parameter (bench_rd: 8/6/4 bits ->
#                                7.72 / 5.79 / 3.81 with all side information): a target then picks the model size


@dataclass(frozen=True)
class EncodeOptions:
    """What a user can set on ``hinerv encode`` (explicit flags override the preset)."""

    preset: str = "auto"  # model size rung (inr.presets.PRESETS); 'auto': s, or from --target-* when given
    params: int | None = None  # explicit parameter budget (overrides the preset's)
    epochs: int = 300  # training epochs; prune fine-tune and QAT add 20% and 10%
    prune_epochs: int | None = None  # default round(0.2 * epochs)
    qat_epochs: int | None = None  # default round(0.1 * epochs)
    bits: int = 6  # bits per quantized weight
    prune: float = 0.15  # fraction of weights pruned (global magnitude); 0 disables the stage
    loss: str = "yuvlog"  # see codec.losses.LOSSES
    frames: int | None = None  # encode only the first N frames
    seed: int = 0
    lr: float = 1e-2  # measured on carphone (preset m, 40 epochs): 2e-3 32.5 dB, 5e-3 34.0, 1e-2 34.6, 2e-2 34.6
    batch_size: int = 2  # frames per step
    patch_size: int | None = None  # training patch side in grid pixels; 0 = whole frames; None = auto
    quant: str = "uniform"  # 'uniform' (--bits everywhere), 'sbs' (per-layer widths searched), 'entropy' (learned
    #                         steps and entropy models, the rate in the loss)
    lam: float | None = None  # rate weight; sbs: of bpp (default 5) or, --sbs-rate log, of log(bits) (default 0.1);
    #                           entropy: of bpp (default 5)
    target_bpp: float | None = None  # sbs/entropy: steer lambda to this rate; uniform: pick the model size for it
    target_size: int | None = None  # the same target in bytes (exclusive with target_bpp)
    steps: str = "tensor"  # entropy: one learned step per 'tensor' or per 'channel'. Carphone, 30 frames, preset s,
    #                        lambda 5 / 20: per channel +16% / +21% bytes at -0.01 / -0.04 dB (scales side info).
    #                        sbs: one clipping range v per tensor (the paper) or per channel
    sbs_rate: str = "linear"  # sbs: the rate term, 'linear' (λ·bpp) or 'log' (λ·log(R + S), the paper's). Carphone,
    #                           preset s, 3 seeds: linear landed 6 of 6 reachable targets within -1.0..+1.0%,
    #                           log 1 of 4 (3-28% under), at about the same quality (compress.sbs_rate.rate_term)
    sbs_prune: bool = False  # sbs: learn pruning gates (the 0-bit choice) in the search. Off: carphone, preset s,
    #                          150 epochs, 3 seeds, the search without them was better at the 4- and 6-bit files'
    #                          sizes (README); with them it prunes whole tensors at a λ far below the target's
    device: str = "auto"  # where training runs: 'auto' (CUDA when available), 'cpu' or 'cuda'
    bf16: bool = False  # run the forward pass under bf16 autocast (the loss stays fp32)
    kernels: str = "auto"  # 'auto' | 'triton' | 'torch' (inr.model.HiNeRV.set_kernels): how, not what, to compute;
    #                        not part of the resume fingerprint

    def __post_init__(self) -> None:
        if self.preset != "auto":
            PRESETS.get(self.preset)
        if self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if not 0 <= self.prune < 1:
            raise ValueError(f"--prune must be in [0, 1), got {self.prune}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"--frames must be at least 1, got {self.frames}")
        for name in ("prune_epochs", "qat_epochs"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        QuantConfig(bits=self.bits)
        if self.quant not in QUANTIZERS:
            raise ValueError(f"--quant must be one of {', '.join(QUANTIZERS)}, got {self.quant!r}")
        if self.lam is not None and not self.lam >= 0:
            raise ValueError(f"--lambda must be >= 0, got {self.lam}")
        if self.target_bpp is not None and not self.target_bpp > 0:
            raise ValueError(f"--target-bpp must be > 0, got {self.target_bpp}")
        if self.target_size is not None and not self.target_size > 0:
            raise ValueError(f"--target-size must be > 0 bytes, got {self.target_size}")
        if self.target_bpp is not None and self.target_size is not None:
            raise ValueError("give --target-bpp or --target-size, not both")
        if self.sbs_rate not in SBS_RATE_TERMS:
            raise ValueError(f"--sbs-rate must be one of {', '.join(SBS_RATE_TERMS)}, got {self.sbs_rate!r}")
        if not isinstance(self.sbs_prune, bool):
            raise ValueError(f"--sbs-prune must be a bool, got {self.sbs_prune!r}")
        if self.steps not in ("tensor", "channel"):
            raise ValueError(f"--steps must be tensor or channel, got {self.steps!r}")
        if self.device not in distributed.DEVICES:
            raise ValueError(f"--device must be one of {', '.join(distributed.DEVICES)}, got {self.device!r}")
        if self.kernels not in KERNEL_MODES:
            raise ValueError(f"--kernels must be one of {', '.join(KERNEL_MODES)}, got {self.kernels!r}")
        TrainConfig(batch_size=self.batch_size, patch_size=self.patch_size or 0, loss=self.loss, seed=self.seed)

    def result_fields(self) -> dict[str, Any]:
        """The options that decide the result (what a resumed encode must share): all but ``RUNTIME_FIELDS``."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUNTIME_FIELDS}

    def resolved_patch_size(self, grid_size: tuple[int, int]) -> int:
        """Whole frames while a frame is small (cheap, no overlap), HiNeRV's 120x120 patches above that."""
        if self.patch_size is not None:
            return self.patch_size
        return 0 if grid_size[0] * grid_size[1] <= AUTO_PATCH_MAX_PIXELS else 120

    def stages(self) -> list[StageSpec]:
        """train -> prune (fine-tune after magnitude pruning, the SBS search, or the entropy rate stage) -> qat."""
        prune_epochs = round(0.2 * self.epochs) if self.prune_epochs is None else self.prune_epochs
        qat_epochs = max(1, round(0.1 * self.epochs)) if self.qat_epochs is None else self.qat_epochs
        if self.quant == "uniform" and self.prune == 0:
            prune_epochs = 0
        return [StageSpec("train", self.epochs, self.lr),
                StageSpec("prune", prune_epochs, self.lr),
                StageSpec("qat", qat_epochs, self.lr * 0.1)]

    @property
    def rate_weight(self) -> float:
        """--lambda, or the quantizer's default."""
        if self.lam is not None:
            return self.lam
        return SBS_LINEAR_LAMBDA if self.quant == "sbs" and self.sbs_rate == "linear" else DEFAULT_LAMBDA[self.quant]

    def target_bits(self, pixels: int) -> float | None:
        """The requested file size in bits, or None."""
        if self.target_size is not None:
            return 8.0 * self.target_size
        return None if self.target_bpp is None else self.target_bpp * pixels

    def quantizer_hooks(self, pixels: int, side_bits=None) -> list:
        """The plugins the quantizer needs: SBS searches widths in the prune stage and freezes them after;
        entropy learns steps and entropy models with the rate in the loss in the prune stage (noise proxy, no
        magnitude pruning: the rate term zeroes weights) and rounds hard in the QAT stage.

        ``side_bits(model)``: the file's bits besides the symbols' payloads (the entropy and SBS controllers).
        """
        if self.quant == "sbs":
            config = SBSConfig(v_per_channel=self.steps == "channel", prune=self.sbs_prune)
            coded = config.rate == "coded"
            target = self.target_bits(pixels)
            # λ·log(R + S) and λ·bpp price a bit alike where λ_linear = λ_log / bpp: the target's bpp converts
            # the controller's start and cap
            per_log = 1.0 if self.sbs_rate == "log" or target is None else pixels / target
            # a target starts λ low and lets the controller raise it: a search that starts at a high λ closes
            # gates and prunes tensors early, and lands far below the target
            start = SBS_TARGET_START_LAMBDA * per_log
            lam = start if target is not None and self.lam is None else self.rate_weight
            return [SBSHook(config, lam=lam, stage="prune", target_bits=target,
                            lam_bounds=(1e-6, max(lam, SBS_TARGET_MAX_LAMBDA[self.sbs_rate] * per_log)),
                            axis_fn=quant_axis, rate_after="qat" if coded else None,
                            side_bits=side_bits if coded else None, term=self.sbs_rate,
                            unit=1.0 / pixels if self.sbs_rate == "linear" else 1.0)]
        if self.quant == "entropy":
            return [EntropyHook(pixels, lam=self.rate_weight, attach_stage="prune", ste_stage="qat",
                                target_bits=self.target_bits(pixels), side_bits=side_bits, axis_fn=quant_axis,
                                config=EntropyQuantConfig(per_channel=self.steps == "channel"))]
        return []


@dataclass
class EncodeReport:
    """What an encode achieved, measured on the decoded output of the written file."""

    input: str
    output: str
    bytes: int
    bpp: float
    psnr_y: float
    psnr_u: float | None
    psnr_v: float | None
    psnr_yuv: float
    psnr_rgb: float | None
    ms_ssim: float | None
    params: int
    macs_per_pixel: float  # multiply-accumulates per luma pixel to render a frame
    frames: int
    width: int
    height: int
    encode_seconds: float
    decode_seconds: float
    options: dict[str, Any]
    estimated_bytes: int | None = None  # entropy: the file size rate-aware training estimated for these weights

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def quant_axis(name: str, param: torch.Tensor) -> int | None:
    """Per-channel scales where they are cheap: output channels of layers, channels of the base grid."""
    if name.startswith("grid."):
        return param.ndim - 1
    if ".encoding.grids." in name or param.ndim < 2:
        return None
    return 0


def resolve_model_size(options: EncodeOptions, pixels: int) -> tuple[str, int | None]:
    """(preset, parameter budget or None) to build: as given; for ``--preset auto`` with a target, the budget at
    which the target gives ``TARGET_BITS_PER_PARAM`` bits per parameter (uniform: what ``--bits`` codes to);
    else preset 's'."""
    target = options.target_bits(pixels)
    if options.preset != "auto" or options.params is not None or target is None:
        return ("s" if options.preset == "auto" else options.preset), options.params
    per_param = UNIFORM_CODED_FRACTION * options.bits if options.quant == "uniform" else TARGET_BITS_PER_PARAM
    return "auto", max(MIN_PARAMS, int(target / per_param))


def apply_stage_transform(model: HiNeRV, stage: str, options: EncodeOptions, hooks: HookList) -> HiNeRV:
    """What entering a stage does to the model: prune before fine-tuning, fake-quantize before QAT.

    With ``--quant sbs`` the SBS plugin does both (its pruning gates are the 0-bit choice).
    """
    if options.quant == "uniform":
        if stage == "prune" and options.prune > 0:
            prune_(model, PruneConfig(ratio=options.prune))
        elif stage == "qat":
            quantize_(model, QuantConfig(bits=options.bits), axis_fn=quant_axis)
    return hooks.transform_model(stage, model)


def export(model: HiNeRV, options: EncodeOptions) -> list:
    """The quantized tensors to code, in ``model.named_parameters()`` order."""
    if options.quant == "entropy":
        return export_entropy(model)
    if options.quant == "sbs":
        return export_sbs(model, fallback=QuantConfig(bits=options.bits), axis_fn=quant_axis)
    return export_quantized(model, QuantConfig(bits=options.bits), axis_fn=quant_axis)


def encode(input_path: str | Path, output_path: str | Path, options: EncodeOptions, resume: bool = False,
           progress: bool = True, hooks: HookList | None = None, log=print,
           checkpoint_interval: float = 20.0) -> EncodeReport | None:
    """Encode ``input_path`` into the bitstream ``output_path`` and report what the written file decodes to.

    Under ``torchrun`` every rank trains on its slice of each batch (``codec.distributed``); rank 0 alone
    writes the checkpoints, the bitstream and the report, and the other ranks return None once the bitstream
    is written (not waiting for the measurement, which may outlast a collective's timeout on long videos).

    Args:
        resume: continue from ``OUTPUT.ckpt`` if an interrupted encode of the same input and options left one.
        hooks: compression plugins attached to training.
        checkpoint_interval: minimum seconds between checkpoints (one is always written at each stage end).
    """
    dist = distributed.from_env()
    device = distributed.resolve_device(options.device, dist)
    with distributed.process_group(dist, device) as dist:
        return _encode(input_path, output_path, options, resume, progress, hooks,
                       log if distributed.is_main(dist) else (lambda *_: None), checkpoint_interval, dist, device)


def _encode(input_path, output_path, options: EncodeOptions, resume: bool, progress: bool, hooks: HookList | None,
            log, checkpoint_interval: float, dist: distributed.DistContext | None,
            device: torch.device) -> EncodeReport | None:
    """``encode`` as one rank: the report on rank 0 (or a single process), None on the others."""
    start = time.monotonic()
    check_writable(output_path)  # a read-only or missing output folder fails before training, not after
    video = read_video(input_path, frames=options.frames)  # load
    pixels = video.format.width * video.format.height * video.num_frames
    layout = PlaneLayout.for_format(video.format)
    grid = layout.planes_to_grid(video.planes)
    preset, budget = resolve_model_size(options, pixels)
    config = build_config(*layout.grid_size, video.num_frames, layout.channels, preset if budget is None else "s",
                          budget)

    def bitstream(model: HiNeRV) -> bytes:
        return write_bitstream(video.format, video.num_frames, config, export(model, options))

    def file_bytes_estimate(model: HiNeRV, payload_bits: list[float] | None = None) -> int:
        """entropy: the file size rate-aware training estimates for the current weights."""
        bits = hard_tensor_bits(model) if payload_bits is None else payload_bits
        return estimated_file_bytes(video.format, video.num_frames, config, export(model, options), bits)

    def side_bits(model: HiNeRV) -> float:
        """The file's bits besides the symbols' estimated payloads (for the rate controllers)."""
        if options.quant == "sbs":  # the coder fits its own models: code the file, keep what the estimate lacks
            return 8.0 * len(bitstream(model)) - sum(sbs_tensor_bits(model))
        bits = hard_tensor_bits(model)
        return 8.0 * file_bytes_estimate(model, bits) - sum(bits)

    option_hooks = HookList(options.quantizer_hooks(pixels, side_bits))  # plugins the options imply: checkpointed
    hooks = HookList(list(option_hooks) + list(hooks or []))
    torch.manual_seed(options.seed)
    resolve_kernels(options.kernels, device)  # refuses 'triton' where it cannot run, before any training
    model = HiNeRV(config).to(device)  # initialised on the CPU: the same weights on every device and rank
    model.set_kernels(options.kernels)
    params = count_parameters(model)
    log(f"{video.format.width}x{video.format.height} {video.format.chroma} {video.format.bit_depth}-bit, "
        f"{video.num_frames} frames -> HiNeRV {preset if options.params is None else 'custom'}: "
        f"{params:,} parameters, strides {config.strides}, widths {config.channels}")
    patch = options.resolved_patch_size(layout.grid_size)
    train_cfg = TrainConfig(options.batch_size, patch, loss=options.loss, seed=options.seed)
    data = TrainingData(grid, video.format.max_value, layout, options.batch_size, patch, device)
    ckpt = Checkpointer(checkpoint_path(output_path), fingerprint(options.result_fields(), grid),
                        checkpoint_interval)
    model, elapsed_before = run_stages(model, data, options, train_cfg, hooks, option_hooks, ckpt, resume,
                                       progress, log, dist)  # train -> prune -> quantization-aware training
    if not distributed.is_main(dist):
        distributed.barrier(dist)  # until rank 0 has written the file
        return None
    model.cpu().eval()
    if options.quant in ("entropy", "sbs") and (target := options.target_bits(pixels)) is not None:
        entropy = options.quant == "entropy"  # sbs: only shrinks (finer steps at its widths clip)
        factor, size = fit_to_size(model, lambda m: len(bitstream(m)), target / 8,
                                   rescale=rescale_steps_ if entropy else rescale_v_, grow=entropy)  # last mile
        log(f"target {target / 8:,.0f} bytes: steps scaled by {factor:.3f} -> {size:,} bytes")
        if not 0.5 <= factor <= 2:
            log(f"note: training missed the target by far; a {'smaller' if factor > 1 else 'larger'} --preset "
                f"would meet it with better quality")
        elif not entropy and size < 0.98 * target / 8:
            log(f"note: the file ends {100 * (1 - 8 * size / target):.0f}% under the target: the SBS search chose "
                f"narrower widths (or pruned more) than the target allows to grow back; a larger --preset or "
                f"--quant entropy would spend it")
    elif options.quant == "uniform" and (target := options.target_bits(pixels)) is not None:
        log(f"target {target / 8:,.0f} bytes: uniform quantization only picks the model size for it (with --preset auto); "
            f"--quant entropy meets it within 2%, sbs from above")
    estimate = file_bytes_estimate(model) if options.quant == "entropy" else None
    data_bytes = bitstream(model)  # quantize, code
    atomic_write_bytes(output_path, data_bytes)  # write
    distributed.barrier(dist)
    encode_seconds = elapsed_before + time.monotonic() - start
    ckpt.remove()
    report = measure(video, input_path, output_path, params, config, encode_seconds, options)
    report.estimated_bytes = estimate
    return report


def run_stages(model: HiNeRV, data: TrainingData, options: EncodeOptions, train_cfg: TrainConfig,
               hooks: HookList, option_hooks: HookList, ckpt: Checkpointer, resume: bool, progress: bool,
               log, dist: distributed.DistContext | None = None) -> tuple[HiNeRV, float]:
    """Run the stages (from a checkpoint when resuming); returns the model and the seconds spent before resume."""
    start = time.monotonic()
    stages = options.stages()
    first_stage, first_epoch, opt_state, elapsed_before = 0, 0, None, 0.0
    if resume and (saved := ckpt.load()) is not None:
        first_stage, first_epoch, opt_state, elapsed_before = saved.stage, saved.epoch, saved.optimizer, saved.elapsed
        for k in range(first_stage + 1):
            model = apply_stage_transform(model, stages[k].name, options, hooks)
        model.load_state_dict(saved.model)
        option_hooks.load_state_dict(saved.hooks)
        log(f"resuming at stage '{stages[first_stage].name}', epoch {first_epoch}/{stages[first_stage].epochs}")
    for k in range(first_stage, len(stages)):
        spec = stages[k]
        resuming = k == first_stage and first_epoch > 0
        if not resuming:
            model = apply_stage_transform(model, spec.name, options, hooks)
        ctx = HookContext(stage=spec.name, step=0, total_steps=0, epoch=0, extras={})
        hooks.on_stage_start(spec.name, model, ctx)

        def on_epoch_end(epoch: int, optimizer: torch.optim.Optimizer, k: int = k, spec: StageSpec = spec) -> None:
            if not distributed.is_main(dist):
                return
            elapsed = elapsed_before + time.monotonic() - start
            ckpt.save(k, epoch, model, optimizer, elapsed, option_hooks.state_dict(), force=epoch == spec.epochs)

        train_stage(model, data, spec, train_cfg, k, hooks, start_epoch=first_epoch if resuming else 0,
                    optimizer_state=opt_state if resuming else None, on_epoch_end=on_epoch_end,
                    progress=progress, autocast_dtype=torch.bfloat16 if options.bf16 else None, dist=dist)
        hooks.on_stage_end(spec.name, model, ctx)
    return model, elapsed_before


def measure(video: Video, input_path, output_path, params, config, encode_seconds, options) -> EncodeReport:
    """Decode the file as written and score it against the source."""
    from eval.metrics import evaluate

    t0 = time.monotonic()
    decoded = decode_file(output_path)
    decode_seconds = time.monotonic() - t0
    m = evaluate(video, decoded)
    size = Path(output_path).stat().st_size
    fmt = video.format
    return EncodeReport(
        input=str(input_path), output=str(output_path), bytes=size,
        bpp=size * 8 / (fmt.width * fmt.height * video.num_frames),
        psnr_y=m.psnr_y, psnr_u=m.psnr_u, psnr_v=m.psnr_v, psnr_yuv=m.psnr_yuv, psnr_rgb=m.psnr_rgb,
        ms_ssim=m.ms_ssim, params=params, frames=video.num_frames,
        macs_per_pixel=macs_per_pixel(config) * config.height * config.width / (fmt.width * fmt.height),
        width=fmt.width, height=fmt.height, encode_seconds=encode_seconds, decode_seconds=decode_seconds,
        options=dataclasses.asdict(options))
