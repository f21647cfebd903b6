"""Shared by the encode tests: a hook that stops an encode part-way, as a kill would."""
from __future__ import annotations

import pytest

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
