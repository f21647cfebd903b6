"""Rate-distortion results files in CompressAI's JSON layout, so its plotting tools read ours.

Layout::

    {"name": "hinerv-s", "description": "...",
     "results": {"bpp": [...], "psnr-y": [...], "psnr-yuv": [...], "psnr-rgb": [...], "ms-ssim": [...],
                 "encoding_time": [...], "decoding_time": [...], ...extra per-point keys},
     ...extra top-level keys}

Every list in ``results`` has one entry per rate point (same length as ``bpp``). Missing values — and NaN or
infinity, which JSON cannot hold — are written as ``null``. Files are written atomically.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from codec.fileio import atomic_write_bytes

STANDARD_KEYS = ("bpp", "psnr-y", "psnr-yuv", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time")
#: Metrics attribute -> results key, used by :meth:`RDResults.add_point`.
METRIC_KEYS = {"psnr_y": "psnr-y", "psnr_u": "psnr-u", "psnr_v": "psnr-v", "psnr_yuv": "psnr-yuv",
               "psnr_rgb": "psnr-rgb", "ms_ssim": "ms-ssim", "ms_ssim_rgb": "ms-ssim-rgb"}


def _clean(v: Any) -> Any:
    """JSON-safe value: numpy scalars to Python, NaN/inf to None, containers recursively."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if hasattr(v, "tolist") and not isinstance(v, (list, tuple, dict)):  # numpy scalar or array
        v = v.tolist()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, int):
        return v
    if isinstance(v, Mapping):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    raise TypeError(f"cannot store {type(v).__name__} in a results file")


@dataclass
class RDResults:
    """A named rate-distortion curve: ``results[key]`` holds one value per rate point."""

    name: str
    description: str = ""
    results: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in STANDARD_KEYS})
    extra: dict[str, Any] = field(default_factory=dict)  # further top-level keys, kept verbatim

    def __len__(self) -> int:
        return len(self.results.get("bpp", []))

    def add_point(self, *, bpp: float, metrics: Any = None, encoding_time: float | None = None,
                  decoding_time: float | None = None, **values: Any) -> None:
        """Append one rate point.

        ``metrics`` is an :class:`eval.metrics.Metrics` (or anything with its attributes); ``values`` add or
        override per-point keys (e.g. ``**{"psnr-yuv": 37.1, "params": 3.2e6}``). Keys a point lacks get None,
        and a key first seen now is back-filled with None for earlier points.
        """
        n = len(self)
        point: dict[str, Any] = {"bpp": bpp, "encoding_time": encoding_time, "decoding_time": decoding_time}
        if metrics is not None:
            for attr, key in METRIC_KEYS.items():
                if hasattr(metrics, attr):
                    point[key] = getattr(metrics, attr)
        point.update(values)
        for key in STANDARD_KEYS:
            self.results.setdefault(key, [None] * n)
        for key in point:
            self.results.setdefault(key, [None] * n)
        for key, lst in self.results.items():
            lst.append(_clean(point.get(key)))

    def sorted_by_bpp(self) -> "RDResults":
        """A copy with every list reordered by increasing bpp."""
        order = sorted(range(len(self)), key=lambda i: self.results["bpp"][i])
        res = {k: [v[i] for i in order] for k, v in self.results.items()}
        return RDResults(self.name, self.description, res, dict(self.extra))

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "description": self.description, "results": self.results}
        out.update(self.extra)
        return _clean(out)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RDResults":
        """Validate and load; only ``name`` and ``results["bpp"]`` are required (CompressAI files vary)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"results file: expected a JSON object, got {type(d).__name__}")
        name, res = d.get("name"), d.get("results")
        if not isinstance(name, str):
            raise ValueError(f"results file: 'name' must be a string, got {name!r}")
        if not isinstance(res, Mapping) or not isinstance(res.get("bpp"), list):
            raise ValueError("results file: 'results' must be an object with a 'bpp' list")
        n = len(res["bpp"])
        for k, v in res.items():
            if not isinstance(v, list) or len(v) != n:
                got = len(v) if isinstance(v, list) else type(v).__name__
                raise ValueError(f"results file: results[{k!r}] must be a list of {n} values (as bpp), got {got}")
        desc = d.get("description", "")
        extra = {k: v for k, v in d.items() if k not in ("name", "description", "results")}
        return cls(name, desc if isinstance(desc, str) else str(desc), {k: list(v) for k, v in res.items()}, extra)


def write_results(path: str | os.PathLike, results: RDResults | Mapping[str, Any]) -> None:
    """Write a results file atomically (2-space indented JSON, NaN/inf as null)."""
    rd = results if isinstance(results, RDResults) else RDResults.from_dict(results)
    text = json.dumps(rd.to_dict(), indent=2, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_results(path: str | os.PathLike) -> RDResults:
    """Read and validate a results file (ours or CompressAI's)."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{os.fspath(path)}: not valid JSON ({e})") from None
    return RDResults.from_dict(data)


__all__ = ["METRIC_KEYS", "RDResults", "STANDARD_KEYS", "read_results", "write_results"]
