"""RANA's attention-weighted multi-negative hinge (relation-aware ranking): a_j = softmax(s(n_j)/τ) over the
negatives, L = Σ_j a_j [γ + s(n_j) − s(p)]₊: the hard negatives weigh most. Used by the ``cap`` plugin (bank
features as negatives) and by ``hinerv ask``'s ranker (``eval.rana``)."""
from __future__ import annotations

import torch


def rana_weights(s: torch.Tensor, negative: torch.Tensor, tau: float) -> torch.Tensor:
    """a_j = softmax over each row's negatives of s/τ (0 on the positives): the hard negatives weigh most."""
    return torch.softmax((s / tau).masked_fill(~negative, float("-inf")), dim=-1)


def rana_hinge(s: torch.Tensor, positive: torch.Tensor, tau: float, gamma: float) -> torch.Tensor:
    """The loss of each row of scores ``s`` (B, N) with one positive per row (``positive`` (B, N) bool, one True):
    Σ_j a_j [γ + s(n_j) − s(p)]₊ over the row's negatives."""
    s_pos = (s * positive).sum(-1, keepdim=True)
    weights = rana_weights(s, ~positive, tau)
    return (weights * (gamma + s - s_pos).clamp_min(0)).sum(-1)
