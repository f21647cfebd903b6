"""Teachers: wider networks trained first on the clip being encoded, for plugins that learn from one.

A plugin asks for a teacher with ``teacher_request()`` (``compress.hooks.TeacherRequest``); ``provide_teachers``
builds it at the requested size (``inr.presets``: the same stride ladder as the student, so their layers line up),
trains it with the student's trainer and settings (loss, batches, patches, seed, learning rate; the train stage
only: a teacher is never pruned or quantized and never enters the file) and hands it to the plugin with
``on_teacher``. Plugins that ask for the same teacher share one.

A trained teacher is kept under a key: a digest of the clip's samples, the teacher's config and its training
settings, so a teacher is reused only for the clip and training it was made from:

* with ``--teacher-cache DIR``: ``DIR/teacher-KEY.pt``, for any later encode that asks for the same teacher (a
  sweep's points, a bench's arms). Its training checkpoints to ``DIR/teacher-KEY.ckpt`` and always resumes from it.
* otherwise beside the output, ``OUT.teacher`` (and ``OUT.teacher.ckpt`` while it trains), read back only by
  ``--resume`` and removed when the encode has written its file.

Its time is reported apart from the student's (``teacher_seconds``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from compress.hooks import HookList, TeacherRequest, TrainingHook
from inr.config import HiNeRVConfig
from inr.model import HiNeRV, count_parameters
from inr.presets import WidthLadder, build_config, config_parameters

from . import distributed
from .checkpoint import Checkpointer
from .distributed import DistContext
from .fileio import atomic_write_bytes
from .train import StageSpec, TrainConfig, TrainingData, run_stages

TEACHER_FORMAT = 1  # bumped when what a cached teacher means changes: old files are then retrained, not misread


@dataclass(frozen=True)
class TeacherSettings:
    """How teachers train: the student's settings (``hinerv encode``'s options)."""

    epochs: int  # the encode's --epochs (a request's epochs=0)
    lr: float
    train: TrainConfig
    autocast_dtype: torch.dtype | None = None
    ladder: WidthLadder = WidthLadder()  # the student's: the teacher's widths fall alike (no ratio: the student
    #                                      size's, inr.presets.width_ratio)

    def deciding(self, request: TeacherRequest) -> dict:
        """What decides a teacher's weights besides its config and the clip, as JSON-able values."""
        return {"epochs": request.epochs or self.epochs, "lr": self.lr, **dataclasses.asdict(self.train),
                "autocast": str(self.autocast_dtype), "format": TEACHER_FORMAT}


@dataclass
class TeacherReport:
    """One teacher, as ``--json`` reports it."""

    preset: str
    params: int
    channels: tuple[int, ...]
    epochs: int
    cached: bool  # read from a file (a cache or a resumed encode) rather than trained by this encode
    train_seconds: float  # what training it took, whenever that was (wall clock)
    train_cpu_seconds: float  # the CPU time of that training, all threads (a resumed one: since the resume)
    seconds: float  # what it cost this encode (training it, or reading it)
    cpu_seconds: float  # the CPU time of that, all threads


def teacher_config(request: TeacherRequest, student: HiNeRVConfig,
                   ladder: WidthLadder = WidthLadder()) -> HiNeRVConfig:
    """The teacher's config: the student's clip at the requested preset or ``scale`` x the student's parameters.

    Raises ValueError when it cannot teach the student layer by layer: other strides, or (``wider``) a layer
    narrower than the student's.
    """
    s = student
    ladder = ladder.for_budget(config_parameters(s))  # no ratio given: the one the student's size has
    depth = s.depths[0] if len(s.depths) > 1 else None  # the student's blocks a stage, whatever the budget
    luma = s.luma is not None  # and the student's luma stage, so the stages line up
    if request.preset == "auto":
        budget = int(request.scale * config_parameters(s))
        config = build_config(s.height, s.width, s.frames, s.out_channels, "s", budget, ladder, depth, luma)
    else:
        config = build_config(s.height, s.width, s.frames, s.out_channels, request.preset, ladder=ladder,
                              depth=depth, luma=luma)
    if config.strides != s.strides or config.depths != s.depths:
        raise ValueError(f"teacher {request.preset}: strides {config.strides} differ from the student's {s.strides}")
    if request.wider and (config.grid_channels < s.grid_channels
                          or any(c < d for c, d in zip(config.channels, s.channels))):
        raise ValueError(f"teacher {request.preset} (widths {config.channels}) is narrower than the student "
                         f"(widths {s.channels}): ask for a larger teacher")
    return config


def clip_digest(grid: torch.Tensor) -> str:
    """A digest of the clip's samples (its shape and every sample)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(str(tuple(grid.shape)).encode())
    h.update(grid.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def teacher_key(config: HiNeRVConfig, settings: dict, clip: str) -> str:
    """A digest of what decides a teacher's weights: the clip (``clip_digest``), its config, its training."""
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps({"config": dataclasses.asdict(config), "clip": clip, **settings}, sort_keys=True).encode())
    return h.hexdigest()


class TeacherStore:
    """Where teachers are kept: a cache folder (shared, kept) or beside the output (this encode's, removed)."""

    def __init__(self, output: str | Path, cache: str | Path | None = None) -> None:
        self.cache = None if cache is None else Path(cache)
        self.output = Path(output)
        self.made: list[Path] = []  # files beside the output, removed by ``cleanup``

    def paths(self, key: str) -> tuple[Path, Path]:
        """(weights, training checkpoint) of the teacher with ``key``."""
        if self.cache is not None:
            return self.cache / f"teacher-{key}.pt", self.cache / f"teacher-{key}.ckpt"
        weights = self.output.with_name(self.output.name + ".teacher")
        return weights, weights.with_name(weights.name + ".ckpt")

    def reusable(self, resume: bool) -> bool:
        """Whether a kept teacher may be read: always from a cache (its key decides), beside the output on resume."""
        return self.cache is not None or resume

    def cleanup(self) -> None:
        if self.cache is None:
            for path in self.made:
                path.unlink(missing_ok=True)


def save_teacher(path: Path, key: str, model: HiNeRV, train_seconds: float, train_cpu_seconds: float) -> None:
    buf = io.BytesIO()
    torch.save({"key": key, "config": json.dumps(dataclasses.asdict(model.config)),
                "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "train_seconds": float(train_seconds), "train_cpu_seconds": float(train_cpu_seconds)}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_teacher(path: Path, key: str, config: HiNeRVConfig) -> tuple[HiNeRV, float, float] | None:
    """(model, its training's wall and CPU seconds) from ``path`` if it holds the teacher with ``key``; None if
    absent, damaged or another's (the caller trains it afresh)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved["key"] != key or json.loads(saved["config"]) != json.loads(json.dumps(dataclasses.asdict(config))):
            return None
        model = HiNeRV(config)
        model.load_state_dict(saved["state"])
        return model, float(saved["train_seconds"]), float(saved["train_cpu_seconds"])
    except Exception:  # damaged: train afresh
        return None


def provide_teachers(plugins: Sequence[TrainingHook], student: HiNeRVConfig, data: TrainingData,
                     settings: TeacherSettings, store: TeacherStore, resume: bool = False, kernels: str = "auto",
                     observers: TrainingHook | None = None, progress: bool = True,
                     log: Callable[[str], None] = print, dist: DistContext | None = None,
                     checkpoint_interval: float = 20.0) -> list[TeacherReport]:
    """Train (or read) the teacher each plugin asks for and hand it over with ``on_teacher``; one report a teacher.

    ``observers`` watch a teacher's training too (its stage is named ``"teacher"``).

    Runs before the student is trained, after it is initialised; the global random state is left as it was, so
    the student trains the same whether its teacher was trained or read from a file.
    """
    requests = [(p, p.teacher_request()) for p in plugins]
    requests = [(p, r) for p, r in requests if r is not None]
    reports: list[TeacherReport] = []
    made: dict[str, HiNeRV] = {}
    clip = clip_digest(data.grid) if requests else ""  # once: the samples are the same for every teacher
    for plugin, request in requests:
        config = teacher_config(request, student, settings.ladder)
        train_settings = settings.deciding(request)
        key = teacher_key(config, train_settings, clip)
        if key not in made:
            start, cpu_start = time.monotonic(), time.process_time()
            weights, ckpt_path = store.paths(key)
            found = load_teacher(weights, key, config) if store.reusable(resume) else None
            if found is None:
                weights.parent.mkdir(parents=True, exist_ok=True)
                checkpointer = Checkpointer(ckpt_path, key, checkpoint_interval)
                model, train_seconds, train_cpu = _train(
                    config, train_settings["epochs"], settings, data, checkpointer, store.reusable(resume), kernels,
                    observers, progress, log, dist)
                if distributed.is_main(dist):
                    save_teacher(weights, key, model, train_seconds, train_cpu)
                    checkpointer.remove()
            else:
                model, train_seconds, train_cpu = found
                model.to(data.device)
                log(f"teacher {request.preset}: {count_parameters(model):,} parameters, read from {weights}")
            if store.cache is None:
                store.made += [weights, ckpt_path]
            made[key] = model.eval().requires_grad_(False).set_kernels(kernels)
            reports.append(TeacherReport(request.preset, count_parameters(model), config.channels,
                                         train_settings["epochs"], found is not None, train_seconds, train_cpu,
                                         time.monotonic() - start, time.process_time() - cpu_start))
        plugin.on_teacher(made[key])
    return reports


def _train(config: HiNeRVConfig, epochs: int, settings: TeacherSettings, data: TrainingData,
           checkpointer: Checkpointer, resume: bool, kernels: str, observers: TrainingHook | None, progress: bool,
           log, dist) -> tuple[HiNeRV, float, float]:
    """(teacher, wall seconds, CPU seconds) trained on ``data`` (resumed from ``checkpointer`` when allowed and
    present: the wall seconds count those before the resume, the CPU seconds this process's only)."""
    devices = [data.device] if data.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(settings.train.seed)
        model = HiNeRV(config).to(data.device).set_kernels(kernels)
        log(f"teacher: {count_parameters(model):,} parameters, widths {config.channels}, {epochs} epochs")
        if resume:
            try:
                checkpointer.load()
            except ValueError:  # damaged: start over
                checkpointer.remove()
        start, cpu_start = time.monotonic(), time.process_time()
        model, before = run_stages(model, data, [StageSpec("teacher", epochs, settings.lr)], settings.train,
                                   HookList([]), checkpointer, resume, observers, progress, log,
                                   settings.autocast_dtype, dist)
    return model, before + time.monotonic() - start, time.process_time() - cpu_start
