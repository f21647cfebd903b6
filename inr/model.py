"""HiNeRV: a hierarchical-encoding neural representation of a video.

Kwan et al., "HiNeRV: Video Compression with Hierarchical Encoding-based Neural Representation",
NeurIPS 2023. Written from the paper's description; see docs/design.md §3.

Data flow for frame index t (shapes channels-last)::

    t ─► TemporalGrid (levels lerped in t, concat)        (B, h0, w0, C_grid_total)
      ─► stem: conv 3x3                                    (B, h0, w0, C_1)
      ─► stage n = 1..N:
           LayerNorm (no affine) ─► bilinear upsample x s_n
           ─► + HierarchicalEncoding_n(t)[h mod s_n, w mod s_n]
           ─► D_n ConvNeXt blocks (the first may change the width)     (B, h_n, w_n, C_n)
      ─► head: Linear ─► sigmoid                           (B, H, W, out_channels)

With a luma stage (``HiNeRVConfig.luma``, 4:2:0 only) the head makes U and V alone, and one more stage (x2, its
own encoding and blocks) feeds a Linear ─► sigmoid making Y at luma resolution, (B, 2H, 2W, 1), pixel-unshuffled
into the output's four luma channels.

The output grid is padded to base * prod(strides) internally and cropped back. Any output region can be
rendered alone (patch mode) and equals the same pixels of the whole frame: see ``inr.regions``. With global motion
(``HiNeRVConfig.motion``) the network's output grid is a canvas larger than the frame, and frame t is the region
at its offset on it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .config import LUMA_STRIDE, HiNeRVConfig
from .kernels import KERNEL_MODES, resolve_kernels, upsample_add_encoding
from .layers import ConvNeXtBlock, HierarchicalEncoding, TemporalGrid, depthwise_conv_nhwc
from .regions import Region, RenderPlan, crop_to, grow, plan_regions


# Below this many output pixels a stage's fused kernel loses to PyTorch (launch overhead): measured on an H200,
# 122x122 patches 1.0x, 135x240 frames 1.25x-3.3x (tools/bench_kernels.py). 'auto' keeps PyTorch there.
FUSED_MIN_PIXELS = 128 * 128

# On a CPU a batch is rendered in chunks of frames, and a frame too large alone in bands of rows, so that no map
# passes this many bytes: glibc serves bigger blocks with mmap (its threshold tops out at 32 MiB) and hands them
# back on free, so every step would fault them in afresh, page by page. Measured (tools/bench_train.py,
# tools/bench_decode.py, one pass = the *-onepass variants):
# - hinerv-s-240, 8 patches of 120x120 at random positions (largest map 37 MB): ~120k minor faults a step in
#   one pass, ~10k in 2 chunks; a step 1.24x faster (median of 6 paired runs, 1.06-1.44x).
# - ours-s-1080-420, 540x960 frames (largest map 137 MB): each in 9 bands, decoding 1.43-1.49x faster (2 pairs).
CPU_CHUNK_BYTES = 32 << 20


class Stage(nn.Module):
    """One upsampling stage: hierarchical encoding plus a stack of ConvNeXt blocks."""

    def __init__(self, stride: int, in_channels: int, out_channels: int, depth: int, expansion: int,
                 frames: int, local_frames: int, local_channels: int, local_levels: int) -> None:
        super().__init__()
        self.stride = stride
        self.encoding = HierarchicalEncoding(stride, in_channels, frames, local_frames, local_channels,
                                             local_levels)
        widths = [in_channels] + [out_channels] * depth
        self.blocks = nn.ModuleList(ConvNeXtBlock(widths[i], widths[i + 1], expansion) for i in range(depth))


class HiNeRV(nn.Module):
    """The HiNeRV network for one video; ``forward(t, region)`` renders frames or patches."""

    def __init__(self, config: HiNeRVConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        h0, w0 = c.base_height, c.base_width
        self.grid = TemporalGrid(c.frames, c.grid_frames, h0, w0, c.grid_channels, c.grid_levels)
        self.stem = nn.Conv2d(self.grid.out_channels, c.channels[0], 3, padding=1)
        self.stages = nn.ModuleList(  # the luma stage, if any, is the last
            Stage(s.stride, s.in_channels, s.out_channels, s.depth, s.expansion, c.frames, c.local_frames,
                  s.local_channels, c.local_levels)
            for s in c.stage_shapes())
        self.head = nn.Linear(c.channels[-1], c.head_channels)
        self.luma_head = None if c.luma is None else nn.Linear(c.luma.channels, 1)
        self.sizes = c.stage_sizes()
        self.kernels = "auto"  # 'auto' | 'triton' | 'torch': how upsampling + encoding run (not in the bitstream)
        self.chunk_bytes = CPU_CHUNK_BYTES  # on a CPU, the largest map a batch chunk may make (0: one pass)
        # (T, 4) windows of the frames on the canvas (global motion): grid offset (y, x), luma shift; or None
        self.windows = None if c.motion is None else frame_windows(c)

    def set_kernels(self, mode: str) -> "HiNeRV":
        """Choose the upsample + hierarchical-encoding implementation: fused Triton kernels or PyTorch.

        'auto' takes Triton on CUDA when it imports and PyTorch elsewhere. The two agree to ~1e-7; the
        encoder and decoder of one file should use the same choice for bit-exact reconstructions.
        """
        if mode not in KERNEL_MODES:
            raise ValueError(f"kernels must be one of {', '.join(KERNEL_MODES)}, got {mode!r}")
        self.kernels = mode
        return self

    @property
    def full_region(self) -> Region:
        return 0, self.config.height, 0, self.config.width

    def forward(self, t: torch.Tensor, region: Region | None = None) -> torch.Tensor:
        """Render ``region`` (default: the whole frame) of frames ``t``.

        With global motion (``HiNeRVConfig.motion``) each frame is the region moved to the frame's offset on the
        canvas; frames of a batch at different offsets render apart, with the same quantized weights.
        On a CPU, a batch whose maps would pass ``chunk_bytes`` renders in chunks of frames, and a frame too large
        alone in bands of rows (``CPU_CHUNK_BYTES``): the same values as one pass, to float rounding.

        Args:
            t: (B,) integer frame indices.
            region: (y0, y1, x0, x1) of the output grid, inside ``[0, height) x [0, width)``.
        Returns:
            (B, y1 - y0, x1 - x0, out_channels) values in [0, 1].
        """
        region = self.full_region if region is None else region
        y0, y1, x0, x1 = region
        if not (0 <= y0 < y1 <= self.config.height and 0 <= x0 < x1 <= self.config.width):
            raise ValueError(f"region {region} is outside the {self.config.height}x{self.config.width} output")
        if self.windows is None:
            return self.render_region(t, region)
        groups = frames_by_window(self.windows[t.cpu()])
        shifted = lambda o: (y0 + o[0], y1 + o[0], x0 + o[1], x1 + o[1])  # noqa: E731
        if len(groups) == 1:
            return self.render_region(t, shifted(groups[0][0]), groups[0][0][2:])
        with parametrize.cached():  # one set of quantized weights (and noise) for the batch, as in one pass
            parts = [self.render_region(t[index.to(t.device)], shifted(w), w[2:]) for w, index in groups]
        order = torch.cat([index for _, index in groups]).to(t.device)
        return torch.cat(parts)[torch.argsort(order)]

    def render_region(self, t: torch.Tensor, region: Region, luma_shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """Frames ``t`` of ``region`` of the canvas (the frame itself without motion), in CPU chunks if large;
        ``luma_shift``: luma samples the luma window sits off the grid window's (``plan``)."""
        y0, y1, x0, x1 = region
        plan = self.plan(region, luma_shift)
        if t.device.type != "cpu" or self.chunk_bytes <= 0:
            return self.render(t, plan, region)
        frame_bytes = self.largest_activation(plan)
        chunks, bands = cpu_chunks(t.shape[0], frame_bytes, self.chunk_bytes), [region]
        if frame_bytes > self.chunk_bytes:  # one frame alone is too large: render it in bands of rows
            n = min(y1 - y0, -(-2 * frame_bytes // self.chunk_bytes))  # half the limit: room for the halos
            rows = [y0 + (y1 - y0) * i // n for i in range(n + 1)]
            bands = [(a, b, x0, x1) for a, b in zip(rows, rows[1:])]
        if chunks == 1 and len(bands) == 1:
            return self.render(t, plan, region)
        plans = [plan] if len(bands) == 1 else [self.plan(band, luma_shift) for band in bands]
        with parametrize.cached():  # quantized weights (and their noise) once per batch, as in one pass
            return torch.cat([torch.cat([self.render(part, p, band) for p, band in zip(plans, bands)], dim=1)
                              for part in t.tensor_split(chunks)])

    def plan(self, region: Region, luma_shift: tuple[int, int] = (0, 0)) -> RenderPlan:
        """What every stage computes to render ``region`` of the output grid (``inr.regions.plan_regions``); with
        a luma stage the plan ends at the same region of the luma map, ``LUMA_STRIDE`` times larger, moved by
        ``luma_shift`` luma samples (-1 or 0 each way: global motion places luma to the sample, the grid to the
        grid pixel; the grid region is then still inside what the last regular stage keeps)."""
        shapes = self.config.stage_shapes()
        strides, depths = tuple(s.stride for s in shapes), tuple(s.depth for s in shapes)
        if self.config.luma is not None:
            region = luma_window(region, luma_shift)
        return plan_regions(region, self.sizes, strides, depths)

    def largest_activation(self, plan: RenderPlan) -> int:
        """Bytes of the largest fp32 map one frame of ``plan`` makes: an upsampled grid or a block's MLP hidden."""
        area = lambda r: (r[1] - r[0]) * (r[3] - r[2])  # noqa: E731
        largest = 0
        for n, (s, blocks) in enumerate(zip(self.config.stage_shapes(), plan.blocks)):
            upsampled = area(plan.stem_out if n == 0 else plan.keep[n - 1]) * s.stride ** 2 * s.in_channels
            largest = max(largest, upsampled, area(blocks) * max(s.in_channels, s.out_channels * s.expansion))
        return 4 * largest

    def render(self, t: torch.Tensor, plan: RenderPlan, region: Region) -> torch.Tensor:
        """Frames ``t`` of the output ``region`` ``plan`` was made for: (B, h, w, out_channels)."""
        x = self.grid(t, plan.stem)  # (B, h, w, C_grid_total)
        x = depthwise_conv_nhwc(self.stem, x)  # (B, h, w, C_1)
        x = x[:, crop_to(plan.stem, plan.stem_out)[0], crop_to(plan.stem, plan.stem_out)[1]]
        current = plan.stem_out
        impl = resolve_kernels(self.kernels, x.device)
        regular = len(self.config.strides)
        for n in range(regular):
            x, current = self.run_stage(n, x, t, current, plan, impl)
        if self.luma_head is None:
            return torch.sigmoid(self.head(x))  # (B, y1-y0, x1-x0, out_channels)
        y0, y1, x0, x1 = region
        ys, xs = crop_to(current, region)
        uv = torch.sigmoid(self.head(x[:, ys, xs]))  # (B, h, w, 2)
        x, _ = self.run_stage(regular, x, t, current, plan, impl)
        s = LUMA_STRIDE  # the luma samples a grid pixel covers, pixel-unshuffled as codec.layout stores them
        y = torch.sigmoid(self.luma_head(x)).view(x.shape[0], y1 - y0, s, x1 - x0, s)
        y = y.permute(0, 1, 3, 2, 4).reshape(x.shape[0], y1 - y0, x1 - x0, s * s)
        return torch.cat([y, uv], dim=-1)

    def run_stage(self, n: int, x: torch.Tensor, t: torch.Tensor, current: Region, plan: RenderPlan,
                  impl: str) -> tuple[torch.Tensor, Region]:
        """Stage ``n`` of ``plan`` on ``x`` (which holds region ``current`` of its input): the output and its region."""
        stage = self.stages[n]
        x = F.layer_norm(x, x.shape[-1:])
        y0, y1, x0, x1 = plan.blocks[n]
        small = (y1 - y0) * (x1 - x0) < FUSED_MIN_PIXELS and self.kernels == "auto"
        # bilinear x s_n, then + encoding[h mod s_n, w mod s_n]: one fused pass with Triton
        x = upsample_add_encoding(x, stage.encoding.tiles(t), current, plan.blocks[n], stage.stride,
                                  "torch" if small else impl)  # (B, h_n, w_n, C_in)
        have = plan.blocks[n]
        for k, block in enumerate(stage.blocks):
            # each 3x3 conv spends one pixel of halo: the block keeps only what later blocks still need
            need = grow(plan.keep[n], len(stage.blocks) - 1 - k, self.sizes[n + 1])
            x, have = block(x, crop_to(have, need) if need != have else None, t), need
        ys, xs = crop_to(have, plan.keep[n])
        return x[:, ys, xs], plan.keep[n]


def luma_window(region: Region, shift: tuple[int, int]) -> Region:
    """The luma-map region of grid ``region``, moved by ``shift`` luma samples."""
    y0, y1, x0, x1 = region
    s = LUMA_STRIDE
    return s * y0 + shift[0], s * y1 + shift[0], s * x0 + shift[1], s * x1 + shift[1]


def frame_windows(config: HiNeRVConfig) -> torch.Tensor:
    """(T, 4) long tensor, per frame: its window's offset on the canvas grid (y, x), and the luma samples its luma
    window sits off twice that (-1 or 0 each way; 0 unless a luma stage renders motion of ``LUMA_STRIDE`` steps a
    grid pixel). On the CPU even under a meta-device context: a lookup the model indexes, not a parameter."""
    positions = torch.tensor(config.motion.positions(), dtype=torch.long, device="cpu")
    offsets = torch.tensor(config.motion.offsets(), dtype=torch.long, device="cpu")
    fine = config.luma is not None and config.motion.precision == LUMA_STRIDE
    shifts = positions - LUMA_STRIDE * offsets if fine else torch.zeros_like(offsets)
    return torch.cat([offsets, shifts], dim=1)


def frames_by_window(windows: torch.Tensor) -> list[tuple[tuple[int, ...], torch.Tensor]]:
    """The batch's frames grouped by their (B, K) windows (``frame_windows``): (window, positions in the batch)."""
    unique, inverse = torch.unique(windows, dim=0, return_inverse=True)
    return [(tuple(int(v) for v in w), (inverse == k).nonzero().squeeze(1)) for k, w in enumerate(unique)]


def cpu_chunks(batch: int, frame_bytes: int, limit: int = CPU_CHUNK_BYTES) -> int:
    """The fewest near-equal chunks (``tensor_split``) of ``batch`` frames whose largest keeps
    ``frames * frame_bytes`` within ``limit``; one frame a chunk when a frame alone passes it."""
    per_chunk = max(1, limit // max(1, frame_bytes))
    return max(1, -(-batch // per_chunk))


def quant_axis(name: str, param: torch.Tensor) -> int | None:
    """The channel axis of a HiNeRV tensor's quantization scales, where per-channel scales are cheap: output
    channels of layers, channels of the base grid; one scale for the encodings' local grids and for biases."""
    if name.startswith("grid."):
        return param.ndim - 1
    if ".encoding.grids." in name or param.ndim < 2:
        return None
    return 0


def model_macs_per_pixel(model: HiNeRV) -> float:
    """``macs_per_pixel`` counted module by module on a built model, so layers a plugin replaced count as they are:
    every ``nn.Linear`` and ``nn.Conv2d``, and any module with a ``macs_per_position()`` method (a low-rank layer),
    times the positions of the map it runs on. Equals ``macs_per_pixel(model.config)`` for a plain model."""
    c = model.config
    sizes = c.stage_sizes()

    def positions(name: str) -> int:
        if name.startswith("stem"):
            return sizes[0][0] * sizes[0][1]
        if name.startswith("head"):  # the output grid
            return sizes[len(c.strides)][0] * sizes[len(c.strides)][1]
        if name.startswith("luma_head"):
            return sizes[-1][0] * sizes[-1][1]
        parts = name.split(".")
        if len(parts) > 3 and parts[0] == "stages" and parts[2] == "blocks":
            h, w = sizes[int(parts[1]) + 1]
            return h * w
        return 0  # the encodings' projections act on s x s tiles: not counted, as in macs_per_pixel

    total = 0
    for name, module in model.named_modules():
        if hasattr(module, "macs_per_position"):
            total += positions(name) * module.macs_per_position()
        elif isinstance(module, nn.Linear):
            total += positions(name) * module.in_features * module.out_features
        elif isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += positions(name) * module.out_channels * (module.in_channels // module.groups) * k
    return total / (c.canvas_height * c.canvas_width)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_pixel(config: HiNeRVConfig) -> float:
    """Multiply-accumulates per output-grid pixel of frame-mode rendering (convs, MLPs, projections)."""
    c = config
    sizes = c.stage_sizes()
    area = lambda hw: hw[0] * hw[1]  # noqa: E731
    grid_c = sum(c.grid_channels << l for l in range(c.grid_levels))
    total = area(sizes[0]) * grid_c * c.channels[0] * 9
    for n, s in enumerate(c.stage_shapes()):
        px = area(sizes[n + 1])
        for b in range(s.depth):
            ci = s.in_channels if b == 0 else s.out_channels
            hidden = s.out_channels * s.expansion
            total += px * (ci * 9 + ci * hidden + hidden * s.out_channels)
    total += area(sizes[len(c.strides)]) * c.channels[-1] * c.head_channels  # the head, on the output grid
    if c.luma is not None:  # and Y's, on the luma map
        total += area(sizes[-1]) * c.luma.channels
    return total / (c.canvas_height * c.canvas_width)  # a frame is a window of the canvas: the same work a pixel
