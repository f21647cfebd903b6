"""``python -m eval.report RUNDIR [-o report.html]``: one self-contained HTML page of a sweep (``eval.rd``,
``eval.uvg``, ``eval.mcljcv``), written at the end of every sweep too.

The page needs no network: plotly's script, the styles and every image are inline. It holds

* RD curves (PSNR-YUV, PSNR-Y, MS-SSIM; PSNR-RGB where published HiNeRV curves match a sequence) per sequence and
  averaged, every codec, and the BD-rate table;
* per sequence: the per-frame PSNR-YUV of each hinerv file against the anchor (x265 first) at the nearest rate;
  side-by-side crops of the middle frame (source | hinerv | anchor at the nearest rate), click to zoom; where the
  bytes of each hinerv file go (header, side information, scales, payload per layer, from ``hinerv info``);
* a table of every point: rate, quality, encode and decode time, parameters, MACs per pixel;
* the context records of the sequences, where ``RUNDIR/context/<sequence>.json`` exists.

Missing data is shown as missing ("—", or a note), never as 0. Sources are found through ``RUNDIR/sequences.json``
(written by every sweep); a sweep made before it, or whose sources moved, gets a page without the crops.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.runs import Run, load_run

MISSING = "—"
CROP = 128  # side of the luma crop shown side by side (the whole frame when smaller)
ZOOM = 3  # how much a click enlarges a crop
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]
RD_PANELS = [("psnr-yuv", "PSNR-YUV (dB)"), ("psnr-y", "PSNR-Y (dB)"), ("ms-ssim", "MS-SSIM (Y)")]


# --------------------------------------------------------------------------------------------- figures


def _color(codecs: Sequence[str], codec: str) -> str:
    return PALETTE[list(codecs).index(codec) % len(PALETTE)]


def _value(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def rd_figure(curves: dict[str, list[dict]], codecs: Sequence[str], title: str, published: Sequence[Any] = ()):
    """Quality against bpp, one panel per metric (PSNR-RGB too when published curves are given)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    panels = RD_PANELS + ([("psnr-rgb", "PSNR-RGB (dB)")] if published else [])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[label for _, label in panels])
    for col, (metric, label) in enumerate(panels, start=1):
        for codec, recs in curves.items():
            y = [_value(r.get(metric)) for r in recs]
            if all(v is None for v in y):
                continue  # not measured for this codec: no line at 0
            fig.add_trace(go.Scatter(
                x=[r["bpp"] for r in recs], y=y, mode="lines+markers", name=codec, legendgroup=codec,
                showlegend=col == 1, line={"color": _color(codecs, codec)},
                text=[str(r.get("point", "")) for r in recs],
                hovertemplate=f"{codec} %{{text}}<br>%{{x:.4f}} bpp<br>{label} %{{y:.3f}}<extra></extra>"),
                row=1, col=col)
        if metric == "psnr-rgb":
            for k, pub in enumerate(published):
                fig.add_trace(go.Scatter(x=list(pub.bpp), y=list(pub.values), mode="lines+markers", name=pub.label,
                                         line={"dash": "dot", "color": PALETTE[-1 - k % 3]}), row=1, col=col)
        fig.update_xaxes(title_text="bpp", row=1, col=col)
    fig.update_layout(title=title, height=380, margin={"t": 70, "b": 40, "l": 50, "r": 20},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def nearest(records: Sequence[dict], bpp: float) -> dict | None:
    """The record of ``records`` whose rate is nearest ``bpp`` (in log rate), or None."""
    have = [r for r in records if r.get("bpp")]
    return min(have, key=lambda r: abs(math.log(r["bpp"] / bpp))) if have and bpp > 0 else None


def per_frame_figure(pairs: Sequence[tuple[dict, dict | None]], codecs: Sequence[str], title: str):
    """Per-frame PSNR-YUV of each hinerv point (solid) and of the anchor at its nearest rate (dashed)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, (rec, anchor) in enumerate(pairs):
        color = PALETTE[k % len(PALETTE)]
        for r, dash in ((rec, "solid"), (anchor, "dash")):
            if r is None or not r.get("per_frame_psnr_yuv"):
                continue
            fig.add_trace(go.Scatter(y=r["per_frame_psnr_yuv"], mode="lines", line={"color": color, "dash": dash},
                                     name=f"{r['codec']} {r['point']} ({r['bpp']:.4f} bpp)"))
    fig.update_layout(title=title, height=320, xaxis_title="frame", yaxis_title="PSNR-YUV (dB)",
                      margin={"t": 50, "b": 40, "l": 50, "r": 20})
    return fig


def layer_of(name: str) -> str:
    """The layer a tensor belongs to: ``stages.0.blocks.1.fc1.weight`` -> ``stages.0.blocks.1``."""
    parts = name.split(".")
    if parts[0] == "stages" and len(parts) > 3 and parts[2] == "blocks":
        return ".".join(parts[:4])
    if parts[0] == "stages" and len(parts) > 2:
        return ".".join(parts[:3])
    return parts[0]


def byte_breakdown(info: dict) -> dict[str, float]:
    """``hinerv info``'s accounting as parts: header, side information, scales, then the payload of each layer
    (bytes; eighths of one where a file stores its records in bits)."""
    parts = {"header": info["breakdown"]["header"], "side information": info["breakdown"]["tensor side info"],
             "scales": info["breakdown"]["tensor scales"]}
    for t in info["tensors"]:
        key = f"payload {layer_of(t['name'])}"
        parts[key] = parts.get(key, 0) + t["bytes_payload"]
    return parts


def bytes_figure(rows: Sequence[tuple[str, dict[str, float]]], title: str):
    """One stacked bar per hinerv file: where its bytes go."""
    import plotly.graph_objects as go

    keys = list(dict.fromkeys(k for _, parts in rows for k in parts))
    fig = go.Figure()
    for k, key in enumerate(keys):
        fig.add_trace(go.Bar(y=[label for label, _ in rows], x=[parts.get(key, 0) for _, parts in rows],
                             name=key, orientation="h", marker={"color": PALETTE[k % len(PALETTE)]},
                             hovertemplate=f"{key}: %{{x:,}} bytes<extra></extra>"))
    fig.update_layout(barmode="stack", title=title, height=120 + 40 * len(rows), xaxis_title="bytes",
                      margin={"t": 50, "b": 40, "l": 120, "r": 20}, legend={"font": {"size": 10}})
    return fig


# --------------------------------------------------------------------------------------------- crops


def crop_window(width: int, height: int, size: int = CROP) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the centred crop, on even coordinates (the chroma grid of every format)."""
    w, h = min(size, width), min(size, height)
    return ((width - w) // 2) & ~1, ((height - h) // 2) & ~1, w, h


def frame_png(planes: Sequence[np.ndarray], fmt: Any, window: tuple[int, int, int, int]) -> bytes:
    """A PNG (8-bit RGB) of ``window`` of one frame given as planes [(h, w)...] of ``fmt``."""
    from PIL import Image

    from eval.metrics import upsample_chroma, yuv_to_rgb

    x, y, w, h = window
    luma = np.asarray(planes[0], dtype=np.float64)
    if len(planes) == 3:
        size = luma.shape
        u, v = (upsample_chroma(np.asarray(p, dtype=np.float64), fmt.subsampling, size) for p in planes[1:])
        rgb = yuv_to_rgb(luma, u, v, bit_depth=fmt.bit_depth)
    else:
        rgb = np.stack([luma] * 3)
    rgb = rgb[:, y:y + h, x:x + w] * (255.0 / fmt.max_value)
    image = Image.fromarray(np.rint(rgb).clip(0, 255).astype(np.uint8).transpose(1, 2, 0), "RGB")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _img(png: bytes | None, caption: str) -> str:
    if png is None:
        return f'<figure class="crop missing"><div class="none">not available</div><figcaption>{_e(caption)}' \
               f"</figcaption></figure>"
    data = base64.b64encode(png).decode()
    return (f'<figure class="crop"><img src="data:image/png;base64,{data}" alt="{_e(caption)}" '
            f'onclick="this.classList.toggle(\'zoom\')"><figcaption>{_e(caption)}</figcaption></figure>')


def crops_html(run: Run, seq: str, pairs: Sequence[tuple[dict, dict | None]]) -> str:
    """Rows of source | hinerv | anchor crops of the sample frame, or a note saying why there are none."""
    from codec.bitstream_io import read_file_bytes
    from codec.decoder import Decoding
    from codec.video import read_video
    from eval.sweep import sample_frame_index

    src = run.sequences.get(seq)
    if not src or not Path(src["path"]).is_file():
        return '<p class="note">No crops: the source of this sequence is not known to this folder or has moved ' \
               "(sweeps write sequences.json; rerun the sweep to refresh it).</p>"
    source = read_video(src["path"], frames=src.get("frames"))
    fmt = source.format
    index = sample_frame_index(source.num_frames)
    window = crop_window(fmt.width, fmt.height)
    src_png = frame_png([p[index] for p in source.planes], fmt, window)
    rows = []
    for rec, anchor in pairs:
        bin_path = run.point_path(rec, ".bin")
        ours = None
        if bin_path.is_file():
            decoding = Decoding(read_file_bytes(bin_path))
            ours = frame_png([p[0] for p in next(decoding.chunks(index, index + 1))], fmt, window)
        theirs, label = None, "anchor: none"
        if anchor is not None:
            label = f"{anchor['codec']} {anchor['point']} ({anchor['bpp']:.4f} bpp)"
            sample = run.point_path(anchor, ".frame.npz")
            if sample.is_file():
                with np.load(sample) as z:
                    if int(z["index"]) == index:
                        theirs = frame_png([z[f"plane{i}"] for i in range(fmt.num_planes)], fmt, window)
        rows.append('<div class="crops">' + _img(src_png, f"source, frame {index}")
                    + _img(ours, f"{rec['codec']} {rec['point']} ({rec['bpp']:.4f} bpp)") + _img(theirs, label)
                    + "</div>")
    x, y, w, h = window
    return (f'<p class="note">Frame {index}, the {w}×{h} window at ({x}, {y}); click an image to zoom '
            f"{ZOOM}×.</p>" + "".join(rows))


# --------------------------------------------------------------------------------------------- tables


def _e(text: Any) -> str:
    return html.escape(str(text))


def _cell(v: Any, spec: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or v == "":
        return f'<td class="missing" title="not measured">{MISSING}</td>'
    return f'<td class="num">{_e(format(v, spec))}</td>' if spec else f"<td>{_e(v)}</td>"


POINT_COLUMNS = [("bpp", "bpp", ".4f"), ("bytes", "bytes", ",d"), ("psnr-yuv", "PSNR-YUV", ".2f"),
                 ("psnr-y", "PSNR-Y", ".2f"), ("ms-ssim", "MS-SSIM", ".4f"), ("encoding_time", "encode s", ",.1f"),
                 ("decode_fps", "decode fps", ".1f"), ("params", "params", ",d"),
                 ("macs_per_pixel", "MACs/pixel", ",.0f")]


def points_table(run: Run) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in ["sequence", "codec", "point"] + [c[1] for c in POINT_COLUMNS])
    rows = []
    for seq, codecs in run.records.items():
        for codec, recs in codecs.items():
            for r in recs:
                cells = [_cell(seq), _cell(codec), _cell(r["point"])]
                cells += [_cell(r.get(key), spec) for key, _, spec in POINT_COLUMNS]
                rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="points"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def bd_table(run: Run) -> str:
    """BD-rate of every codec against each anchor (eval.sweep's rows, as the sweep's bd_rate.md)."""
    from eval.sweep import bd_rows, curve

    per_seq = {seq: {c: curve(c, recs) for c, recs in codecs.items()} for seq, codecs in run.records.items()}
    rows = bd_rows(per_seq, run.anchors) if run.anchors else []
    if not rows:
        return '<p class="note">No BD-rate: it needs an anchor and another codec with 4 points on a sequence.</p>'
    head = "".join(f"<th>{h}</th>" for h in ("metric", "anchor", "codec", "sequence", "BD-rate (pchip)",
                                                "BD-rate (akima)", "overlap (dB)", "note"))
    body = []
    for r in rows:
        cells = [_cell(r.metric), _cell(r.anchor), _cell(r.test), _cell(r.sequence)]
        cells += [_cell(v, spec) for v, spec in ((r.bd_rate_pchip, "+.1f"), (r.bd_rate_akima, "+.1f"),
                                                (r.psnr_overlap, ".2f"))]
        cells.append(f"<td>{_e(r.note)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="bd"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def context_html(run: Run, seq: str) -> str:
    path = run.root / "context" / f"{seq}.json"
    if not path.is_file():
        return f'<p class="note">No context record for {_e(seq)} (python -m eval.context writes them).</p>'
    ctx = json.loads(path.read_text(encoding="utf-8"))
    rows = "".join(f"<tr><th>{_e(k)}</th>{_cell(v)}</tr>" for k, v in ctx.items())
    return f'<table class="context"><tbody>{rows}</tbody></table>'


# --------------------------------------------------------------------------------------------- the page


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1280px; padding: 0 16px 40px; color: #222; }
h1 { font-size: 22px; margin: 18px 0 4px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.missing { color: #999; text-align: center; } .note { color: #555; font-size: 13px; }
.figure { width: 100%; min-height: 200px; } .crops { display: flex; gap: 8px; flex-wrap: wrap; margin: 6px 0; }
figure.crop { margin: 0; } figure.crop img { width: 256px; image-rendering: pixelated; cursor: zoom-in; }
figure.crop img.zoom { width: 768px; cursor: zoom-out; } figcaption { font-size: 12px; color: #444; }
figure.crop .none { width: 256px; height: 96px; background: #f2f2f2; color: #999; display: flex;
  align-items: center; justify-content: center; }
nav a { margin-right: 12px; }
@media print { .figure, .crops, table { page-break-inside: avoid; } body { max-width: none; } nav { display: none; } }
"""


def _figure_html(fig: Any, div_id: str) -> str:
    import plotly.io as pio

    body = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"responsive": True, "displaylogo": False})
    return f'<div class="figure-box">{body}</div>'


def build_page(run: Run, title: str | None = None) -> str:
    """The whole page as one string (plotly's script inline)."""
    from plotly.offline import get_plotlyjs

    from eval.plots import published_curves
    from eval.published import available
    from eval.sweep import average_records

    title = title or f"hinerv evaluation: {run.root.name}"
    codecs = run.codecs
    seqs = list(run.records)
    pub_seq, pub_avg = published_curves(available(), seqs)
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="note">{len(seqs)} sequence(s), codecs {", ".join(map(_e, codecs))}; generated '
             f'{dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")} from {_e(run.root)}.</p>',
             "<nav>" + '<a href="#rd">RD curves</a><a href="#bd">BD-rate</a><a href="#points">points</a>'
             + "".join(f'<a href="#seq-{_e(s)}">{_e(s)}</a>' for s in seqs) + "</nav>",
             '<h2 id="rd">Rate–distortion</h2>']
    figures = 0
    if len(seqs) > 1:
        averaged = {}
        for codec in codecs:
            have = {s: cs[codec] for s, cs in run.records.items() if codec in cs}
            if len(have) == len(seqs):
                avg, _ = average_records(have)
                averaged[codec] = sorted(avg, key=lambda r: r["bpp"] or 0)
        if averaged:
            parts.append(_figure_html(rd_figure(averaged, codecs, f"average of {len(seqs)} sequences", pub_avg),
                                      f"fig{figures}"))
            figures += 1
    for seq in seqs:
        parts.append(_figure_html(rd_figure(run.records[seq], codecs, seq, pub_seq.get(seq, ())), f"fig{figures}"))
        figures += 1
    parts += ['<h2 id="bd">BD-rate</h2>',
              '<p class="note">Negative: fewer bits than the anchor at equal quality (pchip; MS-SSIM in dB).</p>',
              bd_table(run), '<h2 id="points">Points</h2>', points_table(run)]
    for seq in seqs:
        parts.append(f'<h2 id="seq-{_e(seq)}">{_e(seq)}</h2>')
        ours = [r for c in run.hinerv for r in run.records[seq].get(c, [])]
        anchors = [r for a in run.anchors[:1] for r in run.records[seq].get(a, [])]
        pairs = [(r, nearest(anchors, r["bpp"])) for r in ours]
        parts.append("<h3>Per-frame PSNR-YUV against the anchor at the nearest rate</h3>")
        if not pairs:
            parts.append('<p class="note">No hinerv point for this sequence.</p>')
        elif any(r.get("per_frame_psnr_yuv") for pair in pairs for r in pair if r):
            parts.append(_figure_html(per_frame_figure(pairs, codecs, f"{seq}: per-frame PSNR-YUV"),
                                      f"fig{figures}"))
            figures += 1
        else:
            parts.append('<p class="note">No per-frame PSNR in these records (sweeps record it since this '
                         "report exists; rerun the points to get it).</p>")
        parts += ["<h3>Side by side</h3>", crops_html(run, seq, pairs) if pairs else
                  '<p class="note">No hinerv point for this sequence.</p>']
        parts.append("<h3>Where the bytes go</h3>")
        rows = []
        for r in ours:
            bin_path = run.point_path(r, ".bin")
            if bin_path.is_file():
                from codec.info import describe_file

                rows.append((f"{r['codec']} {r['point']}", byte_breakdown(describe_file(bin_path))))
        if rows:
            parts.append(_figure_html(bytes_figure(rows, f"{seq}: bytes per part"), f"fig{figures}"))
            figures += 1
        else:
            parts.append('<p class="note">No hinerv file kept for this sequence.</p>')
        parts += ["<h3>Context</h3>", context_html(run, seq)]
    script = get_plotlyjs()
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{STYLE}</style><script>{script}</script></head><body>" + "\n".join(parts) + "</body></html>\n")


def write_report(root: str | Path, output: str | Path | None = None, title: str | None = None) -> Path:
    """Build the page of the sweep in ``root`` and write it (atomically) to ``output`` (``root/report.html``)."""
    from codec.fileio import atomic_write_bytes

    run = load_run(root)
    output = Path(output) if output is not None else Path(root) / "report.html"
    atomic_write_bytes(output, build_page(run, title).encode("utf-8"))
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.report", description=__doc__.splitlines()[0])
    parser.add_argument("rundir", metavar="RUNDIR", help="a sweep folder (eval.rd, eval.uvg, eval.mcljcv --out)")
    parser.add_argument("-o", "--output", help="the page to write (default RUNDIR/report.html)")
    parser.add_argument("--title", help="the page's title")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.rundir, args.output, args.title)
    except (ValueError, LookupError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    print(f"report: {path.resolve().as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
