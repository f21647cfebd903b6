"""``hinerv decode``: parse -> dequantize -> render frames -> write Y4M. Needs nothing but the file."""
from __future__ import annotations

from pathlib import Path
from contextlib import nullcontext
from typing import BinaryIO, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from bitstream.errors import BitstreamError
from bitstream.tensors import QuantizedTensor
from compress.hooks import PLUGINS, Plugin
from compress.plugin_spec import parse_plugin
from compress.quantize import load_dequantized_
from inr.config import HiNeRVConfig
from inr.kernels import resolve_kernels
from inr.model import HiNeRV

from .bitstream_io import DecodeLimits, PluginRecord, frame_activation_bytes, read_bitstream, read_file_bytes
from .distributed import resolve_device
from .layout import PlaneLayout
from .fileio import atomic_open
from .video import Video, VideoFormat
from .y4m import checked_header, write_frames, write_y4m

RENDER_BATCH = 4  # frames rendered at once


def file_plugins(records: tuple[PluginRecord, ...], known_only: bool = False) -> list[Plugin]:
    """The plugins a file needs to decode, configured from the file: its own options and data.

    A plugin that changed what the file codes must be known to this decoder (else a BitstreamError); one that
    did not (e.g. a loss term) is skipped. ``known_only``: skip every unknown one (``hinerv info``).
    """
    import compress.plugins  # noqa: F401  (registers the plugins)

    out = []
    for record in records:
        if record.name not in PLUGINS:
            if record.coded and not known_only:
                raise BitstreamError(f"the file needs plugin {record.name!r} to decode, which this decoder does not "
                                     f"have (known: {', '.join(PLUGINS.names()) or 'none'})")
            continue
        if not record.coded:
            continue
        try:
            spec = parse_plugin(record.options)
        except (LookupError, ValueError) as exc:
            raise BitstreamError(f"bad PLUGINS section: {exc}") from None
        if spec.name != record.name:
            raise BitstreamError(f"bad PLUGINS section: options {record.options!r} are not {record.name!r}'s")
        plugin = PLUGINS.get(record.name)(spec.options)
        try:
            plugin.load_data(record.data)
        except (LookupError, ValueError, TypeError) as exc:
            raise BitstreamError(f"bad PLUGINS section: {record.name}: {exc}") from None
        out.append(plugin)
    return out


def rebuild(model: nn.Module, plugins: list[Plugin]) -> nn.Module:
    """The model the file's tensors fill: each plugin's modules rebuilt, in the order they ran."""
    for plugin in plugins:
        model = plugin.rebuild(model)
    return model


def model_on_meta(config: HiNeRVConfig, records: tuple[PluginRecord, ...] = (), known_only: bool = False) -> nn.Module:
    """The file's model with shapes only (nothing allocated): what the tensors must fit."""
    return meta_model(config, file_plugins(records, known_only))


def meta_model(config: HiNeRVConfig, plugins: list[Plugin]) -> nn.Module:
    """The model ``plugins`` rebuild, on the meta device (shapes only)."""
    with torch.device("meta"):
        return rebuild(HiNeRV(config), plugins)


def build_model(config: HiNeRVConfig, tensors: list[QuantizedTensor],
                plugins: tuple[PluginRecord, ...] = ()) -> HiNeRV:
    """The network described by a bitstream, with its dequantized weights."""
    live = file_plugins(plugins)
    meta = meta_model(config, live)  # shapes only: nothing is allocated until the file is known to fit
    for plugin in reversed(live):
        try:
            tensors = plugin.decode_tensors(meta, tensors)
        except (LookupError, ValueError, TypeError) as exc:
            raise BitstreamError(f"tensor does not fit the model: {exc}") from None
    shapes = [(name, tuple(p.shape)) for name, p in meta.named_parameters()]
    if len(shapes) != len(tensors):
        raise BitstreamError(f"the model needs {len(shapes)} tensors, the file has {len(tensors)}")
    for (name, shape), qt in zip(shapes, tensors):
        if tuple(qt.shape) != shape:
            raise BitstreamError(f"tensor does not fit the model: {name} needs shape {shape}, the file has "
                                 f"{tuple(qt.shape)}")
        qt.name = name
    model = rebuild(HiNeRV(config), live)
    try:
        load_dequantized_(model, tensors)
    except (LookupError, ValueError) as exc:
        raise BitstreamError(f"tensor does not fit the model: {exc}") from None
    return model.eval()


@torch.no_grad()
def render_frames(model: nn.Module, start: int, stop: int) -> torch.Tensor:
    """The whole-frame output grids of frames ``start``..``stop``-1, rendered as one batch."""
    model.eval()
    device = next(model.parameters()).device
    return model(torch.arange(start, stop, device=device))


def render_chunks(start: int, stop: int, batch_size: int, frames: int) -> list[tuple[int, int]]:
    """The batches that render frames [start, stop) of a ``frames``-frame video: those of the grid of
    ``batch_size`` frames from frame 0 that meet the range. A range therefore renders each frame in the same batch as a whole decode does, and gives the
    same samples (a batch's float sums may round otherwise in another company of frames)."""
    first = start - start % batch_size
    return [(a, min(a + batch_size, frames)) for a in range(first, stop, batch_size)]


def frame_range(spec: str | tuple[int | None, int | None] | None, frames: int) -> tuple[int, int]:
    """``A:B`` (half-open; ``A:`` and ``:B`` allowed) or (A, B) as a range of the file's ``frames``, checked:
    a ValueError of one line for a range that is malformed, empty or outside the video."""
    if spec is None:
        return 0, frames
    if isinstance(spec, str):
        parts = spec.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            a, b = (int(p) if p.strip() else None for p in parts)
        except ValueError:
            raise ValueError(f"--frames must be A:B, A: or :B with frame numbers, got {spec!r}") from None
    else:
        a, b = spec
    a, b = 0 if a is None else a, frames if b is None else b
    if a >= b:
        raise ValueError(f"--frames {a}:{b} is empty (A must be below B)")
    if a < 0 or b > frames:
        raise ValueError(f"--frames {a}:{b} is outside the video: it has {frames} frames (0:{frames})")
    return a, b


class Decoding:
    """A parsed file, its model built and on its device, ready to render any frames.

    ``chunks(start, stop)`` yields the decoded samples of frames [start, stop) a batch at a time, as planes
    (each (n, h, w) of the format's dtype); every range gives the same samples as a whole decode.
    """

    def __init__(self, data: bytes, limits: DecodeLimits = DecodeLimits(), kernels: str = "auto",
                 device: str = "cpu") -> None:
        where = resolve_device(device)  # bad choices fail before the file is parsed
        resolve_kernels(kernels, where)
        parsed = read_bitstream(data, limits)
        self.format, self.frames, self.config = parsed.format, parsed.frames, parsed.config
        self.model = build_model(parsed.config, parsed.tensors, parsed.plugins).to(where).set_kernels(kernels)
        self.batch = max(1, min(RENDER_BATCH, limits.max_activation_bytes // frame_activation_bytes(parsed.config)))

    def chunks(self, start: int = 0, stop: int | None = None, progress: bool = False) -> Iterator[list[np.ndarray]]:
        start, stop = frame_range((start, stop), self.frames)
        layout = PlaneLayout.for_format(self.format)
        peak = self.format.max_value
        batches = render_chunks(start, stop, self.batch, self.frames)
        with torch.inference_mode():
            for a, b in tqdm(batches, desc="render", disable=not progress, unit="chunk"):
                grid = render_frames(self.model, a, b)
                samples = grid.mul(peak).round_().clamp_(0, peak).to(torch.int32).cpu()
                keep = slice(max(start, a) - a, min(stop, b) - a)
                yield [values.numpy()[keep].astype(self.format.dtype) for values in layout.grid_to_planes(samples)]


def decode_bytes(data: bytes, progress: bool = False, limits: DecodeLimits = DecodeLimits(),
                 kernels: str = "auto", device: str = "cpu", frames: str | tuple | None = None) -> Video:
    """Reconstruct the video a bitstream describes (``frames``: only the range ``A:B`` of it).

    Args:
        kernels: how to render (``HiNeRV.set_kernels``).
        device: where to render: ``'cpu'`` (the canonical decode: the same samples across runs and thread
            counts), ``'cuda'`` or ``'auto'`` (CUDA when available). A GPU renders faster and gives the same
            samples up to one rounded the other way where a value sits on a rounding boundary.
    """
    decoding = Decoding(data, limits, kernels, device)
    start, stop = frame_range(frames, decoding.frames)
    fmt = decoding.format
    planes = [np.empty((stop - start, h, w), dtype=fmt.dtype) for h, w in fmt.plane_shapes]
    done = 0
    for chunk in decoding.chunks(start, stop, progress):
        for plane, values in zip(planes, chunk):
            plane[done:done + len(values)] = values
        done += len(chunk[0])
    return Video(fmt, planes)


def decode_file(input_path: str | Path, output_path: str | Path | None = None, progress: bool = False,
                kernels: str = "auto", device: str = "cpu", frames: str | tuple | None = None) -> Video:
    """Decode a bitstream file; write the Y4M (atomically) if ``output_path`` is given."""
    video = decode_bytes(read_file_bytes(input_path), progress=progress, kernels=kernels, device=device,
                         frames=frames)
    if output_path is not None:
        write_y4m(output_path, video)
    return video


def stream_file(input_path: str | Path, out: BinaryIO | str | Path, frames: str | tuple | None = None,
                progress: bool = False, kernels: str = "auto", device: str = "cpu") -> tuple[VideoFormat, int]:
    """Decode to a Y4M stream a batch of frames at a time (``hinerv decode``): to ``out``, an open binary stream
    (standard output: a player starts before the decode ends), or a path (written atomically). The bytes equal
    ``write_y4m`` of ``decode_file``'s video. Returns the format and the number of frames written."""
    decoding = Decoding(read_file_bytes(input_path), kernels=kernels, device=device)
    start, stop = frame_range(frames, decoding.frames)
    header = checked_header(decoding.format)
    with (atomic_open(out) if isinstance(out, (str, Path)) else nullcontext(out)) as f:
        f.write(header)
        for planes in decoding.chunks(start, stop, progress):
            write_frames(f, decoding.format, planes)
            f.flush()
    return decoding.format, stop - start
