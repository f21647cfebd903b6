"""Shared by the encode tests: observers that stop an encode part-way, as a kill would, or keep what it made."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codec.clips import make_clip

from compress.hooks import TrainingHook


class Interrupt(TrainingHook):
    """Raises KeyboardInterrupt once, after step ``step`` of ``stage`` (an observer: it changes nothing else)."""

    def __init__(self, stage: str, step: int) -> None:
        self.stage, self.step = stage, step

    def on_step_end(self, step, model, ctx):
        if ctx.stage == self.stage and step == self.step:
            raise KeyboardInterrupt


@pytest.fixture
def interrupt() -> type[Interrupt]:
    """The Interrupt class: ``interrupt("train", 7)`` stops an encode after step 7 of its train stage."""
    return Interrupt


class Capture(TrainingHook):
    """Keeps the encoder's own reconstruction: the trained model's eval-mode output of frames 0..frames-1 at the
    end of QAT, what the decoder must reproduce bit for bit."""

    def __init__(self, frames: int = 6) -> None:
        self.count, self.frames = frames, None

    def on_stage_end(self, stage, model, ctx):
        if stage == "qat":
            model.eval()
            with torch.no_grad():
                self.frames = model(torch.arange(self.count))
            model.train()


@pytest.fixture(scope="session")
def capture() -> type[Capture]:
    """The Capture class: ``capture()`` is an observer that keeps the encoder's reconstruction of 6 frames."""
    return Capture


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """6 frames of carphone, 64x48 (a module's own ``clip`` fixture takes precedence)."""
    path = tmp_path_factory.mktemp("clip") / "carphone.y4m"
    make_clip(path, frames=6, crop=(40, 32, 64, 48))
    return path
