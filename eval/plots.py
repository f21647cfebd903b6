"""Rate-distortion plots (matplotlib, Agg backend): one PNG per sequence or averaged curve, a panel per metric.

Panels: PSNR-YUV, PSNR-Y, PSNR-RGB (dB) and MS-SSIM, each axis labelled with its quality type. Our curves (results
files in CompressAI's layout, :class:`eval.results.RDResults`) go on every panel that has their values. A
:class:`PublishedCurve` carries its own quality type and is drawn only on the panel of that type: the published
HiNeRV numbers are RGB PSNR, so they appear on the PSNR-RGB panel and nowhere else.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from codec.fileio import atomic_open

METRIC_LABELS = {
    "psnr-yuv": "PSNR-YUV (dB), (6Y+U+V)/8",
    "psnr-y": "PSNR-Y (dB)",
    "psnr-rgb": "PSNR-RGB (dB)",
    "ms-ssim": "MS-SSIM (Y)",
}
DEFAULT_METRICS = tuple(METRIC_LABELS)
_ANCHOR_STYLE = {"x265": ("tab:blue", "s"), "x264": ("tab:green", "^"), "svtav1": ("tab:purple", "D")}
_OTHER_COLOURS = ("tab:red", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


@dataclass(frozen=True)
class PublishedCurve:
    """A published curve: ``values`` are of quality type ``metric`` (e.g. "psnr-rgb") at ``bpp``."""

    label: str
    bpp: Sequence[float]
    values: Sequence[float]
    metric: str

    def __post_init__(self) -> None:
        if self.metric not in METRIC_LABELS:
            raise ValueError(f"published curve {self.label!r}: metric {self.metric!r} is not one of "
                             f"{', '.join(METRIC_LABELS)}")
        if len(self.bpp) != len(self.values):
            raise ValueError(f"published curve {self.label!r}: {len(self.bpp)} rates vs {len(self.values)} values")


def _xy(rd: Any, metric: str) -> tuple[list[float], list[float]]:
    res = rd.results
    pairs = [(b, v) for b, v in zip(res.get("bpp", []), res.get(metric, []))
             if b is not None and v is not None and math.isfinite(b) and math.isfinite(v)]
    pairs.sort()
    return [p[0] for p in pairs], [p[1] for p in pairs]


def panel_series(curves: Mapping[str, Any], metric: str, published: Sequence[PublishedCurve] = ()
                 ) -> list[tuple[str, list[float], list[float], str]]:
    """What one panel draws: (label, bpp, values, kind) with kind 'ours', 'anchor' or 'published'; a published
    curve only on the panel of its own quality type."""
    out = []
    for name, rd in curves.items():
        x, y = _xy(rd, metric)
        if x:
            out.append((name, x, y, "anchor" if name in _ANCHOR_STYLE else "ours"))
    out += [(p.label, list(p.bpp), list(p.values), "published") for p in published if p.metric == metric]
    return out


def plot_rd(path: str | os.PathLike, curves: Mapping[str, Any], *, title: str = "",
            published: Sequence[PublishedCurve] = (), metrics: Sequence[str] = DEFAULT_METRICS) -> Path:
    """Write a PNG with one RD panel per metric; returns ``path``.

    Args:
        curves: codec name -> :class:`eval.results.RDResults` (or anything with ``.results``).
        published: drawn (dashed, grey tones) only on the panel whose metric is the curve's own ``metric``.
        metrics: panel metrics, keys of :data:`METRIC_LABELS`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for m in metrics:
        if m not in METRIC_LABELS:
            raise ValueError(f"unknown metric {m!r}; known: {', '.join(METRIC_LABELS)}")
    cols = 2 if len(metrics) > 1 else 1
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.6 * rows), squeeze=False)
    others = iter(_OTHER_COLOURS * 4)
    styles = {name: _ANCHOR_STYLE.get(name) or (next(others), "o") for name in curves}
    for ax, metric in zip(axes.flat, metrics):
        series = panel_series(curves, metric, published)
        for i, (name, x, y, kind) in enumerate(series):
            if kind == "published":
                ax.plot(x, y, linestyle="--", marker=".", color=("0.35", "0.6", "0.15")[i % 3], linewidth=1.2,
                        label=name)
            else:
                colour, marker = styles[name]
                ax.plot(x, y, marker=marker, color=colour, linewidth=2.2 if kind == "ours" else 1.4, markersize=5,
                        label=name)
        drawn = len(series)
        ax.set_xlabel("rate (bpp)")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.set_title(METRIC_LABELS[metric].split(" (")[0] if metric != "psnr-yuv" else "PSNR-YUV")
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_open(path) as f:
            fig.savefig(f, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path


def published_curves(datasets: Sequence[str], sequences: Sequence[str]) -> tuple[dict[str, list], list]:
    """Published RGB-PSNR curves per sweep sequence (matched by name) and averaged over the matched ones."""
    from eval.published import PSNR_TYPE, average_curve, load_published, published_info

    per_seq: dict[str, list] = {s: [] for s in sequences}
    average = []
    for name in datasets:
        data, info = load_published(name), published_info(name)
        label = f"{info['title']} [published: {info['dataset']} 1080p, RGB PSNR]"
        keys = {_pub_key(k): k for k in data}
        matched = {s: keys[_pub_key(s)] for s in sequences if _pub_key(s) in keys}
        for s, k in matched.items():
            per_seq[s].append(PublishedCurve(label, data[k]["bpp"], data[k]["psnr_rgb"], PSNR_TYPE))
        if matched:
            rates, vals = average_curve({k: data[k] for k in matched.values()})
            average.append(PublishedCurve(label, rates, vals, PSNR_TYPE))
    return per_seq, average


def _pub_key(name: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", name.lower()).removeprefix("video")
    return {"readysteadygo": "readysetgo"}.get(key, key)


__all__ = ["DEFAULT_METRICS", "METRIC_LABELS", "PublishedCurve", "panel_series", "plot_rd", "published_curves"]
