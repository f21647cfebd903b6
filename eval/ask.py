"""``hinerv ask "QUESTION" --results DIR``: simple questions about evaluation results, answered from the records.

The pipeline of the simple-QA baselines (BuboQA), over the graph of ``eval.kg``:

1. **entity detection and linking**: the question's n-grams (up to 4 tokens) are looked up in a character-trigram
   inverted index of the entities' aliases and scored by fuzzy ratio (rapidfuzz); a sequence, a codec and a rate
   point (a preset name, ``qpNN``, ``pNNNN``) are linked separately and make up the point entity;
2. **relation prediction**: tf-idf (1-2 grams) of the question with its entity mentions and numbers masked, and a
   logistic regression trained on template questions generated from the same graph;
3. **evidence combination**: every reachable (entity, relation) candidate scores ent^0.6 · p(rel)^0.1 (BuboQA's
   combination); or, with ``ranker="rana"``, a relation-aware linear ranker trained with RANA's attention-weighted
   multi-negative hinge on the same templates;
4. a numeric slot ("at 0.05 bpp", "at 35 dB") gives the measured point at that rate (or quality), an interpolation
   between the two measured points around it (log rate, labelled ``interpolated``), or, outside the measured range,
   the nearest measured point, labelled with where it was measured.

It never invents a result: a question without evidence gets "no evidence" (kind ``none``; the CLI exits 1). Every
value given is the value of the record it cites (``evidence``: [record file, field]).
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from eval.kg import POINT_RELATIONS, QUALITY, RATE, RELATIONS, SEQUENCE_RELATIONS, Entity, KnowledgeGraph

MIN_ENTITY = 0.8  # fuzzy ratio below which an n-gram does not name an entity
MIN_SCORE = 0.35  # combined score below which there is no answer
ASKED = 0.5  # a relation this probable is what the question asks: another one is no answer to it
SAME_POINT = 0.02  # |log rate ratio| under which a slot's rate is that of a measured point
STOP = {"the", "a", "an", "of", "on", "for", "at", "is", "what", "does", "do", "how", "in", "with", "to", "and",
        "which", "whats", "what's", "me", "tell", "give", "get", "gets", "reach", "reaches", "much", "many", "by",
        "need", "needs", "have", "has", "its", "it", "was", "were", "be", "are"}
_TOKEN = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*")
_SLOT = re.compile(r"(?:at|for|with|of|reaching|to reach)\s+(?:about\s+|around\s+)?(\d+(?:\.\d+)?)\s*"
                   r"(bpp|bits? per pixel|db|decibels?)\b")


@dataclass
class Answer:
    answer: str
    value: Any = None
    kind: str = "none"  # measured, interpolated, none
    evidence: list[list[str]] = field(default_factory=list)
    entity: str | None = None
    relation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "value": self.value, "kind": self.kind, "evidence": self.evidence}


@dataclass
class Parse:
    """What the first two steps read from a question."""

    sequence: tuple[str, float] | None
    codec: tuple[str, float] | None
    point: str | None
    slot: tuple[str, float] | None  # ("bpp", 0.05) or ("db", 35.0)
    masked: str


# --------------------------------------------------------------------------------------------- linking


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _trigrams(text: str) -> set[str]:
    padded = f"  {text} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


class EntityIndex:
    """Character-trigram inverted index of the aliases of one kind of entity; lookups scored by fuzzy ratio."""

    def __init__(self, entities: Sequence[Entity]) -> None:
        self.index: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for e in entities:
            for alias in e.aliases:
                for gram in _trigrams(alias):
                    self.index[gram].add((e.id, alias))

    def link(self, toks: Sequence[str]) -> tuple[str, float, tuple[int, int]] | None:
        """The best (entity id, score in [0, 1], token span) over the n-grams of ``toks``, or None."""
        from rapidfuzz import fuzz

        best = None
        for n in range(4, 0, -1):
            for i in range(len(toks) - n + 1):
                gram = " ".join(toks[i:i + n])
                if n == 1 and gram in STOP:
                    continue
                candidates = set().union(*(self.index.get(g, set()) for g in _trigrams(gram)))
                for eid, alias in candidates:
                    score = fuzz.ratio(gram, alias) / 100
                    if score >= MIN_ENTITY and (best is None or score > best[1]):
                        best = (eid, score, (i, i + n))
        return best


class Linker:
    """Entity detection and linking for one graph."""

    def __init__(self, kg: KnowledgeGraph) -> None:
        self.kg = kg
        self.sequences = EntityIndex(kg.of_kind("sequence"))
        self.codecs = EntityIndex(kg.of_kind("codec"))
        self.point_names = {p.attrs["point"] for p in kg.of_kind("point")}

    def parse(self, question: str) -> Parse:
        text = question.lower()
        slot = None
        m = _SLOT.search(text)
        if m:
            slot = ("bpp" if m.group(2).startswith(("bpp", "bit")) else "db", float(m.group(1)))
            text = text[:m.start()] + " at " + text[m.end():]  # the slot is read: its number links nothing
        toks = tokens(text)
        masked = list(toks)
        codec = self.codecs.link(toks)
        if codec:
            (a, b) = codec[2]
            masked[a:b] = ["<codec>"] * (b - a)
        # the sequence is looked for outside the codec's words
        sequence = self.sequences.link([" " if t == "<codec>" else t for t in masked])
        if sequence:
            (a, b) = sequence[2]
            masked[a:b] = ["<seq>"] * (b - a)
        point = self.find_point(toks)
        if point:
            number = point[2:] if point.startswith("qp") else None
            for i, t in enumerate(toks):
                if t == point or (number and t == "qp") or (number and t == number and i and toks[i - 1] == "qp"):
                    masked[i] = "<point>"
        masked_text = " ".join(t for t in masked if t not in STOP)
        if slot:
            masked_text += " at_num " + ("unit_rate" if slot[0] == "bpp" else "unit_quality")
        return Parse((sequence[0], sequence[1]) if sequence else None, (codec[0], codec[1]) if codec else None,
                     point, slot, masked_text)

    def find_point(self, toks: Sequence[str]) -> str | None:
        """The rate point the question names: ``qpNN`` (or ``qp NN``), ``pNNNN``, or a preset name, which, short
        as it is (s, m, l), counts only right after a codec's name or the word preset/model/point."""
        before = {"preset", "model", "point", "size"} | {t for e in self.kg.of_kind("codec") for a in e.aliases
                                                          for t in tokens(a)}
        for name in sorted(self.point_names, key=len, reverse=True):
            for i, t in enumerate(toks):
                if name.startswith("qp") and (t == name or (t == "qp" and toks[i + 1:i + 2] == [name[2:]])):
                    return name
                if t == name and (len(name) > 2 or (i and toks[i - 1] in before)):
                    return name
        return None


# --------------------------------------------------------------------------------------------- relations


class RelationModel:
    """tf-idf + logistic regression over masked questions."""

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"[^ ]+", sublinear_tf=True)
        self.model = LogisticRegression(max_iter=2000, C=10.0)

    def fit(self, masked: Sequence[str], relations: Sequence[str]) -> "RelationModel":
        self.model.fit(self.vectorizer.fit_transform(masked), relations)
        return self

    def probabilities(self, masked: str) -> dict[str, float]:
        p = self.model.predict_proba(self.vectorizer.transform([masked]))[0]
        return dict(zip(self.model.classes_, map(float, p)))

    def features(self, masked: str) -> np.ndarray:
        return self.vectorizer.transform([masked]).toarray()[0]


# --------------------------------------------------------------------------------------------- templates


TEMPLATES = {
    "psnr_yuv": ["what is the psnr-yuv of {c} {p} on {s}", "psnr of {c} {p} for {s}",
                 "what yuv psnr does {c} {p} reach on {s}", "how good is {c} {p} on {s} in psnr"],
    "psnr_y": ["what is the psnr-y of {c} {p} on {s}", "luma psnr of {c} {p} on {s}",
               "what y psnr does {c} {p} get for {s}"],
    "ms_ssim": ["what is the ms-ssim of {c} {p} on {s}", "ms-ssim of {c} {p} for {s}",
                "what structural similarity does {c} {p} reach on {s}"],
    "bpp": ["what is the bitrate of {c} {p} on {s}", "how many bits per pixel does {c} {p} use on {s}",
            "bpp of {c} {p} for {s}", "what rate does {c} {p} spend on {s}"],
    "bytes": ["how big is the file of {c} {p} on {s}", "what is the file size of {c} {p} on {s}",
              "how many bytes does {c} {p} take for {s}"],
    "encode_seconds": ["how long does {c} {p} take to encode {s}", "what is the encoding time of {c} {p} on {s}",
                       "encode time of {c} {p} for {s}"],
    "decode_fps": ["how fast does {c} {p} decode {s}", "what is the decoding speed of {c} {p} on {s}",
                   "decode fps of {c} {p} for {s}"],
    "params": ["how many parameters does {c} {p} have on {s}", "what is the model size of {c} {p} for {s}",
               "params of {c} {p} on {s}"],
    "si": ["what is the spatial information of {s}", "si of {s}", "how detailed is {s} (si)"],
    "ti": ["what is the temporal information of {s}", "ti of {s}", "how much does {s} change over time (ti)"],
    "motion": ["how much motion is there in {s}", "what is the mean motion of {s}", "motion of {s}"],
}
SLOT_TEMPLATES = {
    "psnr_yuv": ["what psnr-yuv does {c} reach on {s} at {r} bpp", "psnr of {c} for {s} at {r} bpp"],
    "psnr_y": ["what luma psnr does {c} get on {s} at {r} bpp"],
    "ms_ssim": ["what ms-ssim does {c} reach on {s} at {r} bpp"],
    "bpp": ["what bitrate does {c} need on {s} for {q} db", "how many bits per pixel does {c} spend on {s} at {q} db"],
    "bytes": ["how many bytes does {c} need for {s} at {q} db"],
}


@dataclass(frozen=True)
class Question:
    text: str
    entity: str  # gold entity id (a point or a sequence; for a slot question the codec's curve: seq + codec)
    relation: str
    slot: tuple[str, float] | None = None


def template_questions(kg: KnowledgeGraph, count: int, seed: int = 0) -> list[Question]:
    """``count`` questions generated from facts of the graph (a mix of plain, slot and context questions)."""
    rng = np.random.default_rng(seed)
    facts = list(kg.facts.values())
    out = []
    while len(out) < count and facts:
        fact = facts[int(rng.integers(len(facts)))]
        ent = kg.entities[fact.entity]
        if ent.kind == "sequence":
            text = rng.choice(TEMPLATES[fact.relation]).format(s=rng.choice(ent.aliases))
            out.append(Question(text, ent.id, fact.relation))
            continue
        seq, codec = kg.entities[ent.attrs["sequence"]], kg.entities[ent.attrs["codec"]]
        s, c = rng.choice(seq.aliases), rng.choice(codec.aliases)
        if fact.relation in SLOT_TEMPLATES and rng.random() < 0.25:
            curve = kg.points(seq.id, codec.id)
            if fact.relation in QUALITY:
                r = float(rng.uniform(*_span([kg.facts.get((p.id, "bpp")) for p in curve])))
                text = rng.choice(SLOT_TEMPLATES[fact.relation]).format(c=c, s=s, r=f"{r:.3g}")
                out.append(Question(text, f"curve:{seq.id}|{codec.id}", fact.relation, ("bpp", float(f"{r:.3g}"))))
            else:
                q = float(rng.uniform(*_span([kg.facts.get((p.id, "psnr_yuv")) for p in curve])))
                text = rng.choice(SLOT_TEMPLATES[fact.relation]).format(c=c, s=s, q=f"{q:.1f}")
                out.append(Question(text, f"curve:{seq.id}|{codec.id}", fact.relation, ("db", float(f"{q:.1f}"))))
            continue
        p = rng.choice(ent.aliases)
        out.append(Question(rng.choice(TEMPLATES[fact.relation]).format(c=c, p=p, s=s), ent.id, fact.relation))
    return out


def _span(facts: Sequence[Any]) -> tuple[float, float]:
    vals = [f.value for f in facts if f is not None]
    return (min(vals), max(vals)) if vals else (0.0, 0.0)


# --------------------------------------------------------------------------------------------- answering


@dataclass
class Candidate:
    entity: str  # a point, a sequence, or "curve:<seq>|<codec>" for a slot
    relation: str
    entity_score: float
    relation_prob: float

    @property
    def score(self) -> float:
        """BuboQA's evidence combination, ent^0.6 · p(rel)^0.1."""
        return self.entity_score ** 0.6 * max(self.relation_prob, 1e-9) ** 0.1


class Asker:
    """The question-answering pipeline over one graph; its relation model (and ranker) trained on templates."""

    def __init__(self, kg: KnowledgeGraph, ranker: str = "baseline", training: int = 600, seed: int = 0) -> None:
        if ranker not in ("baseline", "rana"):
            raise ValueError(f"ranker must be baseline or rana, got {ranker!r}")
        self.kg, self.ranker_kind = kg, ranker
        self.linker = Linker(kg)
        train = template_questions(kg, training, seed)
        parses = [self.linker.parse(q.text) for q in train]
        self.relations = RelationModel().fit([p.masked for p in parses], [q.relation for q in train])
        self.ranker = None
        if ranker == "rana":
            from eval.rana import RelationRanker

            groups = []
            for q, parse in zip(train, parses):
                cands = self.candidates(parse)
                gold = [i for i, c in enumerate(cands) if c.entity == q.entity and c.relation == q.relation]
                if gold and len(cands) > 1:
                    groups.append((self.relations.features(parse.masked), cands, gold[0]))
            self.ranker = RelationRanker(sorted(RELATIONS), seed=seed).fit(groups)

    def candidates(self, parse: Parse) -> list[Candidate]:
        """Every reachable (entity, relation) pair of the parse, with its entity score and relation probability."""
        probs = self.relations.probabilities(parse.masked)
        if not (parse.sequence or parse.codec or parse.point):
            return []  # the question names nothing the results hold
        # a results folder of one sequence: a question about a codec's point may leave the sequence unsaid
        alone = len(self.kg.of_kind("sequence")) == 1 and (parse.codec or parse.point)
        seqs = [parse.sequence] if parse.sequence else [(e.id, 0.9) for e in self.kg.of_kind("sequence")] if alone \
            else []
        out: list[Candidate] = []
        for sid, s_score in seqs:
            for relation in SEQUENCE_RELATIONS:
                if (sid, relation) in self.kg.facts and parse.sequence and not parse.codec:
                    out.append(Candidate(sid, relation, s_score, probs.get(relation, 0.0)))
            codecs = [parse.codec] if parse.codec else [(e.id, 0.6) for e in self.kg.of_kind("codec")]
            for cid, c_score in codecs:
                if parse.slot:
                    if not self.kg.points(sid, cid):
                        continue
                    wanted = QUALITY if parse.slot[0] == "bpp" else RATE
                    for relation in wanted:
                        out.append(Candidate(f"curve:{sid}|{cid}", relation, s_score * c_score,
                                             probs.get(relation, 0.0)))
                    continue
                if parse.point is None:
                    continue
                pid = f"point:{sid[4:]}/{cid[6:]}/{parse.point}"
                for relation in POINT_RELATIONS:
                    if (pid, relation) in self.kg.facts:
                        out.append(Candidate(pid, relation, s_score * c_score, probs.get(relation, 0.0)))
        return out

    def rank(self, parse: Parse) -> list[Candidate]:
        cands = self.candidates(parse)
        if self.ranker is not None and cands:
            scores = self.ranker.scores(self.relations.features(parse.masked), cands)
            return [c for _, c in sorted(zip(scores, cands), key=lambda x: -x[0])]
        return sorted(cands, key=lambda c: -c.score)

    def ask(self, question: str) -> Answer:
        parse = self.linker.parse(question)
        ranked = self.rank(parse)
        if not ranked or ranked[0].score < MIN_SCORE:
            return Answer("no evidence: the results hold nothing that answers this question")
        best = ranked[0]
        probs = self.relations.probabilities(parse.masked)
        asked = max(probs, key=probs.get)
        if best.relation != asked and probs[asked] >= ASKED:  # the question asks what the results do not hold
            name = self.kg.entities[best.entity].name if best.entity in self.kg.entities else "it"
            return Answer(f"no evidence: the results hold no {RELATIONS[asked][2]} of {name}")
        if best.entity.startswith("curve:"):
            return self.slot_answer(best, parse.slot)
        fact = self.kg.facts[(best.entity, best.relation)]
        return Answer(f"{self.kg.entities[best.entity].name}: {describe(best.relation, fact.value)}", fact.value,
                      "measured", [[fact.source, fact.field]], best.entity, best.relation)

    def slot_answer(self, cand: Candidate, slot: tuple[str, float]) -> Answer:
        """The value of ``cand.relation`` on a codec's curve at a rate (bpp) or a quality (PSNR-YUV dB)."""
        sid, cid = cand.entity[len("curve:"):].split("|")
        axis = "bpp" if slot[0] == "bpp" else "psnr_yuv"
        pts = sorted(((self.kg.facts[(p.id, axis)], self.kg.facts[(p.id, cand.relation)])
                      for p in self.kg.points(sid, cid)
                      if (p.id, axis) in self.kg.facts and (p.id, cand.relation) in self.kg.facts),
                     key=lambda ab: ab[0].value)
        if not pts:
            return Answer("no evidence: no measured point has both values")
        x = slot[1]
        name = f"{self.kg.entities[cid].name} on {self.kg.entities[sid].name}"
        where = f"{x:g} bpp" if axis == "bpp" else f"{x:g} dB PSNR-YUV"
        pos = (lambda v: math.log(v)) if axis == "bpp" else (lambda v: v)
        for a, b in pts:
            close = abs(math.log(a.value / x)) < SAME_POINT if axis == "bpp" else abs(a.value - x) < 0.05
            if close:
                return Answer(f"{name} at {where}: {describe(cand.relation, b.value)} (measured point "
                              f"{self.kg.entities[a.entity].attrs['point']})", b.value, "measured",
                              [[a.source, a.field], [b.source, b.field]], cand.entity, cand.relation)
        for (a0, b0), (a1, b1) in zip(pts, pts[1:]):
            if a0.value < x < a1.value and x > 0:
                w = (pos(x) - pos(a0.value)) / (pos(a1.value) - pos(a0.value))
                lin = cand.relation in RATE
                v = (math.exp((1 - w) * math.log(b0.value) + w * math.log(b1.value)) if lin
                     else (1 - w) * b0.value + w * b1.value)
                v = round(v, 6)
                return Answer(f"{name} at {where}: about {describe(cand.relation, v)} (interpolated between the "
                              f"measured points {self.kg.entities[a0.entity].attrs['point']} and "
                              f"{self.kg.entities[a1.entity].attrs['point']})", v, "interpolated",
                              [[a0.source, a0.field], [b0.source, b0.field], [a1.source, a1.field],
                               [b1.source, b1.field]], cand.entity, cand.relation)
        a, b = min(pts, key=lambda ab: abs(pos(ab[0].value) - pos(x)) if x > 0 else 0)
        return Answer(f"{name}: no point measured at {where}; the nearest measured point, "
                      f"{self.kg.entities[a.entity].attrs['point']} at {describe(axis, a.value)}, has "
                      f"{describe(cand.relation, b.value)}", b.value, "measured",
                      [[a.source, a.field], [b.source, b.field]], b.entity, cand.relation)


def describe(relation: str, value: Any) -> str:
    key, unit, label = RELATIONS[relation]
    text = f"{value:,}" if isinstance(value, int) else f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{label} {text}{' ' + unit if unit and unit != label else ''}"


# --------------------------------------------------------------------------------------------- baseline


class ExactMatch:
    """The exact-match baseline: aliases and relation keywords found verbatim, no fuzziness, no learning."""

    KEYWORDS = [("psnr-yuv", "psnr_yuv"), ("yuv psnr", "psnr_yuv"), ("psnr-y", "psnr_y"), ("ms-ssim", "ms_ssim"),
                ("bits per pixel", "bpp"), ("bpp", "bpp"), ("bitrate", "bpp"), ("bytes", "bytes"),
                ("file size", "bytes"), ("encod", "encode_seconds"), ("decod", "decode_fps"), ("fps", "decode_fps"),
                ("parameters", "params"), ("params", "params"), ("spatial information", "si"),
                ("temporal information", "ti"), ("motion", "motion"), ("psnr", "psnr_yuv")]

    def __init__(self, kg: KnowledgeGraph) -> None:
        self.kg = kg

    def parse(self, question: str) -> tuple[str | None, str | None]:
        text = " ".join(tokens(question))
        found = lambda kind: next((e for e in self.kg.of_kind(kind) for a in e.aliases  # noqa: E731
                                   if re.search(rf"\b{re.escape(a)}\b", text)), None)
        seq, codec = found("sequence"), found("codec")
        relation = next((r for k, r in self.KEYWORDS if k in text), None)
        if relation in SEQUENCE_RELATIONS:
            return (seq.id if seq else None), relation
        point = next((p for p in self.kg.points(seq.id if seq else None, codec.id if codec else None)
                      if re.search(rf"\b{re.escape(p.attrs['point'])}\b", text)), None) if seq and codec else None
        return (point.id if point else None), relation

    def ask(self, question: str) -> Answer:
        entity, relation = self.parse(question)
        fact = self.kg.facts.get((entity, relation)) if entity and relation else None
        if fact is None:
            return Answer("no evidence")
        return Answer(describe(relation, fact.value), fact.value, "measured", [[fact.source, fact.field]], entity,
                      relation)
