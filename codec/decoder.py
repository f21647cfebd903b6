"""``hinerv decode``: parse -> dequantize -> render frames -> write Y4M. Needs nothing but the file."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

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
from .video import Video
from .y4m import write_y4m

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
    plugins = file_plugins(records, known_only)
    with torch.device("meta"):
        return rebuild(HiNeRV(config), plugins)


def build_model(config: HiNeRVConfig, tensors: list[QuantizedTensor],
                plugins: tuple[PluginRecord, ...] = ()) -> HiNeRV:
    """The network described by a bitstream, with its dequantized weights."""
    live = file_plugins(plugins)
    with torch.device("meta"):  # shapes only: nothing is allocated until the file is known to fit
        meta = rebuild(HiNeRV(config), live)
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
def render(model: nn.Module, frames: int, batch_size: int = 4, progress: bool = False) -> Iterator[torch.Tensor]:
    """Yield the whole-frame output grids of frames 0..frames-1 in chunks: (B, H, W, C) in [0, 1], on the model's
    device."""
    model.eval()
    device = next(model.parameters()).device
    for start in tqdm(range(0, frames, batch_size), desc="render", disable=not progress, unit="chunk"):
        t = torch.arange(start, min(start + batch_size, frames), device=device)
        yield model(t)


def decode_bytes(data: bytes, progress: bool = False, limits: DecodeLimits = DecodeLimits(),
                 kernels: str = "auto", device: str = "cpu") -> Video:
    """Reconstruct the video a bitstream describes.

    Args:
        kernels: how to render (``HiNeRV.set_kernels``).
        device: where to render: ``'cpu'`` (the canonical decode: the same samples across runs and thread
            counts), ``'cuda'`` or ``'auto'`` (CUDA when available). A GPU renders faster and gives the same
            samples up to one rounded the other way where a value sits on a rounding boundary.
    """
    where = resolve_device(device)  # bad choices fail before the file is parsed
    resolve_kernels(kernels, where)
    fmt, frames, config, tensors, plugins = read_bitstream(data, limits)
    model = build_model(config, tensors, plugins).to(where).set_kernels(kernels)
    batch = max(1, min(RENDER_BATCH, limits.max_activation_bytes // frame_activation_bytes(config)))
    layout = PlaneLayout.for_format(fmt)
    planes = [np.empty((frames, h, w), dtype=fmt.dtype) for h, w in fmt.plane_shapes]
    peak = fmt.max_value
    done = 0
    with torch.inference_mode():
        for chunk in render(model, frames, batch, progress=progress):
            samples = chunk.mul(peak).round_().clamp_(0, peak).to(torch.int32).cpu()
            for plane, values in zip(planes, layout.grid_to_planes(samples)):
                plane[done:done + values.shape[0]] = values.numpy()
            done += chunk.shape[0]
    return Video(fmt, planes)


def decode_file(input_path: str | Path, output_path: str | Path | None = None, progress: bool = False,
                kernels: str = "auto", device: str = "cpu") -> Video:
    """Decode a bitstream file; write the Y4M (atomically) if ``output_path`` is given."""
    video = decode_bytes(read_file_bytes(input_path), progress=progress, kernels=kernels, device=device)
    if output_path is not None:
        write_y4m(output_path, video)
    return video
