"""One entry point for ensemble scoring: Triton on CUDA tensors, the PyTorch reference on CPU
tensors, same signature and outputs (float32)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.ensemble_combine import combine_reference
from kernels.fused_scoring import member_logits_reference, score_triton
from kernels.packing import PackedEnsemble


@dataclass(frozen=True)
class EnsembleOutputs:
    score: torch.Tensor  # [B]
    member_scores: torch.Tensor  # [B, M]
    confidence: torch.Tensor  # [B]


def score_ensemble(x: torch.Tensor, packed: PackedEnsemble, backend: str = "auto") -> EnsembleOutputs:
    """Score `x [B, D]` with every member of `packed` and combine them.

    backend: "auto" (Triton for CUDA tensors, reference otherwise), "triton" or "reference".
    """
    if x.dim() != 2 or x.shape[1] != packed.input_dim:
        raise ValueError(f"features must have shape [B, {packed.input_dim}] (got {list(x.shape)})")
    if backend == "triton" or (backend == "auto" and x.is_cuda):
        return EnsembleOutputs(*score_triton(x, packed))
    logits = member_logits_reference(x, packed)
    member_p = torch.sigmoid(logits)
    score, confidence = combine_reference(member_p, packed, logits)
    return EnsembleOutputs(score, member_p, confidence)
