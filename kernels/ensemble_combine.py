"""Ensemble combination: member probabilities [B, M] -> score [B] and confidence [B].

Methods (shared/REFERENCE.md, made exact):
- averaging: mean(p)
- weighted_average: sum(w p) / sum(w); all-zero weights fall back to the mean
- majority_vote: 1 when more than M/2 members have p > threshold, else 0 (a tie gives 0)
- dynamic: sum(c p) / sum(c) with member confidence c = max(p, 1 - p)
- logit_averaging: sigmoid(sum(w logit(p)) / sum(w)) (plain mean when weights sum to 0)
- stacking: sigmoid(sum(v_m logit_m) + c), a logistic meta-model over member logits
Confidence for every method: (1 / (1 + var(p)) + mean(max(p, 1 - p))) / 2, population variance.

This file holds the PyTorch reference; the Triton kernel lands beside it (issue: fused kernels).
"""

from __future__ import annotations

import torch

from kernels.packing import PackedEnsemble

_EPS = 1e-7


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    total = weights.sum()
    if float(total) == 0.0:
        return values.mean(dim=1)
    return (values * weights).sum(dim=1) / total


def combine_reference(
    member_p: torch.Tensor, packed: PackedEnsemble, member_logits: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    p = member_p.float()
    spec = packed.combine
    m = p.shape[1]
    if member_logits is None:
        clamped = p.clamp(_EPS, 1 - _EPS)
        member_logits = torch.log(clamped) - torch.log1p(-clamped)
    if spec.method == "averaging":
        score = p.mean(dim=1)
    elif spec.method == "weighted_average":
        score = _weighted_mean(p, packed.weights)
    elif spec.method == "majority_vote":
        votes = (p > spec.vote_threshold).sum(dim=1)
        score = (votes * 2 > m).float()
    elif spec.method == "dynamic":
        c = torch.maximum(p, 1 - p)
        score = (c * p).sum(dim=1) / c.sum(dim=1)
    elif spec.method == "logit_averaging":
        score = torch.sigmoid(_weighted_mean(member_logits.float(), packed.weights))
    else:  # stacking
        score = torch.sigmoid(member_logits.float() @ packed.stacking_weights + spec.stacking_bias)
    variance = p.var(dim=1, unbiased=False)
    confidence = (1.0 / (1.0 + variance) + torch.maximum(p, 1 - p).mean(dim=1)) / 2.0
    return score, confidence
