"""A sweep folder read back: its finished point records by sequence and codec, and where its sources are."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class RunError(ValueError):
    """A folder that is not a sweep: one line for the user."""


@dataclass
class Run:
    """A sweep folder as its records say: what the report, the context joins and the results graph read."""

    root: Path
    records: dict[str, dict[str, list[dict]]]  # sequence -> codec -> point records, by rate
    sequences: dict[str, dict[str, Any]] = field(default_factory=dict)  # sequence -> {"path", "frames"}

    def kind(self, codec: str) -> str:
        return next(r["kind"] for codecs in self.records.values() for r in codecs.get(codec, []))

    @property
    def codecs(self) -> list[str]:
        return list(dict.fromkeys(c for codecs in self.records.values() for c in codecs))

    @property
    def anchors(self) -> list[str]:
        """Anchor codecs, x265 first."""
        return sorted((c for c in self.codecs if self.kind(c) == "anchor"), key=lambda c: c != "x265")

    @property
    def hinerv(self) -> list[str]:
        return [c for c in self.codecs if self.kind(c) == "hinerv"]

    def point_path(self, record: dict, suffix: str) -> Path:
        return self.root / "points" / record["sequence"] / record["codec"] / f"{record['point']}{suffix}"


def load_run(root: str | Path) -> Run:
    """Every finished point under ``root/points`` (a RunError when there is none)."""
    root = Path(root)
    if not (root / "points").is_dir():
        raise RunError(f"{root} is not a sweep folder (no points/ in it)")
    records: dict[str, dict[str, list[dict]]] = {}
    for path in sorted((root / "points").glob("*/*/*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a record being written, or damaged: not a finished point
        if not isinstance(rec, dict) or not {"sequence", "codec", "point", "kind", "bpp"} <= set(rec):
            continue
        records.setdefault(rec["sequence"], {}).setdefault(rec["codec"], []).append(rec)
    if not records:
        raise RunError(f"{root} has no finished points yet")
    for codecs in records.values():
        for recs in codecs.values():
            recs.sort(key=lambda r: r["bpp"])
    sequences = {}
    if (root / "sequences.json").is_file():
        sequences = json.loads((root / "sequences.json").read_text(encoding="utf-8"))
    return Run(root, records, sequences)
