"""``mwt``: modularizing while training (MwT, Qi et al., ICSE 2024), adapted to a video INR: a temporal segment
of the video (a shot or a window of frames) is a class, and each segment gets a module, a subset of every block's
MLP channels, so the frames of one segment decode with a fraction of the network.

Train stage: every ConvNeXt block gets MwT's mask generator on its MLP, AvgPool(input) -> Linear(gate_width) ->
ReLU -> Linear(hidden, bias 1) -> m = ReLU(tanh(.)), and its hidden layer becomes GELU(fc1(y) ⊙ m); from
``binary_from`` of the stage on, the forward pass uses m > 0 (on/off, as the modules will run) and the gradient
passes straight through to m (an adaptation: a reconstruction is less forgiving than a class label of the
switch from soft masks to modules). Beside the
reconstruction loss, per block, ``alpha`` · L_coh + ``beta`` · L_coup: cohesion 1 − cos and coupling cos of the
masks (cosine of the row-normalised masks) over pairs of the same / of different segments. A batch holds few
frames, so pairs are formed within the batch and with a running mean mask of each segment (detached, updated as
batches pass): the adaptation that makes the losses see every segment at every step.

On entering the next stage the generators are run on every frame and dropped: a segment's module keeps, per block,
the channels whose mask fired (m > 0) on at least ``threshold`` of its frames; channels no segment keeps are zeroed
in the weights (they cost a fraction of a bit in the file); fine-tuning and quantization go on with the hard
masks. The file's PLUGINS record holds the segments' first frames and the bit masks; the decoder renders each frame
with its segment's module: fc1's rows and fc2's columns of the kept channels only (``ModularBlock``), so
``hinerv decode --frames`` on one segment does that segment's multiply-accumulates, not the whole model's.

Segments: ``segments=N`` equal windows of frames, or ``auto``: shots, cut where the luma histograms of consecutive
frames differ by more than ``cut`` (half their L1 distance, in [0, 1]) and by 4x the median difference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from bitstream.fields import Reader, write_uvarint
from compress.hooks import PLUGINS, HookContext, Plugin
from compress.prune import restrict_
from inr.layers import ConvNeXtBlock
from inr.model import model_macs_per_pixel

__all__ = ["ModularBlock", "MwT", "MwTOptions", "cohesion_coupling", "find_shots", "fixed_windows",
           "segment_of", "kernel_retention"]

FORMAT_VERSION = 1
MAX_SEGMENTS = 4096  # the most segments a file's record may hold
MAX_BLOCKS = 4096
MAX_HIDDEN = 1 << 16
HISTOGRAM_BINS = 32
MIN_SHOT = 4  # frames: a cut closer than this to the last one is dropped
PROTOTYPE_MOMENTUM = 0.9
STATS_BATCH = 4  # frames rendered at once to measure the masks


# ---------------------------------------------------------------------------------------------- segments


def fixed_windows(frames: int, count: int) -> list[int]:
    """First frames of ``count`` near-equal windows of a ``frames``-frame video (at most one a frame)."""
    count = max(1, min(count, frames))
    return [frames * i // count for i in range(count)]


def find_shots(luma: np.ndarray, peak: int, cut: float = 0.3, min_length: int = MIN_SHOT) -> list[int]:
    """First frames of the shots of a clip from its luma samples ``luma`` (T, ...) in [0, peak]: a cut before frame t
    where half the L1 distance of the normalised histograms of frames t-1 and t passes both ``cut`` and 4x the
    median distance, at least ``min_length`` frames after the previous cut."""
    frames = luma.shape[0]
    flat = luma.reshape(frames, -1)
    hist = np.stack([np.bincount(np.minimum(f.astype(np.int64) * HISTOGRAM_BINS // (peak + 1), HISTOGRAM_BINS - 1),
                                 minlength=HISTOGRAM_BINS) for f in flat]).astype(np.float64)
    hist /= hist.sum(1, keepdims=True)
    diff = 0.5 * np.abs(np.diff(hist, axis=0)).sum(1) if frames > 1 else np.zeros(0)
    bar = max(cut, 4 * float(np.median(diff))) if len(diff) else cut
    starts = [0]
    for t in range(1, frames):
        if diff[t - 1] > bar and t - starts[-1] >= min_length and frames - t >= min_length:
            starts.append(t)
    return starts


def segment_of(t: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """The segment index of each frame index in ``t``, given the segments' first frames ``starts`` (from 0)."""
    return torch.bucketize(t, starts, right=True) - 1


# ---------------------------------------------------------------------------------------------- the losses


def cohesion_coupling(masks: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor | None = None,
                      seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MwT's losses on one layer's masks (B, K) of samples of segments ``labels`` (B,): cohesion, the mean of
    1 − cos over pairs of one segment; coupling, the mean of cos over pairs of different segments (zero where
    there is no such pair). With ``prototypes`` (S, K) (detached running means; ``seen`` (S,) marks those that
    exist), each sample is paired with every segment's prototype too."""
    unit = F.normalize(masks, dim=1, eps=1e-8)
    cos = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=masks.device)
    coh_terms, coup_terms = [(1 - cos)[same & off_diagonal]], [cos[~same]]
    if prototypes is not None and seen is not None and bool(seen.any()):
        with_proto = unit @ F.normalize(prototypes, dim=1, eps=1e-8).T  # (B, S)
        own = labels[:, None] == torch.arange(prototypes.shape[0], device=masks.device)[None, :]
        coh_terms.append((1 - with_proto)[own & seen[None, :]])
        coup_terms.append(with_proto[~own & seen[None, :]])
    coh, coup = torch.cat(coh_terms), torch.cat(coup_terms)
    zero = masks.sum() * 0
    return (coh.mean() if coh.numel() else zero), (coup.mean() if coup.numel() else zero)


def kernel_retention(keep: torch.Tensor) -> float:
    """KRR: the share of a module's channels kept, ``keep`` (K,) bool."""
    return float(keep.float().mean()) if keep.numel() else 0.0


# ---------------------------------------------------------------------------------------------- the block


class ModularBlock(ConvNeXtBlock):
    """A ConvNeXt block whose MLP channels depend on the frame's segment.

    Soft (training): ``gate`` makes a mask per sample from the pooled input. Hard: ``keep`` (S, K) bool per segment
    ``starts`` (S,). In training the hard masks multiply the hidden layer (one batch may mix segments); in eval each
    segment's frames run through its channels only: fc1's rows, fc2's columns, the work of the module alone.
    The parameters keep the block's names (dwconv, fc1, fc2, then the gate's), so the file's tensors fit either.
    """

    def __init__(self, block: ConvNeXtBlock, gate_width: int = 0) -> None:
        nn.Module.__init__(self)
        self.dwconv, self.fc1, self.fc2, self.residual = block.dwconv, block.fc1, block.fc2, block.residual
        hidden, inputs = self.fc1.weight.shape
        self.gate: nn.Sequential | None = None
        if gate_width:
            device = self.fc1.weight.device
            self.gate = nn.Sequential(nn.Linear(inputs, gate_width), nn.ReLU(), nn.Linear(gate_width, hidden)).to(
                device)
            if device.type != "meta":
                nn.init.constant_(self.gate[2].bias, 1.0)  # every channel starts on: ReLU(tanh(1)) = 0.76
        self.register_buffer("starts", None, persistent=False)
        self.register_buffer("keep", None, persistent=False)
        self.binary = False  # soft masks binarised in the forward pass (their gradient passes straight through)
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None  # (t, soft masks) of the last training forward
        self.record: torch.Tensor | None = None  # (S, K) counts of firing, while the masks are measured
        self._sliced: dict[int, tuple] = {}  # segment -> (key, its module's weights), for plain (decoded) weights

    @property
    def hidden(self) -> int:
        return self.fc1.out_features

    def set_modules(self, starts: torch.Tensor, keep: torch.Tensor) -> None:
        """Switch to hard masks: ``keep`` (S, K) bool for segments starting at ``starts`` (S,); the gate goes."""
        device = self.fc1.weight.device
        self.gate = None
        self.starts, self.keep = starts.to(device), keep.to(device)
        self._sliced = {}

    def soft_mask(self, y: torch.Tensor) -> torch.Tensor:
        return F.relu(torch.tanh(self.gate(y.mean(dim=(1, 2)))))

    def mlp(self, y: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        if self.gate is not None:
            m = self.soft_mask(y)
            if self.training:
                self.last = (t, m)
            if self.record is not None:
                self.record.index_add_(0, segment_of(t, self.starts), (m > 0).to(self.record.dtype))
            if self.binary:  # forward as the modules will run (on/off), backward through the soft mask
                m = m + ((m > 0).to(m.dtype) - m).detach()
            return self.fc2(F.gelu(self.fc1(y) * m[:, None, None, :]))
        if self.keep is None or t is None:
            return super().mlp(y, t)
        segments = segment_of(t, self.starts)
        if self.training:
            m = self.keep[segments].to(y.dtype)
            return self.fc2(F.gelu(self.fc1(y) * m[:, None, None, :]))
        present = torch.unique(segments)
        if len(present) == 1:
            return self.module_mlp(y, int(present[0]))
        out = None
        for s in present.tolist():
            rows = (segments == s).nonzero().squeeze(1)
            part = self.module_mlp(y[rows], s)
            out = part.new_empty((y.shape[0],) + part.shape[1:]) if out is None else out
            out[rows] = part
        return out

    def module_mlp(self, y: torch.Tensor, segment: int) -> torch.Tensor:
        """The MLP of segment ``segment``'s module: only its channels are computed."""
        w1, b1, w2 = self.module_weights(segment)
        return F.linear(F.gelu(F.linear(y, w1, b1)), w2, self.fc2.bias)

    def module_weights(self, segment: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """fc1's rows, fc1's bias and fc2's columns of the segment's channels. Kept while the weights are plain
        tensors that have not changed (a decoder's), made afresh from quantized (parametrized) weights."""
        plain = not (parametrize.is_parametrized(self.fc1) or parametrize.is_parametrized(self.fc2))
        tensors = (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.keep)
        key = tuple((t.data_ptr(), t._version) for t in tensors if t is not None)
        if plain and segment in self._sliced and self._sliced[segment][0] == key:
            return self._sliced[segment][1]
        channels = self.keep[segment].nonzero().squeeze(1)
        sliced = (self.fc1.weight.index_select(0, channels),
                  None if self.fc1.bias is None else self.fc1.bias.index_select(0, channels),
                  self.fc2.weight.index_select(1, channels))
        if plain and not torch.is_grad_enabled():
            self._sliced[segment] = (key, sliced)
        return sliced


def blocks_of(model: nn.Module) -> list[tuple[nn.Module, int, ConvNeXtBlock]]:
    """(blocks list, index, block) of every ConvNeXt block, in model order."""
    return [(stage.blocks, i, block) for stage in model.stages for i, block in enumerate(stage.blocks)]


def block_positions(model: nn.Module) -> list[int]:
    """Positions (map pixels) each block's MLP runs on to render one whole frame, in model order."""
    sizes = model.config.stage_sizes()
    return [sizes[n + 1][0] * sizes[n + 1][1] for n, stage in enumerate(model.stages) for _ in stage.blocks]


# ---------------------------------------------------------------------------------------------- the plugin


@dataclass(frozen=True)
class MwTOptions:
    segments: str = field(default="auto", metadata={"help": "N: N equal windows of frames; auto: the shots found"})
    alpha: float = field(default=0.5, metadata={"help": "weight of the cohesion loss"})
    beta: float = field(default=1.5, metadata={"help": "weight of the coupling loss"})
    threshold: float = field(default=0.9, metadata={"help": "a module keeps channels firing on this share of frames"})
    gate_width: int = field(default=32, metadata={"help": "hidden width of each block's mask generator"})
    cut: float = field(default=0.3, metadata={"help": "auto: the histogram difference that makes a cut"})
    binary_from: float = field(default=0.5, metadata={
        "help": "share of the train stage after which masks are on/off in the forward pass (1: never)"})

    def __post_init__(self) -> None:
        if self.segments != "auto" and not (self.segments.isdigit() and 1 <= int(self.segments) <= MAX_SEGMENTS):
            raise ValueError(f"segments must be auto or a count 1..{MAX_SEGMENTS}, got {self.segments!r}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha}, {self.beta}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if not 1 <= self.gate_width <= 4096:
            raise ValueError(f"gate_width must be in 1..4096, got {self.gate_width}")
        if not 0 < self.cut < 1:
            raise ValueError(f"cut must be in (0, 1), got {self.cut}")
        if not 0 <= self.binary_from <= 1:
            raise ValueError(f"binary_from must be in [0, 1], got {self.binary_from}")


@PLUGINS.register("mwt")
class MwT(Plugin):
    """Modular training: a module (channel subset) per temporal segment; a segment decodes with its module only."""

    Options = MwTOptions
    coded = True

    def __init__(self, options: MwTOptions | None = None) -> None:
        super().__init__(options)
        self.starts: list[int] | None = None  # first frame of each segment
        self.keep: list[torch.Tensor] | None = None  # per block, (S, K) bool: the modules (None while soft)
        self.hidden: list[int] = []  # per block, from the file: checked against the model in rebuild
        self.prototypes: list[torch.Tensor] = []  # per block, (S, K) running mean masks
        self.seen: torch.Tensor | None = None  # (S,) bool: segments with a prototype

    # ---- encoder

    def on_data(self, data: Any) -> None:
        if self.options.segments != "auto":
            self.starts = fixed_windows(data.frames, int(self.options.segments))
            return
        luma = data.grid[..., :data.layout.luma_channels].cpu().numpy()
        self.starts = find_shots(luma, round(1 / data.scale), self.options.cut)

    def _starts_tensor(self, device: torch.device) -> torch.Tensor:
        if self.starts is None:
            raise ValueError("mwt: no segments (on_data was not called)")
        return torch.tensor(self.starts, dtype=torch.long, device=device)

    def transform_model(self, stage: str, model: nn.Module) -> nn.Module:
        if stage == "train":
            if self.keep is not None:  # resumed after the switch: the hard modules at once
                return self.rebuild(model)
            starts = self._starts_tensor(model.head.weight.device)
            for blocks, i, block in blocks_of(model):
                if not isinstance(block, ModularBlock):
                    blocks[i] = ModularBlock(block, self.options.gate_width)
                    blocks[i].starts = starts
            return model
        if self.keep is None:
            self.keep = self.measure_modules(model)
        self.rebuild(model)
        for _, _, block in blocks_of(model):  # channels no module keeps: zeros in the file
            used = block.keep.any(0)
            restrict_(block.fc1, "weight", used[:, None])
            if block.fc1.bias is not None:
                restrict_(block.fc1, "bias", used)
            restrict_(block.fc2, "weight", used[None, :])
        return model

    @torch.no_grad()
    def measure_modules(self, model: nn.Module) -> list[torch.Tensor]:
        """Each segment's channels per block: those whose soft mask fired on >= threshold of its frames."""
        device = model.head.weight.device
        starts = self._starts_tensor(device)
        frames = model.config.frames
        blocks = [block for _, _, block in blocks_of(model)]
        for block in blocks:
            block.record = torch.zeros(len(self.starts), block.hidden, dtype=torch.float64, device=device)
        was_training = model.training
        model.eval()
        try:
            for a in range(0, frames, STATS_BATCH):
                model(torch.arange(a, min(a + STATS_BATCH, frames), device=device))
        finally:
            model.train(was_training)
        lengths = torch.diff(starts, append=torch.tensor([frames], device=device)).to(torch.float64)
        keep = []
        for block in blocks:
            keep.append((block.record / lengths[:, None] >= self.options.threshold).cpu())
            block.record = None
        return keep

    def on_stage_start(self, stage: str, model: nn.Module, ctx: HookContext) -> None:
        self._binarise(stage, model, ctx.step, ctx.total_steps)

    def on_step_end(self, step: int, model: nn.Module, ctx: HookContext) -> None:
        self._binarise(ctx.stage, model, step + 1, ctx.total_steps)

    def _binarise(self, stage: str, model: nn.Module, step: int, total: int) -> None:
        """From ``binary_from`` of the train stage on, the soft masks run on/off (a function of the step alone,
        so a resumed encode takes the same turn)."""
        if stage == "train" and self.options.binary_from < 1:
            on = step >= self.options.binary_from * total
            for _, _, block in blocks_of(model):
                if isinstance(block, ModularBlock):
                    block.binary = on

    def claims(self, name: str, param: torch.Tensor) -> bool:
        return ".gate." in name  # the generators train only; the quantizer leaves them alone and they never ship

    def extra_loss(self, model: nn.Module, batch: Any, output: Any, ctx: HookContext) -> torch.Tensor | None:
        if self.keep is not None or (self.options.alpha == 0 and self.options.beta == 0):
            return None
        blocks = [block for _, _, block in blocks_of(model) if isinstance(block, ModularBlock) and block.last]
        if not blocks:
            return None
        count = len(self.starts)
        if len(self.prototypes) != len(blocks):
            self.prototypes = [torch.zeros(count, b.hidden, device=ctx.device) for b in blocks]
            self.seen = torch.zeros(count, dtype=torch.bool, device=ctx.device)
        total = None
        for k, block in enumerate(blocks):
            t, masks = block.last
            block.last = None
            labels = segment_of(t, block.starts)
            coh, coup = cohesion_coupling(masks, labels, self.prototypes[k], self.seen)
            term = self.options.alpha * coh + self.options.beta * coup
            total = term if total is None else total + term
            with torch.no_grad():  # the running mean mask of each segment in the batch
                for s in torch.unique(labels).tolist():
                    mean = masks[labels == s].mean(0)
                    self.prototypes[k][s] = mean if not self.seen[s] else torch.lerp(
                        mean, self.prototypes[k][s], PROTOTYPE_MOMENTUM)
        self.seen[labels] = True
        return total / len(blocks)

    def state_dict(self) -> dict[str, Any]:
        return {"starts": self.starts, "keep": self.keep,
                "prototypes": [p.cpu() for p in self.prototypes],
                "seen": None if self.seen is None else self.seen.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.starts = None if state["starts"] is None else [int(s) for s in state["starts"]]
        self.keep = None if state["keep"] is None else [k.bool() for k in state["keep"]]
        self.prototypes = list(state["prototypes"])
        self.seen = state["seen"]

    # ---- the file

    def export_data(self, model: nn.Module) -> bytes:
        if self.keep is None or self.starts is None:
            raise ValueError("mwt: the modules are not made yet (the file is written after training)")
        out = bytearray([FORMAT_VERSION]) + write_uvarint(len(self.starts))
        previous = 0
        for s in self.starts[1:]:
            out += write_uvarint(s - previous)  # gaps: every segment has >= 1 frame
            previous = s
        out += write_uvarint(len(self.keep))
        for keep in self.keep:
            out += write_uvarint(keep.shape[1])
            out += np.packbits(keep.numpy().astype(np.uint8), axis=1, bitorder="little").tobytes()
        return bytes(out)

    def load_data(self, data: bytes) -> None:
        r = Reader(data, what="mwt record")
        version = r.u8("version")
        if version != FORMAT_VERSION:
            raise ValueError(f"mwt record version {version} (this decoder reads {FORMAT_VERSION})")
        count = r.uvarint("segment count", max_value=MAX_SEGMENTS)
        if count < 1:
            raise ValueError("mwt record with no segment")
        starts = [0]
        for _ in range(count - 1):
            gap = r.uvarint("segment length", max_value=1 << 32)
            if gap < 1:
                raise ValueError("mwt record: an empty segment")
            starts.append(starts[-1] + gap)
        blocks = r.uvarint("block count", max_value=MAX_BLOCKS)
        self.hidden, self.keep = [], []
        for _ in range(blocks):
            hidden = r.uvarint("channels", max_value=MAX_HIDDEN)
            row = (hidden + 7) // 8
            bits = np.frombuffer(r.read(count * row, "channel masks"), dtype=np.uint8).reshape(count, row)
            keep = np.unpackbits(bits, axis=1, count=hidden, bitorder="little").astype(bool)
            self.hidden.append(hidden)
            self.keep.append(torch.from_numpy(keep))
        r.expect_end("the masks")
        self.starts = starts

    def rebuild(self, model: nn.Module) -> nn.Module:
        if self.keep is None or self.starts is None:
            raise ValueError("mwt: no modules to rebuild from")
        if self.starts[-1] >= model.config.frames:
            raise ValueError(f"mwt: a segment starts at frame {self.starts[-1]} of {model.config.frames}")
        found = blocks_of(model)
        if len(found) != len(self.keep):
            raise ValueError(f"mwt: the record has masks of {len(self.keep)} blocks, the model {len(found)}")
        starts = self._starts_tensor(model.head.weight.device)
        for (blocks, i, block), keep in zip(found, self.keep):
            if keep.shape != (len(self.starts), block.fc1.out_features):
                raise ValueError(f"mwt: masks of shape {tuple(keep.shape)} for a block of "
                                 f"{block.fc1.out_features} channels")
            blocks[i] = block if isinstance(block, ModularBlock) else ModularBlock(block)
            blocks[i].set_modules(starts, keep)
        return model

    def summary(self, model: nn.Module) -> dict[str, Any]:
        if self.keep is None or self.starts is None:
            return {"segments": len(self.starts or [])}
        frames, config = model.config.frames, model.config
        # the canvas's MACs (the frame's, without motion), every channel: block_positions counts the same map
        full = model_macs_per_pixel(model) * config.canvas_height * config.canvas_width
        per_block = [(p, blk) for p, (_, _, blk) in zip(block_positions(model), blocks_of(model))]
        rows = []
        for s, (a, b) in enumerate(zip(self.starts, self.starts[1:] + [frames])):
            kept = [k[s] for k in self.keep]
            dropped = sum(p * (blk.fc1.in_features + blk.fc2.out_features) * int((~k).sum())
                          for (p, blk), k in zip(per_block, kept))
            rows.append({"frames": f"{a}:{b}", "krr": round(kernel_retention(torch.cat(kept)), 4),
                         "block_krr": ",".join(f"{kernel_retention(k):.2f}" for k in kept),
                         "macs_fraction": round(1 - dropped / max(1.0, full), 4)})
        union = torch.cat([k.any(0) for k in self.keep])
        return {"segments": rows, "krr_mean": round(float(np.mean([r["krr"] for r in rows])), 4),
                "channels_unused": int((~union).sum()), "mask_bytes": len(self.export_data(model))}
