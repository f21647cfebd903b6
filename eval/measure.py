"""What an encode achieved, measured as a user would: decode the written file and score it against the source.

``codec.encoder.encode`` writes the file and says what it wrote; measuring it is the caller's (the CLI, the
sweeps), so an encode never pays for a decode it was not asked for.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from codec.decoder import decode_file
from codec.encoder import EncodeResult
from codec.video import Video, read_video
from eval.metrics import evaluate

__all__ = ["EncodeReport", "measure"]


@dataclass
class EncodeReport:
    """An encode's result with the quality of its decoded file (``--json`` writes this)."""

    input: str
    output: str
    bytes: int
    bpp: float
    psnr_y: float
    psnr_u: float | None
    psnr_v: float | None
    psnr_yuv: float
    psnr_rgb: float | None
    ms_ssim: float | None
    params: int
    macs_per_pixel: float  # multiply-accumulates per luma pixel to render a frame
    frames: int
    width: int
    height: int
    encode_seconds: float
    decode_seconds: float
    options: dict[str, Any]
    encode_cpu_seconds: float = 0.0  # CPU time of the encode, all threads, teachers apart
    estimated_bytes: int | None = None  # entropy: the file size rate-aware training estimated for these weights
    plugins: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # each plugin's summary
    per_frame_psnr_yuv: list[float] = dataclasses.field(default_factory=list)  # of the decoded file, frame by frame
    teacher_seconds: float = 0.0  # the plugins' teachers (codec.teacher): apart from encode_seconds
    teachers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)  # the encoder's warnings (e.g. an unreachable target)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def measure(result: EncodeResult, source: Video | None = None) -> EncodeReport:
    """Decode ``result.output`` as written and score it against ``source`` (default: the input file read again,
    its first ``result.frames`` frames)."""
    if source is None:
        source = read_video(result.input, frames=result.frames)
    t0 = time.monotonic()
    decoded = decode_file(result.output)
    decode_seconds = time.monotonic() - t0
    m = evaluate(source, decoded)
    return EncodeReport(
        input=result.input, output=result.output, bytes=result.bytes, bpp=result.bpp, psnr_y=m.psnr_y,
        psnr_u=m.psnr_u, psnr_v=m.psnr_v, psnr_yuv=m.psnr_yuv, psnr_rgb=m.psnr_rgb, ms_ssim=m.ms_ssim,
        params=result.params, macs_per_pixel=result.macs_per_pixel, frames=result.frames, width=result.width,
        height=result.height, encode_seconds=result.encode_seconds, encode_cpu_seconds=result.encode_cpu_seconds,
        decode_seconds=decode_seconds,
        options=result.options, estimated_bytes=result.estimated_bytes, plugins=result.plugins,
        per_frame_psnr_yuv=[float(v) for v in m.per_frame_psnr_yuv], teacher_seconds=result.teacher_seconds,
        teachers=result.teachers, notes=result.notes)
