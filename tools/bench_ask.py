"""``hinerv ask`` measured: entity R@1, relation R@1 and end-to-end accuracy on template questions and on 50
questions written by hand (held out of all training), for the exact-match baseline, the pipeline (BuboQA's
evidence product) and the pipeline with the RANA-trained ranker.

    python tools/bench_ask.py --results runs/rd_carphone

The pipeline trains on template questions of seed 0; the 200 test templates are drawn with another seed. The
hand-written questions (``tools/data/ask_paraphrases.json``) name a carphone sweep's entities (presets xs, s, m, l;
x265 at QPs 22-42); those whose gold is null have no evidence in the results, and are right only when the answer
is "no evidence". The gold value of a question is what the graph holds (slots: the curve's value at the slot).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.ask import Asker, Candidate, ExactMatch, Question, template_questions  # noqa: E402
from eval.kg import build_graph  # noqa: E402

PARAPHRASES = ROOT / "tools" / "data" / "ask_paraphrases.json"


def gold_value(reference: Asker, q: Question):
    if q.entity is None:
        return None
    if q.entity.startswith("curve:"):
        return reference.slot_answer(Candidate(q.entity, q.relation, 1.0, 1.0), q.slot).value
    fact = reference.kg.facts.get((q.entity, q.relation))
    return None if fact is None else fact.value


def score(system, questions: list[Question], reference: Asker) -> dict[str, float]:
    ent = rel = e2e = 0
    for q in questions:
        a = system.ask(q.text)
        if q.entity is None:  # nothing in the results answers it: only "no evidence" is right
            ok = a.kind == "none"
            ent, rel, e2e = ent + ok, rel + ok, e2e + ok
            continue
        ent += a.entity == q.entity
        rel += a.relation == q.relation
        e2e += a.kind != "none" and a.value == gold_value(reference, q)
    n = max(1, len(questions))
    return {"entity_r1": ent / n, "relation_r1": rel / n, "accuracy": e2e / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", action="append", required=True, help="a sweep folder; repeatable")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    kg = build_graph(args.results)
    tests = template_questions(kg, args.count, seed=1000 + args.seed)
    hand = [Question(h["q"], h["entity"], h["relation"], tuple(h["slot"]) if h.get("slot") else None)
            for h in json.loads(PARAPHRASES.read_text())["questions"]]
    t0 = time.perf_counter()
    baseline = Asker(kg)
    rana = Asker(kg, ranker="rana")
    trained = time.perf_counter() - t0
    systems = {"exact match": ExactMatch(kg), "pipeline": baseline, "pipeline + RANA ranker": rana}
    print(f"graph: {len(kg.entities)} entities, {len(kg.facts)} facts; training both pipelines {trained:.1f} s; "
          "RANA ranker: training questions with zero loss {:.0%} before, {:.0%} after".format(*rana.ranker.zero_loss_share))
    print(f"{'system':<24} {'set':<22} {'entity R@1':>10} {'relation R@1':>12} {'accuracy':>9}")
    rows = []
    for name, system in systems.items():
        for label, qs in ((f"{len(tests)} templates", tests), (f"{len(hand)} hand-written", hand)):
            s = score(system, qs, baseline)
            rows.append({"system": name, "set": label, **s})
            print(f"{name:<24} {label:<22} {s['entity_r1']:>10.3f} {s['relation_r1']:>12.3f} {s['accuracy']:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
