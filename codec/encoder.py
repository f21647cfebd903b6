"""``hinerv encode``: load -> train -> prune -> quantize -> code -> write.

The quantizer (``--quant``, ``compress.quantizers``) and the plugins (``--plugin``, ``compress.hooks``) bring
every way of compressing; this module only runs the straight line. Measuring what the file decodes to is the
caller's (``eval.measure``).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

import compress.plugins  # noqa: F401  (registers the plugins)
from compress.hooks import PLUGINS, HookList, Observers, Plugin, TrainingHook
from compress.plugin_spec import PluginSpec, parse_plugin
from compress.quantizers import DEFAULT_QUANTIZER, QUANTIZERS, CodingContext, Quantizer, QuantSettings
from inr.kernels import KERNEL_MODES, resolve_kernels
from inr.model import HiNeRV, count_parameters, quant_axis
from inr.presets import MIN_PARAMS, PRESETS, WidthLadder, build_config, model_budget

from . import distributed
from .bitstream_io import PluginRecord, write_bitstream
from .budget import epochs_for_budget, time_train_step
from .checkpoint import Checkpointer, checkpoint_path, fingerprint
from .decoder import model_on_meta
from .fileio import atomic_write_bytes, check_writable
from .info import measured_macs_per_pixel
from .layout import PlaneLayout
from .motion import MOTION_MODES, choose_motion
from .teacher import TeacherSettings, TeacherStore, provide_teachers
from .train import StageSpec, TrainConfig, TrainingData, run_stages
from .video import read_video

# EncodeOptions fields that say how, not what, to compute (float rounding only): left out of the resume fingerprint
# and of the sweep's record of what decided a point
RUNTIME_FIELDS = ("kernels", "teacher_cache")
LUMA_STAGE_CHOICES = {"auto": None, "on": True, "off": False}  # --luma-stage -> inr.presets.build_config's luma
AUTO_PATCH_MAX_PIXELS = 256 * 256  # frames with larger output grids train on patches by default


@dataclass(frozen=True)
class EncodeOptions:
    """What a user can set on ``hinerv encode`` (explicit flags override the preset). Why each default is what it
    is: ``docs/results.md``."""

    preset: str = "auto"  # model size rung (inr.presets.PRESETS); 'auto': s, or from --target-* when given
    params: int | None = None  # explicit parameter budget (overrides the preset's)
    epochs: int = 300  # training epochs; prune fine-tune and QAT add 20% and 10%
    prune_epochs: int | None = None  # None: round(0.2 * epochs), at least min_prune_steps(); else exactly
    qat_epochs: int | None = None  # default round(0.1 * epochs)
    width_ratio: float | None = None  # each stage's width over the previous one's; None: by the budget
    #                                   (inr.presets.width_ratio: 0.85 at 3,000-200,000 parameters, else 0.5)
    min_width: int = 4  # no stage narrower than this
    luma_stage: str = "auto"  # a full-resolution luma stage (4:2:0): 'on', 'off', 'auto' (inr.presets.luma_stage)
    motion: str = "auto"  # global motion (codec.motion.choose_motion): frames rendered as windows of a canvas
    bits: int = 6  # bits per quantized weight (uniform; sbs: outside the search)
    prune: float = 0.15  # fraction of weights pruned (global magnitude, uniform); 0 disables the stage
    loss: str = "yuvlog"  # see codec.losses.LOSSES
    frames: int | None = None  # encode only the first N frames
    seed: int = 0
    lr: float = 1e-2  # peak learning rate
    batch_size: int = 2  # frames per step
    patch_size: int | None = None  # training patch side in grid pixels; 0 = whole frames; None = auto
    quant: str = DEFAULT_QUANTIZER  # a name in compress.quantizers.QUANTIZERS
    lam: float | None = None  # rate weight λ (sbs, entropy); None: the quantizer's default
    target_bpp: float | None = None  # sbs/entropy: steer λ to this rate; uniform: pick the model size for it
    target_size: int | None = None  # the same target in bytes (exclusive with target_bpp)
    steps: str = "tensor"  # entropy: one learned step per 'tensor' or per 'channel'; sbs: one clipping range v so
    sbs_rate: str = "linear"  # sbs: the rate term, 'linear' (λ·bpp) or 'log' (λ·log(R + S), the paper's)
    sbs_prune: bool = False  # sbs: learn pruning gates (the 0-bit choice) in the search
    plugins: tuple[str, ...] = ()  # --plugin specs, NAME[:key=value,...]; stored canonical (defaults filled in)
    device: str = "auto"  # where training runs: 'auto' (CUDA when available), 'cpu' or 'cuda'
    bf16: bool = False  # run the forward pass under bf16 autocast (the loss stays fp32)
    kernels: str = "auto"  # 'auto' | 'triton' | 'torch' (inr.model.HiNeRV.set_kernels): how, not what, to compute;
    #                        not part of the resume fingerprint
    time_budget: float | None = None  # minutes: the epochs are those that fit (codec.budget); --epochs is ignored
    teacher_cache: str | None = None  # folder keeping the teachers plugins ask for, for reuse (codec.teacher);
    #                                   where, not what: not part of the resume fingerprint

    def __post_init__(self) -> None:
        if self.preset != "auto":
            PRESETS.get(self.preset)
        if self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"--frames must be at least 1, got {self.frames}")
        for name, label in (("prune_epochs", "--prune-epochs"), ("qat_epochs", "qat_epochs")):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{label} must be >= 0, got {v}")
        if self.quant not in QUANTIZERS:
            raise ValueError(f"--quant must be one of {', '.join(QUANTIZERS.names())}, got {self.quant!r}")
        self.quant_settings()  # validates --bits, --prune, --lambda, --steps, --sbs-rate, --sbs-prune
        if self.target_bpp is not None and not self.target_bpp > 0:
            raise ValueError(f"--target-bpp must be > 0, got {self.target_bpp}")
        if self.target_size is not None and not self.target_size > 0:
            raise ValueError(f"--target-size must be > 0 bytes, got {self.target_size}")
        if self.target_bpp is not None and self.target_size is not None:
            raise ValueError("give --target-bpp or --target-size, not both")
        if self.device not in distributed.DEVICES:
            raise ValueError(f"--device must be one of {', '.join(distributed.DEVICES)}, got {self.device!r}")
        if self.kernels not in KERNEL_MODES:
            raise ValueError(f"--kernels must be one of {', '.join(KERNEL_MODES)}, got {self.kernels!r}")
        self.ladder()  # validates --width-ratio, --min-width
        if self.luma_stage not in LUMA_STAGE_CHOICES:
            raise ValueError(f"--luma-stage must be one of {', '.join(LUMA_STAGE_CHOICES)}, got {self.luma_stage!r}")
        if self.motion not in MOTION_MODES:
            raise ValueError(f"--motion must be one of {', '.join(MOTION_MODES)}, got {self.motion!r}")
        TrainConfig(batch_size=self.batch_size, patch_size=self.patch_size or 0, loss=self.loss, seed=self.seed)
        if self.time_budget is not None:
            if not self.time_budget > 0:
                raise ValueError(f"--time-budget must be > 0 minutes, got {self.time_budget}")
            if self.prune_epochs is not None or self.qat_epochs is not None:
                raise ValueError("--time-budget picks the prune and QAT epochs too: give --time-budget or "
                                 "--prune-epochs, not both")
        if self.teacher_cache is not None and Path(self.teacher_cache).exists() \
                and not Path(self.teacher_cache).is_dir():
            raise ValueError(f"--teacher-cache {self.teacher_cache} is not a folder")
        if isinstance(self.plugins, str):
            raise TypeError("plugins: expected a sequence of NAME[:key=value,...] specs, got one string")
        # canonical specs: the same plugin written two ways is one fingerprint, one file
        object.__setattr__(self, "plugins", tuple(spec.canonical() for spec in self.plugin_specs()))

    def ladder(self) -> WidthLadder:
        return WidthLadder(self.width_ratio, self.min_width)

    def luma(self) -> bool | None:
        """``build_config``'s luma argument: None lets the budget decide."""
        return LUMA_STAGE_CHOICES[self.luma_stage]

    def plugin_specs(self) -> list[PluginSpec]:
        """The --plugin specs, parsed and typed (LookupError/ValueError on an unknown name, key or bad value)."""
        return [parse_plugin(text) for text in self.plugins]

    def quant_settings(self) -> QuantSettings:
        return QuantSettings(bits=self.bits, prune=self.prune, lam=self.lam, steps=self.steps,
                             sbs_rate=self.sbs_rate, sbs_prune=self.sbs_prune)

    def result_fields(self) -> dict[str, Any]:
        """The options that decide the result (what a resumed encode must share): all but ``RUNTIME_FIELDS``."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUNTIME_FIELDS}

    def resolved_patch_size(self, grid_size: tuple[int, int]) -> int:
        """Whole frames while a frame is small (cheap, no overlap), HiNeRV's 120x120 patches above that."""
        if self.patch_size is not None:
            return self.patch_size
        return 0 if grid_size[0] * grid_size[1] <= AUTO_PATCH_MAX_PIXELS else 120

    def stages(self, quantizer: Quantizer, steps_per_epoch: int = 1) -> list[StageSpec]:
        """train -> prune (the quantizer's: fine-tune after pruning, the SBS search, the rate stage) -> qat.

        By default the prune stage is 20% of the epochs, and at least the quantizer's ``min_prune_steps()`` (a
        floor when it steers the rate to a target: short clips have few steps an epoch); its peak learning rate
        is ``--lr`` times the quantizer's ``prune_lr_ratio``, the QAT stage's a tenth of ``--lr``."""
        prune_epochs = self.prune_epochs
        if prune_epochs is None:
            prune_epochs = max(round(0.2 * self.epochs), -(-quantizer.min_prune_steps() // steps_per_epoch))
        qat_epochs = max(1, round(0.1 * self.epochs)) if self.qat_epochs is None else self.qat_epochs
        return [StageSpec("train", self.epochs, self.lr),
                StageSpec("prune", prune_epochs if quantizer.prune_stage() else 0,
                          self.lr * quantizer.prune_lr_ratio),
                StageSpec("qat", qat_epochs, self.lr * 0.1)]

    def target_bits(self, pixels: int) -> float | None:
        """The requested file size in bits, or None."""
        if self.target_size is not None:
            return 8.0 * self.target_size
        return None if self.target_bpp is None else self.target_bpp * pixels


@dataclass
class EncodeResult:
    """What an encode wrote (measure what it decodes to with ``eval.measure.measure``)."""

    input: str
    output: str
    bytes: int  # the size of the written file
    frames: int
    width: int
    height: int
    params: int  # of the model as the file rebuilds it (plugins' modules included: low-rank factors count so)
    macs_per_pixel: float  # multiply-accumulates per luma pixel to render a frame, counted on that model
    encode_seconds: float
    options: dict[str, Any]
    encode_cpu_seconds: float = 0.0  # CPU time of this process's encode, all threads, teachers apart
    estimated_bytes: int | None = None  # the file size rate-aware training estimated for these weights
    plugins: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # each plugin's summary
    teacher_seconds: float = 0.0  # training (or reading) the plugins' teachers: not in encode_seconds
    teachers: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # codec.teacher.TeacherReport each
    notes: list[str] = dataclasses.field(default_factory=list)  # the encoder's warnings (e.g. an unreachable target)

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / (self.width * self.height * self.frames)


def resolve_model_size(options: EncodeOptions, pixels: int, bits_per_param: float) -> tuple[str, int | None]:
    """(preset, parameter budget or None) to build: as given; for ``--preset auto`` with a target, the budget at
    which the target gives the quantizer's ``bits_per_param``; else preset 's'."""
    target = options.target_bits(pixels)
    if options.preset != "auto" or options.params is not None or target is None:
        return ("s" if options.preset == "auto" else options.preset), options.params
    return "auto", max(MIN_PARAMS, int(target / bits_per_param))


def target_note(options: EncodeOptions, pixels: int, params: int, reachable: tuple[float, float],
                collapse_below: float = 0.0) -> str | None:
    """One line when a fixed model size (a preset or --params) cannot meet the target: the file would land far
    from it, whatever training does, or land it only by zeroing much of the model (under ``collapse_below`` bits
    a parameter); None when it can (or there is no target, or --preset auto sizes for it)."""
    target = options.target_bits(pixels)
    if target is None or (options.preset == "auto" and options.params is None):
        return None
    low, high = reachable
    per_param = target / params
    size = f"--params {options.params:,}" if options.params is not None else f"--preset {options.preset}"
    head = f"the target ({target / 8:,.0f} bytes, {per_param:.1f} bits a parameter)"
    if not low <= per_param <= high:
        bound = high if per_param > high else low
        return (f"{head} is out of reach of {size} ({params:,} parameters): --quant {options.quant} lands near "
                f"{bound * params / 8:,.0f} bytes at {'most' if per_param > high else 'least'}; --preset auto "
                f"sizes the model for the target")
    if per_param < collapse_below:
        return (f"{head} is too small for {size} ({params:,} parameters): under {collapse_below:g} bits a "
                f"parameter --quant {options.quant} lands it by zeroing much of the model, at a steep loss of "
                f"quality; --preset auto sizes the model for the target")
    return None


def budget_epochs(options: EncodeOptions, quantizer: Quantizer, model: HiNeRV, data: TrainingData,
                  train_cfg: TrainConfig, ckpt: Checkpointer, resume: bool, log) -> int:
    """--time-budget's epochs: those of the checkpoint's plan when resuming, else from a timing of a train step."""
    saved = ckpt.load() if resume else None
    if saved is not None and "epochs" in saved.plan:
        return int(saved.plan["epochs"])
    step = time_train_step(model, data, train_cfg)
    epochs = epochs_for_budget(60 * options.time_budget, step, data.steps_per_epoch, *quantizer.stage_cost,
                               min_prune_steps=quantizer.min_prune_steps())
    log(f"--time-budget {options.time_budget:g} min: {epochs} epochs ({1000 * step:.0f} ms a train step, "
        f"{data.steps_per_epoch} steps an epoch)")
    return epochs


def encode(input_path: str | Path, output_path: str | Path, options: EncodeOptions, resume: bool = False,
           progress: bool = True, observers: Iterable[TrainingHook] = (), log=print,
           checkpoint_interval: float = 20.0) -> EncodeResult | None:
    """Encode ``input_path`` into the bitstream ``output_path``.

    Under ``torchrun`` every rank trains on its slice of each batch (``codec.distributed``); rank 0 alone
    writes the checkpoints and the bitstream, and returns the result; the other ranks return None once the
    bitstream is written.

    Args:
        resume: continue from ``OUTPUT.ckpt`` if an interrupted encode of the same input and options left one.
        observers: hooks that watch training and change nothing (``compress.hooks.Observers``); methods that
            change the result are plugins, named in ``options.plugins``.
        checkpoint_interval: minimum seconds between checkpoints (one is always written at each stage end).
    """
    dist = distributed.from_env()
    device = distributed.resolve_device(options.device, dist)
    with distributed.process_group(dist, device) as dist:
        return _encode(input_path, output_path, options, resume, progress, Observers(observers),
                       log if distributed.is_main(dist) else (lambda *_: None), checkpoint_interval, dist, device)


def _encode(input_path, output_path, options: EncodeOptions, resume: bool, progress: bool, observers: Observers,
            log, checkpoint_interval: float, dist: distributed.DistContext | None,
            device: torch.device) -> EncodeResult | None:
    """``encode`` as one rank: the result on rank 0 (or a single process), None on the others."""
    start, cpu_start = time.monotonic(), time.process_time()
    check_writable(output_path)  # a read-only or missing output folder fails before training, not after
    video = read_video(input_path, frames=options.frames)  # load
    fmt = video.format
    pixels = fmt.width * fmt.height * video.num_frames
    layout = PlaneLayout.for_format(fmt)
    grid = layout.planes_to_grid(video.planes)
    specs = options.plugin_specs()
    plugins: list[Plugin] = [PLUGINS.get(spec.name)(spec.options) for spec in specs]

    def plugin_records(model: HiNeRV) -> tuple[PluginRecord, ...]:
        return tuple(PluginRecord(spec.name, spec.canonical(), p.coded, p.export_data(model))
                     for spec, p in zip(specs, plugins))

    def file_bytes(model: HiNeRV, payload_bits: list[float] | None = None) -> bytes:
        """The file for the model as it is; with payload bits (per quantizer tensor), laid out for an estimate."""
        tensors = quantizer.export(model)
        stand_in = {} if payload_bits is None else dict(zip(map(id, tensors), payload_bits))
        tensors = HookList(plugins).on_export(model, tensors)
        return write_bitstream(fmt, video.num_frames, config, tensors,
                               None if payload_bits is None else [stand_in.get(id(t)) for t in tensors],
                               plugin_records(model))

    claimed = HookList(plugins).claims if plugins else None  # tensors a plugin codes itself
    quantizer = QUANTIZERS.get(options.quant)(
        options.quant_settings(), CodingContext(pixels, options.target_bits(pixels), quant_axis, file_bytes, claimed))
    preset, budget = resolve_model_size(options, pixels, quantizer.bits_per_param())
    sized = (*layout.grid_size, video.num_frames, layout.channels, preset if budget is None else "s", budget)
    ladder = options.ladder().for_budget(model_budget(*sized))  # the teachers' widths fall alike
    motion = choose_motion(video.planes[0], (layout.sy, layout.sx), layout.grid_size, options.motion)
    config = build_config(*sized, ladder, luma=options.luma(), motion=motion.motion)
    # what shapes the result (checkpointed, fingerprinted); plugins first: a plugin that reshapes the model at a
    # stage (low-rank factors) does so before the quantizer attaches to what is there
    hooks = HookList(plugins + quantizer.hooks())
    torch.manual_seed(options.seed)
    resolve_kernels(options.kernels, device)  # refuses 'triton' where it cannot run, before any training
    model = HiNeRV(config).to(device)  # initialised on the CPU: the same weights on every device and rank
    model.set_kernels(options.kernels)
    params = count_parameters(model)
    log(f"{fmt.width}x{fmt.height} {fmt.chroma} {fmt.bit_depth}-bit, {video.num_frames} frames -> HiNeRV "
        f"{preset if options.params is None else 'custom'}: {params:,} parameters, strides {config.strides}, "
        f"widths {config.channels}" + (f", a luma stage {config.luma.channels} wide" if config.luma else "")
        + (f"; plugins {', '.join(options.plugins)}" if plugins else ""))
    notes = [motion.line] if motion.note else []
    if motion.line is not None:
        log(f"note: {motion.line}" if motion.note else motion.line)
    note = target_note(options, pixels, params, quantizer.reachable_bits_per_param(), quantizer.collapse_below)
    if note is not None:
        log(f"note: {note}")
        notes.append(note)
    patch = options.resolved_patch_size(layout.grid_size)
    train_cfg = TrainConfig(options.batch_size, patch, loss=options.loss, seed=options.seed)
    data = TrainingData(grid, fmt.max_value, layout, options.batch_size, patch, device)
    ckpt = Checkpointer(checkpoint_path(output_path), fingerprint(options.result_fields(), grid),
                        checkpoint_interval)
    if options.time_budget is not None:  # the epochs that fit, decided once: a resume keeps them
        options = dataclasses.replace(options, epochs=budget_epochs(options, quantizer, model, data, train_cfg,
                                                                      ckpt, resume, log))
        ckpt.plan = {"epochs": options.epochs}
    autocast = torch.bfloat16 if options.bf16 else None
    teacher_store = TeacherStore(output_path, options.teacher_cache)
    teacher_settings = TeacherSettings(options.epochs, options.lr, train_cfg, autocast, ladder)
    teachers = provide_teachers(  # a plugin's teacher, trained on the clip first (or read back), never coded
        plugins, config, data, teacher_settings, teacher_store, resume, options.kernels, observers, progress, log,
        dist, checkpoint_interval)
    teacher_seconds = sum(t.seconds for t in teachers)
    model, elapsed_before = run_stages(  # train -> prune -> quantization-aware training
        model, data, options.stages(quantizer, data.steps_per_epoch), train_cfg, hooks, ckpt, resume, observers, progress, log,
        autocast, dist)
    if not distributed.is_main(dist):
        distributed.barrier(dist)  # until rank 0 has written the file
        return None
    model.cpu().eval()
    quantizer.fit_to_target(model, log)  # the last mile to a target size
    estimate = quantizer.estimated_bytes(model)
    data_bytes = file_bytes(model)  # quantize, code
    atomic_write_bytes(output_path, data_bytes)  # write
    distributed.barrier(dist)
    ckpt.remove()
    teacher_store.cleanup()
    coded = model_on_meta(config, plugin_records(model))  # the model as the decoder rebuilds it (plugins' too)
    return EncodeResult(
        input=str(input_path), output=str(output_path), bytes=len(data_bytes), frames=video.num_frames,
        width=fmt.width, height=fmt.height, params=count_parameters(coded),
        macs_per_pixel=measured_macs_per_pixel(coded, fmt),
        encode_seconds=elapsed_before + time.monotonic() - start - teacher_seconds,
        encode_cpu_seconds=time.process_time() - cpu_start - sum(t.cpu_seconds for t in teachers),
        options=dataclasses.asdict(options), estimated_bytes=estimate,
        plugins={spec.canonical(): p.summary(model) for spec, p in zip(specs, plugins)},
        teacher_seconds=teacher_seconds, teachers=[dataclasses.asdict(t) for t in teachers],
        notes=notes)
