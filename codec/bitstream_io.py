"""The hinerv file: which sections it has and what goes in them (the byte layout is ``bitstream/``).

Sections: VIDEO (the source's format and frame count), MODEL (``HiNeRVConfig``), PACKED_TENSORS (every
parameter of the model, quantized and entropy-coded, in ``model.named_parameters()`` order: the names, and
the shapes unless a coded plugin reshaped the model, follow from the config and are not stored; files of
format version 1 have a TENSORS section instead), and PLUGINS when plugins made the file (each one's name,
canonical options and decode data; ``compress.hooks.Plugin``).
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from bitstream.container import SectionType, read_container, write_container
from bitstream.errors import BitstreamError
from bitstream.fields import pack_dataclass, unpack_dataclass
from bitstream.packed import decode_packed, encode_packed
from bitstream.tensors import QuantizedTensor, decode_tensors
from inr.config import HiNeRVConfig
from inr.model import HiNeRV

from .layout import PlaneLayout
from .video import VideoFormat

MAX_FILE_BYTES = 1 << 30  # refuse to read bitstreams above 1 GiB


@dataclass(frozen=True)
class DecodeLimits:
    """What a bitstream may ask a decoder to build; checked from the header, before anything is allocated.

    A file of a few KB can describe any size of video and (with all-zero tensors) a big model, so the size of
    the file bounds nothing: these do.
    """

    max_width: int = 16384  # luma width (as codec.y4m.Y4MLimits)
    max_height: int = 16384  # luma height
    max_output_bytes: int = 8 << 30  # decoded samples, all frames and planes (Y4MLimits.max_total_bytes)
    max_activation_bytes: int = 4 << 30  # largest float32 feature map of one frame in frame-mode rendering


def frame_activation_bytes(config: HiNeRVConfig) -> int:
    """Bytes of the largest feature map (float32) that rendering one whole frame creates: the MLP hidden layer
    or the upsampled input of the widest stage."""
    sizes = config.stage_sizes()
    return 4 * max(sizes[n + 1][0] * sizes[n + 1][1] * max(s.in_channels, s.out_channels * s.expansion)
                   for n, s in enumerate(config.stage_shapes()))


def check_decodable(fmt: VideoFormat, frames: int, config: HiNeRVConfig,
                    limits: DecodeLimits = DecodeLimits()) -> None:
    """Refuse, with a BitstreamError, a file whose VIDEO and MODEL sections disagree or exceed ``limits``."""
    if fmt.width > limits.max_width or fmt.height > limits.max_height:
        raise BitstreamError(f"video {fmt.width}x{fmt.height} is over the decoder's limit of "
                             f"{limits.max_width}x{limits.max_height}")
    output = fmt.frame_bytes * frames
    if output > limits.max_output_bytes:
        raise BitstreamError(f"the decoded video would take {output:,} bytes ({frames} frames of {fmt.width}x"
                             f"{fmt.height}), over the decoder's limit of {limits.max_output_bytes:,}")
    layout = PlaneLayout.for_format(fmt)
    want = (*layout.grid_size, layout.channels)
    got = (config.height, config.width, config.out_channels)
    if got != want:
        raise BitstreamError(f"the MODEL section renders {got[0]}x{got[1]}x{got[2]}, the VIDEO section "
                             f"({fmt.width}x{fmt.height} {fmt.chroma}) needs {want[0]}x{want[1]}x{want[2]}")
    activation = frame_activation_bytes(config)
    if activation > limits.max_activation_bytes:
        raise BitstreamError(f"rendering one frame of this model needs a {activation:,}-byte feature map, over "
                             f"the decoder's limit of {limits.max_activation_bytes:,}")


@dataclass(frozen=True)
class StreamInfo:
    """The VIDEO section: what the decoder must produce."""

    format: VideoFormat
    frames: int

    def __post_init__(self) -> None:
        if not 1 <= self.frames <= 1_000_000:
            raise ValueError(f"frame count must be in [1, 1000000], got {self.frames}")


@dataclass(frozen=True)
class PluginRecord:
    """One plugin that made the file (the PLUGINS section)."""

    name: str  # the plugin's registered name
    options: str  # its canonical spec, ``name:key=value,...`` (compress.plugin_spec)
    coded: bool  # the decoder must run the plugin to read the file (it changed what the file codes)
    data: bytes  # what its decoder needs beyond the options (Plugin.export_data)


@dataclass(frozen=True)
class PluginsSection:
    """The PLUGINS section: the plugins in the order they ran."""

    plugins: tuple[PluginRecord, ...]
    version: int = 1

    def __post_init__(self) -> None:
        if self.version != 1:
            raise ValueError(f"PLUGINS section version {self.version}: this decoder reads version 1")
        if not self.plugins:
            raise ValueError("an empty PLUGINS section (a file without plugins has none)")


class ParsedFile(NamedTuple):
    """A hinerv file, parsed and validated."""

    format: VideoFormat
    frames: int
    config: HiNeRVConfig
    tensors: list[QuantizedTensor]  # without names: the model's parameter order names them
    plugins: tuple[PluginRecord, ...]


def write_bitstream(fmt: VideoFormat, frames: int, config: HiNeRVConfig, tensors: list[QuantizedTensor],
                    payload_bits: list[float | None] | None = None,
                    plugins: tuple[PluginRecord, ...] = ()) -> bytes:
    """Serialise a trained, quantized model and its video parameters into a hinerv file.

    ``payload_bits``: per tensor, the bits its learned entropy model codes it in, for a stand-in stream instead of
    coded symbols (see ``bitstream.packed.encode_packed``; None entries are coded): the file's exact layout for
    an estimated rate; such bytes are for counting, not for writing. The tensors' shapes are left out unless a
    coded plugin reshaped the model (the decoder then cannot know them from the MODEL section alone).
    """
    sections = [(SectionType.VIDEO, pack_dataclass(StreamInfo(fmt, frames))),
                (SectionType.MODEL, write_model_config(config)),
                (SectionType.PACKED_TENSORS, encode_packed(tensors, shapes_implied(plugins), payload_bits))]
    if plugins:
        sections.append((SectionType.PLUGINS, pack_dataclass(PluginsSection(tuple(plugins)))))
    return write_container(sections)


def shapes_implied(plugins: tuple[PluginRecord, ...]) -> bool:
    """Whether the MODEL section gives the tensors' shapes: unless a coded plugin reshaped the model."""
    return not any(p.coded for p in plugins)


def parameter_shapes(config: HiNeRVConfig) -> list[tuple[int, ...]]:
    """The shapes of the model's parameters in order: what a file without coded plugins leaves out."""
    with torch.device("meta"):
        return [tuple(p.shape) for p in HiNeRV(config).parameters()]


def _sections(data: bytes) -> dict[int, bytes]:
    sections = read_container(data)
    found: dict[int, bytes] = {}
    for s in sections:
        if s.type in found:
            raise BitstreamError(f"section {SectionType(s.type).name} appears twice")
        found[s.type] = s.payload
    for need in (SectionType.VIDEO, SectionType.MODEL):
        if need not in found:
            raise BitstreamError(f"missing section {need.name}")
    kinds = [t for t in (SectionType.TENSORS, SectionType.PACKED_TENSORS) if t in found]
    if len(kinds) != 1:
        raise BitstreamError("missing section PACKED_TENSORS" if not kinds else
                             "a file has one tensor section, this one has TENSORS and PACKED_TENSORS")
    return found


def read_tensors(found: dict[int, bytes], config: HiNeRVConfig,
                 plugins: tuple[PluginRecord, ...]) -> list[QuantizedTensor]:
    """The file's tensors from whichever tensor section it has; shapes the packed one leaves out come from the
    MODEL section (only a file without coded plugins may leave them out)."""
    if SectionType.TENSORS in found:
        return decode_tensors(found[SectionType.TENSORS])
    shapes = parameter_shapes(config) if shapes_implied(plugins) else None
    return decode_packed(found[SectionType.PACKED_TENSORS], shapes)


# MODEL payloads of the versions before: version 2 (and any config without motion today) has no ``motion`` field,
# version 1 (before ``HiNeRVConfig.luma``) no luma field either
_HINTS = typing.get_type_hints(HiNeRVConfig)


def _layout(name: str, without: set[str]) -> type:
    return dataclasses.make_dataclass(
        name, [(f.name, _HINTS[f.name]) for f in dataclasses.fields(HiNeRVConfig) if f.name not in without],
        frozen=True)


_ModelV3 = _layout("HiNeRVConfigV3", set())
_ModelV2 = _layout("HiNeRVConfigV2", {"motion"})
_ModelV1 = _layout("HiNeRVConfigV1", {"motion", "luma"})
# (layout, the version byte it must carry, the fields it lacks): one layout a version, one version a layout
_LAYOUTS = ((_ModelV3, 3, {}), (_ModelV2, 2, {"motion": None}), (_ModelV1, 1, {"motion": None, "luma": None}))


def write_model_config(config: HiNeRVConfig) -> bytes:
    """The MODEL payload: version 2's layout for a config without motion (the bytes such files always had)."""
    if config.motion is not None:
        return pack_dataclass(config)
    return pack_dataclass(_ModelV2(**{f.name: getattr(config, f.name) for f in dataclasses.fields(_ModelV2)}))


def read_model_config(payload: bytes) -> HiNeRVConfig:
    """The MODEL section of any version: an older payload reads as the same model today (no motion, no luma).

    Each config has one spelling, the one ``write_model_config`` gives it: version 3's layout carries the byte 3
    and a motion, version 2's and 1's their own bytes (``HiNeRVConfig`` would promote a 2 beside a motion to 3)."""
    first = None
    for layout, version, missing in _LAYOUTS:
        try:
            stored = unpack_dataclass(layout, payload)
        except BitstreamError as e:
            first = first or e
            continue
        if layout is _ModelV3 and stored.motion is None:
            first = first or BitstreamError("MODEL: a version-2 config written with a motion field")
            continue
        if stored.version != version:
            first = first or BitstreamError(f"MODEL: version {stored.version} in version {version}'s layout")
            continue
        fields = {f.name: getattr(stored, f.name) for f in dataclasses.fields(layout)}
        fields.update(version=3 if layout is _ModelV3 else 2, **missing)
        try:
            return HiNeRVConfig(**fields)
        except ValueError as e:
            raise BitstreamError(f"invalid HiNeRVConfig in MODEL (version {version}): {e}") from None
    raise first


def read_bitstream(data: bytes, limits: DecodeLimits = DecodeLimits()) -> ParsedFile:
    """Parse and validate a hinerv file."""
    found = _sections(data)
    info = unpack_dataclass(StreamInfo, found[SectionType.VIDEO])
    config = read_model_config(found[SectionType.MODEL])
    if config.frames != info.frames:
        raise BitstreamError(f"model covers {config.frames} frames, the video has {info.frames}")
    check_decodable(info.format, info.frames, config, limits)
    plugins = (unpack_dataclass(PluginsSection, found[SectionType.PLUGINS]).plugins
               if SectionType.PLUGINS in found else ())
    return ParsedFile(info.format, info.frames, config, read_tensors(found, config, plugins), plugins)


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """Read a bitstream file, refusing absurd sizes before allocating."""
    size = Path(path).stat().st_size
    if size > MAX_FILE_BYTES:
        raise BitstreamError(f"{path}: {size:,} bytes is larger than any hinerv file ({MAX_FILE_BYTES:,} max)")
    return Path(path).read_bytes()
