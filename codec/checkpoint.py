"""Encode checkpoints: an interrupted encode resumes from the last finished epoch.

A checkpoint holds only tensors and plain values (saved with ``torch.save``, loaded with
``weights_only=True``: never unpickles code). It is written atomically beside the output, so a kill during
the write leaves the previous checkpoint intact. A fingerprint of the input and the options guards against
resuming someone else's encode.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .fileio import atomic_write_bytes


def fingerprint(options: dict[str, Any], grid: torch.Tensor) -> str:
    """A digest of the encode options and the input samples."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    h.update(str(tuple(grid.shape)).encode())
    h.update(grid.contiguous().numpy().tobytes())
    return h.hexdigest()


def checkpoint_path(output: str | os.PathLike) -> Path:
    """Where the checkpoint of an encode to ``output`` lives: ``OUTPUT.ckpt`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".ckpt")


@dataclass
class Checkpoint:
    """What resuming needs: the position, the weights (with masks) and the optimizer."""

    fingerprint: str
    stage: int  # index of the stage in progress
    epoch: int  # epochs of that stage already done (>= 1)
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    elapsed: float  # seconds of encoding before this checkpoint
    hooks: dict[str, Any]  # the plugins' state (e.g. a rate controller's lambda)
    plan: dict[str, Any] = field(default_factory=dict)  # what the encoder decided before training (--time-budget's
    #                                                      epochs): a resume keeps it rather than deciding again

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({"fingerprint": self.fingerprint, "stage": self.stage, "epoch": self.epoch,
                    "model": self.model, "optimizer": self.optimizer, "elapsed": self.elapsed,
                    "hooks": self.hooks, "plan": self.plan}, buf)
        return buf.getvalue()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Checkpoint":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return cls(**{k: state[k] for k in ("fingerprint", "stage", "epoch", "model", "optimizer",
                                                 "elapsed", "hooks")}, plan=state.get("plan", {}))
        except Exception as exc:  # any damage: the caller decides whether to start over
            raise ValueError(f"checkpoint {path} is unreadable: {exc.__class__.__name__}") from None


class Checkpointer:
    """Saves at most every ``interval`` seconds (and whenever ``force`` is set)."""

    def __init__(self, path: Path, fingerprint: str, interval: float = 20.0) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.interval = interval
        self.plan: dict[str, Any] = {}  # written into every checkpoint (Checkpoint.plan)
        self._last = time.monotonic()

    def save(self, stage: int, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             elapsed: float, hooks: dict[str, Any], force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return False
        ckpt = Checkpoint(self.fingerprint, stage, epoch, model.state_dict(), optimizer.state_dict(), elapsed,
                          hooks, self.plan)
        atomic_write_bytes(self.path, ckpt.to_bytes())
        self._last = now
        return True

    def load(self) -> Checkpoint | None:
        """The checkpoint for this encode, or None if there is none; a foreign one is an error."""
        if not self.path.exists():
            return None
        ckpt = Checkpoint.load(self.path)
        if ckpt.fingerprint != self.fingerprint:
            raise ValueError(f"checkpoint {self.path} belongs to another input or other options; "
                             "delete it or run without --resume")
        return ckpt

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
