"""``hinerv info``: what a hinerv file holds and where its bytes go."""
from __future__ import annotations

import os
from dataclasses import asdict

import numpy as np
import torch

from bitstream.info import describe
from compress.hooks import PLUGINS
from inr.model import count_parameters, model_macs_per_pixel

from .bitstream_io import parameter_shapes, read_bitstream, read_file_bytes, shapes_implied
from .decoder import file_plugins, meta_model


def describe_file(path: str | os.PathLike) -> dict:
    """Header, model, plugins and a byte breakdown of a hinerv file (for ``hinerv info``)."""
    data = read_file_bytes(path)
    parsed = read_bitstream(data)
    fmt, frames, config = parsed.format, parsed.frames, parsed.config
    live = file_plugins(parsed.plugins, known_only=True)
    model = meta_model(config, live)
    summaries = iter([p.summary(model) for p in live])  # of the records file_plugins keeps, in order
    names = [n for n, _ in model.named_parameters()]
    layout = describe(data, shapes=parameter_shapes(config) if shapes_implied(parsed.plugins) else None)
    tensors = layout["tensors"]
    for i, (t, q) in enumerate(zip(tensors, parsed.tensors)):
        t["name"] = names[i] if i < len(names) else f"(plugin tensor {i - len(names)})"
        t["zero_fraction"] = float(np.mean(np.asarray(q.symbols) == 0)) if t["numel"] else 0.0
    totals = layout["tensor_totals"]
    side, scales, payload = totals["bytes_side"], totals["bytes_scales"], totals["bytes_payload"]
    total = len(data)
    return {
        "file": str(path), "bytes": total, "bpp": total * 8 / (fmt.width * fmt.height * frames),
        "format_version": data[4],  # the oldest version with what the file uses (bitstream/FORMAT.md §2)
        "frames": frames, "video": asdict(fmt), "model": asdict(config),
        "params": count_parameters(model), "base_size": [config.base_height, config.base_width],
        "canvas": [config.canvas_height, config.canvas_width],
        "plugins": [{"name": p.name, "options": p.options, "coded": p.coded, "data_bytes": len(p.data),
                     **({"summary": next(summaries)} if p.coded and p.name in PLUGINS else {})}
                    for p in parsed.plugins],
        "macs_per_pixel": measured_macs_per_pixel(model, fmt),
        "breakdown": {
            "header": total - side - scales - payload,
            "tensor side info": side,
            "tensor scales": scales,
            "tensor payload": payload,
        },
        "sections": {r["name"]: r["bytes"] for r in layout["sections"]},
        "tensors": tensors,
    }


def measured_macs_per_pixel(model: torch.nn.Module, fmt) -> float:
    """Multiply-accumulates per luma pixel to render one frame of the model as the file rebuilds it (plugins'
    modules included: ``inr.model.model_macs_per_pixel``)."""
    return model_macs_per_pixel(model) * model.config.height * model.config.width / (fmt.width * fmt.height)
