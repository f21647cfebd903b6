"""``hinerv decode``: parse -> dequantize -> render frames -> write Y4M. Needs nothing but the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compress.quantize import load_dequantized_
from inr.kernels import resolve_kernels
from inr.model import HiNeRV

from .bitstream_io import DecodeLimits, frame_activation_bytes, read_bitstream, read_file_bytes
from .distributed import resolve_device
from .layout import PlaneLayout
from .train import render
from .video import Video
from .y4m import write_y4m

RENDER_BATCH = 4  # frames rendered at once


def build_model(config, tensors) -> HiNeRV:
    """The network described by a bitstream, with its dequantized weights."""
    from bitstream.errors import BitstreamError

    with torch.device("meta"):  # shapes only: nothing is allocated until the file is known to fit
        shapes = [(name, tuple(p.shape)) for name, p in HiNeRV(config).named_parameters()]
    if len(shapes) != len(tensors):
        raise BitstreamError(f"the model needs {len(shapes)} tensors, the file has {len(tensors)}")
    for (name, shape), qt in zip(shapes, tensors):
        if tuple(qt.shape) != shape:
            raise BitstreamError(f"tensor does not fit the model: {name} needs shape {shape}, the file has "
                                 f"{tuple(qt.shape)}")
        qt.name = name
    model = HiNeRV(config)
    try:
        load_dequantized_(model, tensors)
    except (LookupError, ValueError) as exc:
        raise BitstreamError(f"tensor does not fit the model: {exc}") from None
    return model.eval()


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
    fmt, frames, config, tensors = read_bitstream(data, limits)
    model = build_model(config, tensors).to(where).set_kernels(kernels)
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
