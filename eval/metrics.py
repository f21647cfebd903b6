"""Objective quality metrics for YUV video: PSNR per plane, PSNR-YUV, PSNR-RGB and MS-SSIM.

Conventions (docs/design.md §2), stated once here and relied on everywhere:

* **Peak.** PSNR uses the native peak of the bit depth, ``2**bit_depth - 1`` (255, 1023, 4095).
* **Sequence PSNR = mean of per-frame PSNR.** Every PSNR is computed per frame from that frame's MSE and the
  per-frame values are averaged over frames (not PSNR of the sequence MSE). This is the convention of the
  learned-video-coding literature (CompressAI, DCVC, HiNeRV).
* **Identical frames.** A frame with MSE 0 would have infinite PSNR; each per-frame, per-plane PSNR is capped at
  ``PSNR_CAP_DB`` = 100 dB *before* averaging, so a lossless frame counts as 100 dB and sequence averages stay
  finite. (100 dB is far above anything a lossy codec reaches: at 8 bits an MSE of 6.5e-6.)
* **PSNR-YUV** = (6·PSNR_Y + PSNR_U + PSNR_V) / 8 per frame, then averaged over frames. For ``mono`` it is PSNR_Y.
* **PSNR-RGB.** YCbCr → R'G'B' with BT.709 matrix coefficients and *full-range* YCbCr by default (options: BT.601
  matrix, limited "video" range). Chroma is upsampled to luma resolution by sample replication (nearest
  neighbour; odd sizes are cropped). RGB is kept in float at the native peak and clipped to ``[0, peak]``
  (``rgb_round=True`` also rounds to integers, as a PNG would). The MSE is taken jointly over the three channels
  of a frame, then PSNR per frame, then the mean over frames. A ``mono`` source uses neutral chroma
  (R = G = B). The HiNeRV paper's published RGB PSNR came from ffmpeg-converted 8-bit PNGs, i.e.
  ``matrix="bt601", full_range=False, rgb_round=True``.
* **MS-SSIM** on Y (optionally on RGB) with ``pytorch_msssim`` at ``data_range = peak``, per frame, averaged over
  frames. Five scales need ``min(H, W) > (win_size - 1) * 16``: the window is the largest odd size <= 11 that
  fits (11 from 161 px up, 9 for 144x176, 5 for 72x88). If even a 3-tap window does not fit (min side <= 32),
  single-scale SSIM with the largest odd window <= min(11, min side) is reported instead; ``Metrics.ms_ssim_method``
  says which.

Frames are processed in chunks of about ``CHUNK_PIXELS`` luma samples, so 600 frames of 1080p never exist in
float all at once; :class:`MetricsAccumulator` takes the frames chunk by chunk if the caller streams them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim

PSNR_CAP_DB = 100.0
CHUNK_PIXELS = 2 * 1920 * 1080  # luma samples per chunk (two 1080p frames)

#: chroma name -> (sy, sx) subsampling of the Cb/Cr planes; None for monochrome.
CHROMA_SUBSAMPLING: dict[str, tuple[int, int] | None] = {
    "mono": None,
    "420": (2, 2),
    "420jpeg": (2, 2),
    "420mpeg2": (2, 2),
    "420paldv": (2, 2),
    "422": (1, 2),
    "444": (1, 1),
}

#: matrix name -> (Kr, Kb) luma coefficients.
MATRICES: dict[str, tuple[float, float]] = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}

MSSSIM_WEIGHTS_LEVELS = 5


def peak_value(bit_depth: int) -> int:
    """Native peak ``2**bit_depth - 1`` for 1..16 bits."""
    if not isinstance(bit_depth, (int, np.integer)) or not 1 <= int(bit_depth) <= 16:
        raise ValueError(f"bit_depth must be an integer in 1..16, got {bit_depth!r}")
    return (1 << int(bit_depth)) - 1


def psnr_from_mse(mse: np.ndarray | float, peak: float, cap: float = PSNR_CAP_DB) -> np.ndarray:
    """PSNR in dB from MSE, ``10·log10(peak² / mse)``, capped at ``cap`` (MSE 0 gives ``cap``)."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(float(peak) ** 2 / mse)
    return np.minimum(out, cap)


def frame_mse(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Per-frame MSE in float64 of arrays shaped ``(T, ...)``; every axis after the first is averaged."""
    ref, dist = np.asarray(ref), np.asarray(dist)
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs distorted {dist.shape}")
    d = ref.astype(np.float64) - dist.astype(np.float64)
    d *= d
    return d.reshape(d.shape[0], -1).mean(axis=1)


def psnr_per_frame(ref: np.ndarray, dist: np.ndarray, *, bit_depth: int, cap: float = PSNR_CAP_DB,
                   chunk_pixels: int = CHUNK_PIXELS) -> np.ndarray:
    """Per-frame PSNR (T,) of one plane shaped (T, h, w) (or (h, w) for one frame) at the native peak."""
    ref, dist = _as_tplane(ref), _as_tplane(dist)
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs distorted {dist.shape}")
    step = _chunk_frames(ref.shape[1] * ref.shape[2], chunk_pixels)
    mse = np.concatenate([frame_mse(ref[i:i + step], dist[i:i + step]) for i in range(0, len(ref), step)])
    return psnr_from_mse(mse, peak_value(bit_depth), cap)


def psnr(ref: np.ndarray, dist: np.ndarray, *, bit_depth: int, cap: float = PSNR_CAP_DB) -> float:
    """Sequence PSNR of one plane: the mean over frames of the per-frame PSNR."""
    return float(np.mean(psnr_per_frame(ref, dist, bit_depth=bit_depth, cap=cap)))


def psnr_yuv(psnr_y: Any, psnr_u: Any = None, psnr_v: Any = None) -> Any:
    """(6·Y + U + V) / 8, elementwise; Y alone when U and V are None (monochrome)."""
    if psnr_u is None and psnr_v is None:
        return psnr_y
    return (6.0 * np.asarray(psnr_y) + np.asarray(psnr_u) + np.asarray(psnr_v)) / 8.0


def upsample_chroma(plane: np.ndarray, subsampling: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Replicate each chroma sample sy×sx times (nearest neighbour) and crop to the luma ``shape`` (h, w).

    ``plane`` is (..., hc, wc) with hc = ceil(h / sy), wc = ceil(w / sx).
    """
    sy, sx = subsampling
    out = plane
    if sy > 1:
        out = np.repeat(out, sy, axis=-2)
    if sx > 1:
        out = np.repeat(out, sx, axis=-1)
    return out[..., : shape[0], : shape[1]]


def _range_params(bit_depth: int, full_range: bool) -> tuple[float, float, float, float]:
    """(y_offset, y_scale, c_offset, c_scale) mapping normalised E'Y in [0,1], E'Pb/Pr in [-½,½] to codes."""
    peak = peak_value(bit_depth)
    if full_range:
        return 0.0, float(peak), float(1 << (bit_depth - 1)), float(peak)
    k = float(1 << (bit_depth - 8)) if bit_depth >= 8 else 2.0 ** (bit_depth - 8)
    return 16.0 * k, 219.0 * k, 128.0 * k, 224.0 * k


def _matrix(matrix: str) -> tuple[float, float, float]:
    try:
        kr, kb = MATRICES[matrix]
    except KeyError:
        raise LookupError(f"unknown colour matrix {matrix!r}; known: {', '.join(MATRICES)}") from None
    return kr, kb, 1.0 - kr - kb


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, *, bit_depth: int, matrix: str = "bt709",
               full_range: bool = True, clip: bool = True, round_: bool = False) -> np.ndarray:
    """Y'CbCr at luma resolution (equal shapes (..., H, W)) → R'G'B' float64 (..., 3, H, W) at the native peak.

    E'Y = (Y - yo)/ys, E'Pb = (Cb - co)/cs, E'Pr = (Cr - co)/cs with full range yo = 0, ys = cs = peak,
    co = 2**(bits-1); limited range yo = 16·2**(bits-8), ys = 219·2**(bits-8), co = 128·2**(bits-8),
    cs = 224·2**(bits-8). Then R = Y + 2(1-Kr)Pr, B = Y + 2(1-Kb)Pb, G = (Y - Kr·R - Kb·B)/Kg, scaled by peak.
    """
    kr, kb, kg = _matrix(matrix)
    peak = peak_value(bit_depth)
    yo, ys, co, cs = _range_params(bit_depth, full_range)
    ey = (np.asarray(y, dtype=np.float64) - yo) / ys
    pb = (np.asarray(u, dtype=np.float64) - co) / cs
    pr = (np.asarray(v, dtype=np.float64) - co) / cs
    r = ey + 2.0 * (1.0 - kr) * pr
    b = ey + 2.0 * (1.0 - kb) * pb
    g = (ey - kr * r - kb * b) / kg
    rgb = np.stack([r, g, b], axis=-3) * peak
    if round_:
        np.rint(rgb, out=rgb)
    if clip:
        np.clip(rgb, 0.0, peak, out=rgb)
    return rgb


def rgb_to_yuv(rgb: np.ndarray, *, bit_depth: int, matrix: str = "bt709",
               full_range: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`yuv_to_rgb` (no rounding, no subsampling): (..., 3, H, W) → float64 (Y, Cb, Cr)."""
    kr, kb, kg = _matrix(matrix)
    peak = peak_value(bit_depth)
    yo, ys, co, cs = _range_params(bit_depth, full_range)
    rgb = np.asarray(rgb, dtype=np.float64) / peak
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    ey = kr * r + kg * g + kb * b
    pb = (b - ey) / (2.0 * (1.0 - kb))
    pr = (r - ey) / (2.0 * (1.0 - kr))
    return ey * ys + yo, pb * cs + co, pr * cs + co


def msssim_window(height: int, width: int, max_win: int = 11) -> tuple[str, int]:
    """Choose ('ms-ssim', win) with the largest odd win <= max_win and min side > (win-1)·16, else ('ssim', win)."""
    side = min(height, width)
    for win in range(max_win if max_win % 2 else max_win - 1, 2, -2):
        if side > (win - 1) * 2 ** (MSSSIM_WEIGHTS_LEVELS - 1):
            return "ms-ssim", win
    win = min(max_win, side if side % 2 else side - 1)
    return "ssim", max(win, 1)


def msssim_per_frame(ref: np.ndarray, dist: np.ndarray, *, data_range: float,
                     chunk_pixels: int = CHUNK_PIXELS) -> tuple[np.ndarray, str]:
    """Per-frame MS-SSIM (T,) of frames (T, H, W) or (T, C, H, W); returns (values, "ms-ssim win=N" | "ssim win=N").

    Multi-channel frames average the per-channel scores (pytorch_msssim's convention). Computed in float32.
    """
    ref, dist = np.asarray(ref), np.asarray(dist)
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs distorted {dist.shape}")
    if ref.ndim == 3:
        ref, dist = ref[:, None], dist[:, None]
    if ref.ndim != 4:
        raise ValueError(f"expected frames shaped (T, H, W) or (T, C, H, W), got {ref.shape}")
    t, c, h, w = ref.shape
    kind, win = msssim_window(h, w)
    step = _chunk_frames(c * h * w, chunk_pixels)
    out = []
    with torch.no_grad():
        for i in range(0, t, step):
            x = torch.from_numpy(np.ascontiguousarray(ref[i:i + step], dtype=np.float32))
            y = torch.from_numpy(np.ascontiguousarray(dist[i:i + step], dtype=np.float32))
            if kind == "ms-ssim":
                val = _ms_ssim(x, y, data_range=data_range, size_average=False, win_size=win)
            else:
                val = _ssim(x, y, data_range=data_range, size_average=False, win_size=win)
            out.append(val.double().numpy().reshape(-1))
    return np.concatenate(out) if out else np.zeros(0), f"{kind} win={win}"


@dataclass
class Metrics:
    """Sequence metrics (each the mean over frames of per-frame values); None where not computed/applicable."""

    psnr_y: float
    psnr_u: float | None
    psnr_v: float | None
    psnr_yuv: float
    psnr_rgb: float | None
    ms_ssim: float | None
    per_frame_psnr_yuv: list[float]
    ms_ssim_rgb: float | None = None
    num_frames: int = 0
    bit_depth: int = 8
    chroma: str = "420"
    rgb_conversion: str | None = None  # e.g. "bt709 full-range, chroma replicated, float"
    ms_ssim_method: str | None = None  # e.g. "ms-ssim win=11" or "ssim win=3"
    psnr_cap_db: float = PSNR_CAP_DB

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (floats, lists, strings, None)."""
        d = dataclasses.asdict(self)
        return {k: ([float(x) for x in v] if isinstance(v, list) else v) for k, v in d.items()}


def _as_tplane(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"a plane must be (T, h, w) or (h, w), got shape {a.shape}")
    return a


def _chunk_frames(pixels_per_frame: int, chunk_pixels: int) -> int:
    return max(1, int(chunk_pixels) // max(1, int(pixels_per_frame)))


def _infer_chroma(shapes: list[tuple[int, ...]]) -> str:
    if len(shapes) == 1:
        return "mono"
    (t, h, w) = shapes[0]
    for name in ("444", "422", "420"):
        sy, sx = CHROMA_SUBSAMPLING[name]  # type: ignore[misc]
        if all(s == (t, -(-h // sy), -(-w // sx)) for s in shapes[1:]):
            return name
    raise ValueError(f"cannot infer the chroma format from plane shapes {shapes}; pass chroma=")


def _unpack(obj: Any, bit_depth: int | None, chroma: str | None,
            role: str) -> tuple[list[np.ndarray], int | None, str | None]:
    """Planes (T, h, w) from a Video-like object (``.format``, ``.planes``), a list of planes or one array."""
    if hasattr(obj, "planes") and hasattr(obj, "format"):
        fmt = obj.format
        for name, given, own in (("bit_depth", bit_depth, getattr(fmt, "bit_depth", None)),
                                 ("chroma", chroma, getattr(fmt, "chroma", None))):
            if given is not None and own is not None and given != own:
                raise ValueError(f"{role}: {name}={given!r} passed but the video says {own!r}")
        bit_depth = bit_depth if bit_depth is not None else getattr(fmt, "bit_depth", None)
        chroma = chroma if chroma is not None else getattr(fmt, "chroma", None)
        planes = list(obj.planes)
    elif isinstance(obj, np.ndarray):
        planes = [obj]
    elif isinstance(obj, (list, tuple)):
        planes = list(obj)
    else:
        raise TypeError(f"{role}: expected a Video, a list of planes or an array, got {type(obj).__name__}")
    if not 1 <= len(planes) <= 3 or len(planes) == 2:
        raise ValueError(f"{role}: expected 1 (mono) or 3 planes, got {len(planes)}")
    return [_as_tplane(p) for p in planes], bit_depth, chroma


class MetricsAccumulator:
    """Accumulates per-frame metrics chunk by chunk; :meth:`result` gives the sequence :class:`Metrics`.

    ``update(ref_planes, dist_planes)`` takes lists of planes (T_chunk, h, w) in the declared chroma format.
    """

    def __init__(self, *, bit_depth: int, chroma: str, rgb: bool = True, msssim: bool = True,
                 msssim_rgb: bool = False, matrix: str = "bt709", full_range: bool = True,
                 rgb_round: bool = False, psnr_cap: float = PSNR_CAP_DB, chunk_pixels: int = CHUNK_PIXELS):
        if chroma not in CHROMA_SUBSAMPLING:
            raise ValueError(f"unknown chroma {chroma!r}; expected one of {', '.join(CHROMA_SUBSAMPLING)}")
        _matrix(matrix)
        self.peak = peak_value(bit_depth)
        self.bit_depth, self.chroma = int(bit_depth), chroma
        self.rgb, self.msssim, self.msssim_rgb = rgb, msssim, msssim_rgb
        self.matrix, self.full_range, self.rgb_round = matrix, full_range, rgb_round
        self.cap, self.chunk_pixels = psnr_cap, chunk_pixels
        self._psnr: list[list[np.ndarray]] = [[], [], []]
        self._rgb: list[np.ndarray] = []
        self._ms: list[np.ndarray] = []
        self._ms_rgb: list[np.ndarray] = []
        self._ms_method: str | None = None
        self._luma_shape: tuple[int, int] | None = None

    def _check(self, planes: list[np.ndarray], role: str) -> None:
        sub = CHROMA_SUBSAMPLING[self.chroma]
        want = 1 if sub is None else 3
        if len(planes) != want:
            raise ValueError(f"{role}: chroma {self.chroma!r} needs {want} planes, got {len(planes)}")
        t, h, w = planes[0].shape
        if self._luma_shape is not None and (h, w) != self._luma_shape:
            raise ValueError(f"{role}: luma {h}x{w} differs from earlier chunks {self._luma_shape}")
        if sub is not None:
            expect = (t, -(-h // sub[0]), -(-w // sub[1]))
            for p in planes[1:]:
                if p.shape != expect:
                    raise ValueError(f"{role}: chroma plane {p.shape} does not match {self.chroma} "
                                     f"for luma {planes[0].shape}; expected {expect}")

    def update(self, ref_planes: Sequence[np.ndarray], dist_planes: Sequence[np.ndarray]) -> None:
        """Add frames; both arguments are lists of planes with the same shapes."""
        ref = [_as_tplane(p) for p in ref_planes]
        dist = [_as_tplane(p) for p in dist_planes]
        self._check(ref, "reference")
        self._check(dist, "distorted")
        for i, (a, b) in enumerate(zip(ref, dist)):
            if a.shape != b.shape:
                raise ValueError(f"plane {i}: reference {a.shape} vs distorted {b.shape}")
        t, h, w = ref[0].shape
        self._luma_shape = (h, w)
        step = _chunk_frames(h * w, self.chunk_pixels)
        for s in range(0, t, step):
            self._update_chunk([p[s:s + step] for p in ref], [p[s:s + step] for p in dist])

    def _to_rgb(self, planes: list[np.ndarray]) -> np.ndarray:
        y = planes[0]
        sub = CHROMA_SUBSAMPLING[self.chroma]
        if sub is None:
            mid = float(1 << (self.bit_depth - 1)) if self.full_range else 128.0 * 2.0 ** (self.bit_depth - 8)
            u = v = np.full(y.shape, mid)
        else:
            u = upsample_chroma(planes[1], sub, y.shape[-2:])
            v = upsample_chroma(planes[2], sub, y.shape[-2:])
        return yuv_to_rgb(y, u, v, bit_depth=self.bit_depth, matrix=self.matrix, full_range=self.full_range,
                          round_=self.rgb_round)

    def _update_chunk(self, ref: list[np.ndarray], dist: list[np.ndarray]) -> None:
        for i, (a, b) in enumerate(zip(ref, dist)):
            self._psnr[i].append(psnr_from_mse(frame_mse(a, b), self.peak, self.cap))
        if self.msssim:
            vals, self._ms_method = msssim_per_frame(ref[0], dist[0], data_range=self.peak,
                                                     chunk_pixels=self.chunk_pixels)
            self._ms.append(vals)
        if self.rgb or self.msssim_rgb:
            ra, rb = self._to_rgb(ref), self._to_rgb(dist)
            if self.rgb:
                self._rgb.append(psnr_from_mse(frame_mse(ra, rb), self.peak, self.cap))
            if self.msssim_rgb:
                vals, _ = msssim_per_frame(ra, rb, data_range=self.peak, chunk_pixels=self.chunk_pixels)
                self._ms_rgb.append(vals)

    def result(self) -> Metrics:
        """The sequence metrics over every frame added so far."""
        if not self._psnr[0]:
            raise ValueError("no frames were added")
        per = [np.concatenate(p) if p else None for p in self._psnr]
        frame_yuv = psnr_yuv(per[0], per[1], per[2])

        def mean(parts: list[np.ndarray]) -> float | None:
            return float(np.mean(np.concatenate(parts))) if parts else None

        conv = None
        if self.rgb or self.msssim_rgb:
            conv = (f"{self.matrix} {'full' if self.full_range else 'limited'}-range, chroma replicated, "
                    f"{'rounded' if self.rgb_round else 'float'}, clipped")
        return Metrics(
            psnr_y=float(np.mean(per[0])),
            psnr_u=None if per[1] is None else float(np.mean(per[1])),
            psnr_v=None if per[2] is None else float(np.mean(per[2])),
            psnr_yuv=float(np.mean(frame_yuv)),
            psnr_rgb=mean(self._rgb),
            ms_ssim=mean(self._ms),
            per_frame_psnr_yuv=[float(x) for x in frame_yuv],
            ms_ssim_rgb=mean(self._ms_rgb),
            num_frames=int(len(per[0])),
            bit_depth=self.bit_depth,
            chroma=self.chroma,
            rgb_conversion=conv,
            ms_ssim_method=self._ms_method if self.msssim else None,
            psnr_cap_db=float(self.cap),
        )


def evaluate(ref: Any, dist: Any, *, bit_depth: int | None = None, chroma: str | None = None, rgb: bool = True,
             msssim: bool = True, msssim_rgb: bool = False, matrix: str = "bt709", full_range: bool = True,
             rgb_round: bool = False, psnr_cap: float = PSNR_CAP_DB,
             chunk_pixels: int = CHUNK_PIXELS) -> Metrics:
    """Compare a distorted video with its reference; see the module docstring for every convention.

    Args:
        ref, dist: Video-like objects (``.format.bit_depth``, ``.format.chroma``, ``.planes``), lists of planes
            ``[Y, U, V]`` / ``[Y]`` each (T, h, w), or one (T, H, W) array (monochrome).
        bit_depth: sample bit depth; taken from the Video, else inferred from uint8 (8). Required for uint16 and
            float planes (float planes are on the native code scale, not [0, 1]).
        chroma: 'mono', '420' (any 420 siting), '422' or '444'; taken from the Video, else inferred from shapes.
        rgb: compute PSNR-RGB (``matrix``/``full_range``/``rgb_round`` choose the conversion).
        msssim: compute MS-SSIM on Y; ``msssim_rgb`` also on RGB.
        psnr_cap: per-frame PSNR cap in dB (identical frames).
        chunk_pixels: luma samples processed per chunk.
    """
    rp, rbd, rch = _unpack(ref, bit_depth, chroma, "reference")
    dp, dbd, dch = _unpack(dist, bit_depth, chroma, "distorted")
    if rbd is not None and dbd is not None and rbd != dbd:
        raise ValueError(f"bit depth differs: reference {rbd} vs distorted {dbd}")
    if rch is not None and dch is not None and rch != dch:
        raise ValueError(f"chroma differs: reference {rch!r} vs distorted {dch!r}")
    if len(rp) != len(dp):
        raise ValueError(f"plane count differs: reference {len(rp)} vs distorted {len(dp)}")
    bd = rbd if rbd is not None else dbd
    if bd is None:
        if rp[0].dtype == np.uint8:
            bd = 8
        else:
            raise ValueError(f"bit_depth is required for {rp[0].dtype} planes (10, 12 and 16 bits all use uint16)")
    ch = rch if rch is not None else dch
    if ch is None:
        ch = _infer_chroma([p.shape for p in rp])
    acc = MetricsAccumulator(bit_depth=bd, chroma=ch, rgb=rgb, msssim=msssim, msssim_rgb=msssim_rgb, matrix=matrix,
                             full_range=full_range, rgb_round=rgb_round, psnr_cap=psnr_cap,
                             chunk_pixels=chunk_pixels)
    acc.update(rp, dp)
    return acc.result()


__all__ = [
    "CHROMA_SUBSAMPLING", "CHUNK_PIXELS", "MATRICES", "Metrics", "MetricsAccumulator", "PSNR_CAP_DB", "evaluate",
    "frame_mse", "msssim_per_frame", "msssim_window", "peak_value", "psnr", "psnr_from_mse", "psnr_per_frame",
    "psnr_yuv", "rgb_to_yuv", "upsample_chroma", "yuv_to_rgb",
]
