"""The hinerv file's tensors: packed, shapes from the MODEL section unless a coded plugin reshaped the model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bitstream.container import SectionType, read_container, write_container
from bitstream.errors import BitstreamError
from bitstream.fields import pack_dataclass
from bitstream.packed import BITS, COMPACT, IMPLICIT_SHAPES, NO_META
from bitstream.tensors import encode_tensors
from codec.bitstream_io import (PluginRecord, PluginsSection, StreamInfo, read_bitstream, write_bitstream,
                                write_model_config)
from codec.info import describe_file
from codec.layout import PlaneLayout
from codec.video import VideoFormat
from compress.entropy_quant import entropy_quant_, export_entropy
from compress.quantize import QuantConfig, export_quantized
from inr.model import HiNeRV, quant_axis
from inr.presets import build_config

FMT = VideoFormat(32, 24, 25, 1, "420", 8, (0, 0), ())
CODED = (PluginRecord("lowrank", "lowrank:rank=0.5", True, b"\x00"),)


def _model_and_tensors():
    layout = PlaneLayout.for_format(FMT)
    config = build_config(*layout.grid_size, 2, layout.channels, "xxs")
    torch.manual_seed(0)
    model = HiNeRV(config)
    with torch.no_grad():
        next(iter(model.parameters())).zero_()  # one all-zero tensor: it stores no scale
    return config, export_quantized(model, QuantConfig(bits=6), axis_fn=quant_axis)


def _packed_flags(data: bytes) -> int:
    section = next(s for s in read_container(data) if s.type == SectionType.PACKED_TENSORS)
    return section.payload[0]


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and np.array_equal(x.dequantize(), y.dequantize())


def test_a_file_leaves_the_shapes_to_the_model_section():
    config, tensors = _model_and_tensors()
    data = write_bitstream(FMT, 2, config, tensors)
    assert data[4] == 2 and _packed_flags(data) == IMPLICIT_SHAPES
    _same(tensors, read_bitstream(data).tensors)
    # the same tensors in a version-1 TENSORS section take more bytes
    v1 = write_container([(SectionType.VIDEO, pack_dataclass(StreamInfo(FMT, 2))),
                          (SectionType.MODEL, write_model_config(config)),
                          (SectionType.TENSORS, encode_tensors(tensors))])
    assert v1[4] == 1
    _same(tensors, read_bitstream(v1).tensors)
    assert len(data) < len(v1) - 4 * len(tensors), (len(data), len(v1), len(tensors))


def test_learned_step_tensors_make_a_compact_file_without_meta_bytes():
    """Learned-step tensors (one scale on the compact grid, the nominal width of their symbols, learned models on
    the compact grids) make a version-5 file, its records in bits, with no meta byte a record and one-byte steps;
    it decodes to the same values and widths, one byte a tensor smaller than with meta bytes."""
    config, _ = _model_and_tensors()
    torch.manual_seed(0)
    model = HiNeRV(config)
    entropy_quant_(model)
    model.eval()
    tensors = export_entropy(model)
    data = write_bitstream(FMT, 2, config, tensors)
    assert data[4] == 5 and _packed_flags(data) == IMPLICIT_SHAPES | NO_META | COMPACT | BITS
    back = read_bitstream(data).tensors
    _same(tensors, back)
    assert [t.bits for t in back] == [t.bits for t in tensors]
    wider = tensors[:-1] + [dataclasses.replace(tensors[-1], bits=tensors[-1].bits + 1)]
    with_meta = write_bitstream(FMT, 2, config, wider)
    assert with_meta[4] == 5 and len(with_meta) == len(data) + len(tensors)
    assert _packed_flags(with_meta) == IMPLICIT_SHAPES | COMPACT | BITS


def test_a_coded_plugin_keeps_the_shapes_in_the_file():
    config, tensors = _model_and_tensors()
    data = write_bitstream(FMT, 2, config, tensors, plugins=CODED)
    assert _packed_flags(data) == 0
    _same(tensors, read_bitstream(data).tensors)


def test_implicit_shapes_beside_a_coded_plugin_are_refused():
    config, tensors = _model_and_tensors()
    sections = [(s.type, s.payload) for s in read_container(write_bitstream(FMT, 2, config, tensors))
                if s.type != SectionType.END]
    sections.append((SectionType.PLUGINS, pack_dataclass(PluginsSection(CODED))))
    with pytest.raises(BitstreamError, match="implicit"):
        read_bitstream(write_container(sections))


def test_a_file_with_both_tensor_sections_is_refused():
    config, tensors = _model_and_tensors()
    sections = [(s.type, s.payload) for s in read_container(write_bitstream(FMT, 2, config, tensors))
                if s.type != SectionType.END]
    sections.append((SectionType.TENSORS, encode_tensors(tensors)))
    with pytest.raises(BitstreamError, match="one tensor section"):
        read_bitstream(write_container(sections))


def test_info_accounts_for_every_byte_of_a_packed_file(tmp_path):
    config, tensors = _model_and_tensors()
    path = tmp_path / "f.bin"
    path.write_bytes(write_bitstream(FMT, 2, config, tensors))
    info = describe_file(path)
    assert sum(info["breakdown"].values()) == info["bytes"] == path.stat().st_size
    assert 0 < info["breakdown"]["header"] < 80  # header + framing: VIDEO, MODEL, the section heads and CRCs
    assert [t["shape"] for t in info["tensors"]] == [t.shape for t in tensors]
    assert info["format_version"] == path.read_bytes()[4] == 2  # uniform tensors: meta bytes, fp16 steps
