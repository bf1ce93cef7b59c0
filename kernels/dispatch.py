"""One entry point for ensemble scoring: Triton on CUDA tensors; on CPU tensors NumPy for
serving-sized batches (kernels/cpu_scoring.py) and the PyTorch reference beyond; same signature
and outputs (float32)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels import cpu_scoring
from kernels.ensemble_combine import combine_reference
from kernels.fused_scoring import member_logits_reference, score_triton
from kernels.packing import PackedEnsemble


@dataclass(frozen=True)
class EnsembleOutputs:
    score: torch.Tensor  # [B]
    member_scores: torch.Tensor  # [B, M]
    confidence: torch.Tensor  # [B]


def score_ensemble(x: torch.Tensor, packed: PackedEnsemble, backend: str = "auto", precision: str = "ieee") -> EnsembleOutputs:
    """Score `x [B, D]` with every member of `packed` and combine them.

    backend: "auto" (Triton for CUDA tensors; NumPy for CPU batches of up to
    `cpu_scoring.MAX_ROWS` rows, the reference beyond), "triton", "numpy" or "reference".
    precision: how the Triton kernel multiplies float32 inputs ("ieee" or "tf32"); the CPU
    paths are IEEE float32 always.
    """
    if x.dim() != 2 or x.shape[1] != packed.input_dim:
        raise ValueError(f"features must have shape [B, {packed.input_dim}] (got {list(x.shape)})")
    if backend == "triton" or (backend == "auto" and x.is_cuda):
        return EnsembleOutputs(*score_triton(x, packed, precision=precision))
    if backend == "numpy" or (backend == "auto" and not x.is_cuda and x.shape[0] <= cpu_scoring.MAX_ROWS):
        score, member_p, confidence = cpu_scoring.score(x.float().numpy(), cpu_scoring.prepare(packed))
        return EnsembleOutputs(torch.from_numpy(score), torch.from_numpy(member_p), torch.from_numpy(confidence))
    logits = member_logits_reference(x, packed)
    member_p = torch.sigmoid(logits)
    score, confidence = combine_reference(member_p, packed, logits)
    return EnsembleOutputs(score, member_p, confidence)
