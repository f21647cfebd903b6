"""A relation-aware ranker of ``hinerv ask``'s candidate answers, trained with RANA's attention-weighted
multi-negative hinge (``common.rana``).

A candidate (entity, relation) of a question scores s = q·W[:, relation] + a·log(entity score) + b·log p(relation):
the question's tf-idf vector q meets a learnt vector per relation (relation-aware), beside the evidence the
baseline combines. Trained on template questions: each question's gold candidate is the positive, its other
reachable candidates the negatives (a_j = softmax(s(n_j)/τ), L = Σ_j a_j [γ + s(n_j) − s(p)]₊).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from common.rana import rana_hinge


class RelationRanker:
    def __init__(self, relations: Sequence[str], tau: float = 0.5, gamma: float = 1.0, epochs: int = 80,
                 lr: float = 0.05, seed: int = 0) -> None:
        self.relations = {r: i for i, r in enumerate(relations)}
        self.tau, self.gamma, self.epochs, self.lr, self.seed = tau, gamma, epochs, lr, seed
        self.weight: torch.Tensor | None = None
        self.mix = torch.tensor([0.6, 0.1])  # a, b: BuboQA's exponents to start from
        self.zero_loss_share: tuple[float, float] | None = None  # questions with zero loss, before and after

    def _inputs(self, cands: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        rel = torch.tensor([self.relations[c.relation] for c in cands])
        evidence = torch.tensor([[np.log(max(c.entity_score, 1e-9)), np.log(max(c.relation_prob, 1e-9))]
                                 for c in cands], dtype=torch.float32)
        return rel, evidence

    def fit(self, groups: Sequence[tuple[np.ndarray, Sequence[Any], int]]) -> "RelationRanker":
        """``groups``: (question vector, candidates, index of the gold one) per training question; trained as one
        padded batch (full-batch Adam)."""
        torch.manual_seed(self.seed)
        if not groups:
            return self
        width = max(len(c) for _, c, _ in groups)
        q = torch.tensor(np.stack([g[0] for g in groups]), dtype=torch.float32)  # (B, D)
        rel = torch.zeros(len(groups), width, dtype=torch.long)
        evidence = torch.zeros(len(groups), width, 2)
        valid = torch.zeros(len(groups), width, dtype=torch.bool)
        positive = torch.zeros(len(groups), width, dtype=torch.bool)
        for i, (_, cands, gold) in enumerate(groups):
            r, e = self._inputs(cands)
            rel[i, :len(cands)], evidence[i, :len(cands)], valid[i, :len(cands)] = r, e, True
            positive[i, gold] = True
        weight = torch.zeros(q.shape[1], len(self.relations), requires_grad=True)
        mix = self.mix.clone().requires_grad_(True)
        opt = torch.optim.Adam([weight, mix], lr=self.lr)
        zero = []
        for epoch in range(self.epochs + 1):
            opt.zero_grad()
            s = torch.gather(q @ weight, 1, rel) + evidence @ mix  # (B, N)
            s = s.masked_fill(~valid, -1e4)  # padding: no weight among the negatives, no margin
            per_question = rana_hinge(s, positive, self.tau, self.gamma)
            if epoch in (0, self.epochs):
                zero.append(float((per_question == 0).float().mean()))
            if epoch == self.epochs:
                break
            loss = per_question.mean() + 1e-4 * weight.pow(2).sum()
            loss.backward()
            opt.step()
        self.zero_loss_share = (zero[0], zero[-1])
        self.weight, self.mix = weight.detach(), mix.detach()
        return self

    def scores(self, q: np.ndarray, cands: Sequence[Any]) -> list[float]:
        rel, evidence = self._inputs(cands)
        weight = self.weight if self.weight is not None else torch.zeros(len(q), len(self.relations))
        return ((torch.tensor(q, dtype=torch.float32) @ weight)[rel] + evidence @ self.mix).tolist()
