"""One entry point for ensemble scoring, whatever the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.ensemble_combine import combine_reference
from kernels.fused_scoring import member_logits_reference
from kernels.packing import PackedEnsemble


@dataclass(frozen=True)
class EnsembleOutputs:
    score: torch.Tensor  # [B]
    member_scores: torch.Tensor  # [B, M]
    confidence: torch.Tensor  # [B]


def score_ensemble(x: torch.Tensor, packed: PackedEnsemble) -> EnsembleOutputs:
    """Score `x [B, D]` with every member of `packed` and combine them."""
    if x.dim() != 2 or x.shape[1] != packed.input_dim:
        raise ValueError(f"features must have shape [B, {packed.input_dim}] (got {list(x.shape)})")
    logits = member_logits_reference(x, packed)
    member_p = torch.sigmoid(logits)
    score, confidence = combine_reference(member_p, packed, logits)
    return EnsembleOutputs(score, member_p, confidence)
