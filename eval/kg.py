"""A knowledge graph of evaluation results, for ``hinerv ask``.

Entities: the sequences of one or more sweep folders, the codecs, the runs (sweep folders), each rate point ("x265
qp37 on carphone", "hinerv m on carphone") and each context value ("outdoor"). Facts are (entity, relation) ->
value, each with its evidence: the record file and the field it was read from. The graph holds only what the
records hold: nothing is predicted, a point that was not measured is not there.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from eval.runs import load_run

# relation -> (record field, unit, what people call it); point relations, then sequence (context) relations
POINT_RELATIONS = {
    "bpp": ("bpp", "bpp", "bits per pixel"),
    "psnr_yuv": ("psnr-yuv", "dB", "PSNR-YUV"),
    "psnr_y": ("psnr-y", "dB", "PSNR-Y"),
    "ms_ssim": ("ms-ssim", "", "MS-SSIM"),
    "bytes": ("bytes", "bytes", "file size"),
    "encode_seconds": ("encoding_time", "s", "encoding time"),
    "decode_fps": ("decode_fps", "frames/s", "decoding speed"),
    "params": ("params", "parameters", "parameters"),
}
SEQUENCE_RELATIONS = {
    "si": ("si", "", "spatial information (SI)"),
    "ti": ("ti", "", "temporal information (TI)"),
    "motion": ("motion", "px/frame", "mean motion"),
}
RELATIONS = {**POINT_RELATIONS, **SEQUENCE_RELATIONS}
QUALITY = ("psnr_yuv", "psnr_y", "ms_ssim")  # relations a rate slot ("at 0.05 bpp") asks for
RATE = ("bpp", "bytes")  # relations a quality slot ("at 35 dB") asks for
CODEC_ALIASES = {"x265": ["x265", "hevc", "h.265", "h265"], "x264": ["x264", "avc", "h.264", "h264"],
                 "svtav1": ["svtav1", "svt-av1", "av1"], "hinerv": ["hinerv", "ours", "our codec"]}


@dataclass
class Entity:
    id: str  # "seq:carphone", "codec:x265", "point:carphone/x265/qp37", "run:rd", "context:outdoor"
    kind: str  # sequence, codec, point, run, context
    name: str  # how answers name it
    aliases: list[str] = field(default_factory=list)  # lower-case surface forms for linking
    attrs: dict[str, Any] = field(default_factory=dict)  # point: sequence, codec, point, run


@dataclass(frozen=True)
class Fact:
    entity: str
    relation: str
    value: Any
    source: str  # the record file
    field: str  # the field of the record


@dataclass
class KnowledgeGraph:
    entities: dict[str, Entity] = field(default_factory=dict)
    facts: dict[tuple[str, str], Fact] = field(default_factory=dict)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (subject, predicate, object) entity edges

    def add(self, entity: Entity) -> Entity:
        if entity.id in self.entities:
            known = self.entities[entity.id]
            known.aliases += [a for a in entity.aliases if a not in known.aliases]
            return known
        self.entities[entity.id] = entity
        return entity

    def of_kind(self, kind: str) -> list[Entity]:
        return [e for e in self.entities.values() if e.kind == kind]

    def points(self, sequence: str | None = None, codec: str | None = None) -> list[Entity]:
        """Rate points, optionally of one sequence and codec (entity ids)."""
        return [e for e in self.of_kind("point") if (sequence is None or e.attrs["sequence"] == sequence)
                and (codec is None or e.attrs["codec"] == codec)]


def sequence_aliases(name: str) -> list[str]:
    """'carphone_pristine' -> carphone_pristine, carphone pristine, carphone."""
    low = name.lower()
    out = [low, re.sub(r"[_\-]+", " ", low)]
    stem = re.sub(r"[_\-](pristine|\d+.*)$", "", low)
    if stem and stem not in out:
        out.append(stem)
    return list(dict.fromkeys(out))


def point_aliases(point: str) -> list[str]:
    """'qp37' -> qp37, qp 37; 'p3000' -> p3000; a preset name as it is."""
    m = re.fullmatch(r"qp(\d+)", point)
    return [point, f"qp {m.group(1)}"] if m else [point]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def build_graph(folders: Iterable[str | Path]) -> KnowledgeGraph:
    """The graph of every finished point (``eval.runs.load_run``) and context record of the sweep folders."""
    kg = KnowledgeGraph()
    for folder in folders:
        folder = Path(folder)
        if not (folder / "points").is_dir():
            raise ValueError(f"{folder} is not a results folder (no points/ in it)")
        run = load_run(folder)
        run_entity = kg.add(Entity(f"run:{folder.name}", "run", folder.name, [folder.name.lower()]))
        for rec in (r for codecs in run.records.values() for recs in codecs.values() for r in recs):
            seq, codec, point = rec["sequence"], rec["codec"], rec["point"]
            kg.add(Entity(f"seq:{seq}", "sequence", seq, sequence_aliases(seq)))
            kg.add(Entity(f"codec:{codec}", "codec", codec, CODEC_ALIASES.get(codec, [codec.lower()])))
            label = f"{codec} {point} on {seq}"
            ent = kg.add(Entity(f"point:{seq}/{codec}/{point}", "point", label, point_aliases(point),
                                {"sequence": f"seq:{seq}", "codec": f"codec:{codec}", "point": point,
                                 "run": run_entity.id}))
            kg.links += [(ent.id, "of_sequence", f"seq:{seq}"), (ent.id, "of_codec", f"codec:{codec}"),
                         (ent.id, "in_run", run_entity.id)]
            path = run.point_path(rec, ".json")
            for relation, (key, _, _) in POINT_RELATIONS.items():
                if _finite(rec.get(key)):
                    kg.facts[(ent.id, relation)] = Fact(ent.id, relation, rec[key], str(path), key)
        for path in sorted((folder / "context").glob("*.json")) if (folder / "context").is_dir() else []:
            ctx = json.loads(path.read_text(encoding="utf-8"))
            seq = ctx.get("sequence", path.stem)
            sid = f"seq:{seq}"
            kg.add(Entity(sid, "sequence", seq, sequence_aliases(seq)))
            for relation, (key, _, _) in SEQUENCE_RELATIONS.items():
                if _finite(ctx.get(key)):
                    kg.facts[(sid, relation)] = Fact(sid, relation, ctx[key], str(path), key)
            for key in ("what", "where", "who", "when"):
                value = ctx.get(key)
                if value and value != "unknown":
                    cid = f"context:{key}={value}"
                    kg.add(Entity(cid, "context", f"{key} {value}", [str(value).lower()]))
                    kg.links.append((sid, key, cid))
    if not kg.of_kind("point"):
        raise ValueError("no finished rate points in the results given")
    return kg
