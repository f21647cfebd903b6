"""The MODEL section: today's config (with its luma stage, with global motion) round-trips, a config without
motion keeps version 2's bytes, and version-1 payloads still read."""
import dataclasses
from pathlib import Path

import pytest

from bitstream.container import SectionType
from bitstream.errors import BitstreamError
from bitstream.fields import pack_dataclass
from codec.bitstream_io import (_ModelV1, _ModelV2, _ModelV3, _sections, read_file_bytes, read_model_config,
                                write_model_config)
from inr.config import GlobalMotion, HiNeRVConfig, LumaStage

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_entropy.bin"


def config(**kw) -> HiNeRVConfig:
    base = dict(frames=4, height=24, width=32, out_channels=6, strides=(2,), channels=(8,), depths=(1,),
                expansions=(1,), grid_frames=1, grid_channels=1, local_frames=1, local_channels=2)
    return HiNeRVConfig(**{**base, **kw})


PAN = GlobalMotion.from_positions([(0, 0), (1, 3), (2, 6), (3, 9)], precision=2)


@pytest.mark.parametrize("luma", [None, LumaStage(8), LumaStage(12, depth=2, expansion=3)])
@pytest.mark.parametrize("motion", [None, PAN])
def test_todays_config_round_trips(luma, motion):
    cfg = config(luma=luma, motion=motion)
    assert read_model_config(write_model_config(cfg)) == cfg
    assert cfg.version == (3 if motion else 2)


def test_a_config_without_motion_keeps_version_2s_bytes():
    cfg = config(luma=LumaStage(8))
    v2 = _ModelV2(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(_ModelV2)})
    assert write_model_config(cfg) == pack_dataclass(v2)
    assert len(write_model_config(config(luma=LumaStage(8), motion=PAN))) > len(pack_dataclass(v2))
    with pytest.raises(BitstreamError, match="motion field"):  # one layout a config: no absent-motion byte
        read_model_config(pack_dataclass(cfg))


def test_a_config_with_motion_has_one_spelling():
    cfg = config(luma=LumaStage(8), motion=PAN)
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(_ModelV3)}
    assert pack_dataclass(_ModelV3(**fields)) == write_model_config(cfg)
    with pytest.raises(BitstreamError, match="version 2 in version 3's layout"):  # HiNeRVConfig would promote it
        read_model_config(pack_dataclass(_ModelV3(**{**fields, "version": 2})))


def test_a_version_1_payload_reads_as_the_same_model_without_a_luma_stage():
    payload = _sections(read_file_bytes(FIXTURE))[SectionType.MODEL]
    cfg = read_model_config(payload)
    assert cfg.luma is None and cfg.motion is None and cfg.version == HiNeRVConfig.version == 2
    old = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(_ModelV1) if f.name != "version"}
    assert pack_dataclass(_ModelV1(**old, version=1)) == payload  # the same fields, v1's layout
    assert write_model_config(cfg) != payload  # version 2's layout has the luma field


def test_bad_payloads_are_refused_with_the_current_layouts_error():
    good = write_model_config(config(luma=LumaStage(8), motion=PAN))
    with pytest.raises(BitstreamError):
        read_model_config(good[:-1])  # truncated
    with pytest.raises(BitstreamError):
        read_model_config(good + b"\x00")  # trailing byte
    v1_fields = {f.name: getattr(config(), f.name) for f in dataclasses.fields(_ModelV1)}
    with pytest.raises(BitstreamError, match="HiNeRVConfig"):  # the v1 layout under another version number
        read_model_config(pack_dataclass(_ModelV1(**{**v1_fields, "version": 3})))
    with pytest.raises(BitstreamError, match="version 1"):  # a v1 payload whose fields are invalid
        read_model_config(pack_dataclass(_ModelV1(**{**v1_fields, "version": 1, "frames": 0})))
