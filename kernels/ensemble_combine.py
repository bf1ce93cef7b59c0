"""Ensemble combination: member probabilities [B, M] -> score [B] and confidence [B].

Methods (shared/REFERENCE.md, made exact):
- averaging: mean(p)
- weighted_average: sum(w p) / sum(w); all-zero weights fall back to the mean
- majority_vote: 1 when more than M/2 members have p > threshold, else 0 (a tie gives 0)
- dynamic: sum(c p) / sum(c) with member confidence c = max(p, 1 - p)
- logit_averaging: sigmoid(sum(w logit(p)) / sum(w)) (plain mean when weights sum to 0)
- stacking: sigmoid(sum(v_m logit_m) + c), a logistic meta-model over member logits
Confidence for every method: (1 / (1 + var(p)) + mean(max(p, 1 - p))) / 2, population variance.

This file holds the three sides of the op: `combine_rows` (the Triton device function, also
fused into the scoring kernel's epilogue), `combine_triton` (a standalone kernel and launcher
for member scores produced elsewhere), and `combine_reference` (PyTorch, for CPU and tests).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._triton import interpreting, next_power_of_2
from kernels.packing import METHODS, PackedEnsemble

_EPS = 1e-7
METHOD_IDS = {name: index for index, name in enumerate(METHODS)}


# ------------------------------------------------------------------------------------- Triton
@triton.jit
def combine_rows(p, logits, valid, weights, stacking, n_members, weight_sum, stacking_bias, vote_threshold,
                 METHOD: tl.constexpr):
    """Combine one tile of rows. p, logits: [BLOCK_B, M_PAD] float32; valid, weights,
    stacking: [1, M_PAD] (padding columns are invalid and weigh 0). Returns (score, confidence)."""
    p_valid = tl.where(valid, p, 0.0)
    mean = tl.sum(p_valid, axis=1) / n_members
    member_conf = tl.where(valid, tl.maximum(p, 1.0 - p), 0.0)
    if METHOD == 0:  # averaging
        score = mean
    elif METHOD == 1:  # weighted_average
        score = tl.sum(p_valid * weights, axis=1) / weight_sum
    elif METHOD == 2:  # majority_vote
        votes = tl.sum(tl.where(valid & (p > vote_threshold), 1.0, 0.0), axis=1)
        score = tl.where(votes * 2.0 > n_members, 1.0, 0.0)
    elif METHOD == 3:  # dynamic
        score = tl.sum(member_conf * p, axis=1) / tl.sum(member_conf, axis=1)
    elif METHOD == 4:  # logit_averaging
        score = tl.sigmoid(tl.sum(tl.where(valid, logits, 0.0) * weights, axis=1) / weight_sum)
    else:  # stacking
        score = tl.sigmoid(tl.sum(tl.where(valid, logits, 0.0) * stacking, axis=1) + stacking_bias)
    deviation = tl.where(valid, p - mean[:, None], 0.0)
    variance = tl.sum(deviation * deviation, axis=1) / n_members
    confidence = (1.0 / (1.0 + variance) + tl.sum(member_conf, axis=1) / n_members) * 0.5
    return score, confidence


@triton.jit
def combine_and_store(p, logits, rows, row_ok, cols, col_ok, weights_ptr, stacking_ptr, score_ptr, conf_ptr,
                      n_members, weight_sum, stacking_bias, vote_threshold, METHOD: tl.constexpr):
    """The epilogue both kernels share: combine a tile of rows and store score and confidence."""
    weights = tl.load(weights_ptr + cols, mask=col_ok, other=0.0)
    stacking = tl.load(stacking_ptr + cols, mask=col_ok, other=0.0)
    score, confidence = combine_rows(p, logits, col_ok[None, :], weights[None, :], stacking[None, :],
                                     n_members, weight_sum, stacking_bias, vote_threshold, METHOD)
    tl.store(score_ptr + rows, score, mask=row_ok)
    tl.store(conf_ptr + rows, confidence, mask=row_ok)


@triton.jit
def _combine_kernel(p_ptr, weights_ptr, stacking_ptr, score_ptr, conf_ptr,
                    B, M, stride_pb, stride_pm, n_members, weight_sum, stacking_bias, vote_threshold,
                    METHOD: tl.constexpr, BLOCK_B: tl.constexpr, M_PAD: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, M_PAD)
    row_ok = rows < B
    col_ok = cols < M
    mask = row_ok[:, None] & col_ok[None, :]
    p = tl.load(p_ptr + rows[:, None] * stride_pb + cols[None, :] * stride_pm, mask=mask, other=0.5).to(tl.float32)
    clamped = tl.minimum(tl.maximum(p, 1e-7), 1.0 - 1e-7)
    logits = tl.log(clamped) - tl.log(1.0 - clamped)
    combine_and_store(p, logits, rows, row_ok, cols, col_ok, weights_ptr, stacking_ptr, score_ptr, conf_ptr,
                      n_members, weight_sum, stacking_bias, vote_threshold, METHOD)


def combine_parameters(packed: PackedEnsemble, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(weights, stacking weights, weight sum) as the kernels take them: zero-sum weights become
    the plain mean (weights of 1, sum M), so the kernel never divides by zero."""
    weights = packed.weights.to(device=device, dtype=torch.float32)
    weight_sum = float(weights.sum())
    if weight_sum == 0.0:
        weights = torch.ones_like(weights)
        weight_sum = float(packed.members)
    return weights.contiguous(), packed.stacking_weights.to(device=device, dtype=torch.float32).contiguous(), weight_sum


def combine_triton(member_p: torch.Tensor, packed: PackedEnsemble) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher of the standalone combination kernel; float32 outputs [B]."""
    if member_p.dim() != 2 or member_p.shape[1] != packed.members:
        raise ValueError(f"member scores must have shape [B, {packed.members}] (got {list(member_p.shape)})")
    b, m = member_p.shape
    score = torch.empty(b, dtype=torch.float32, device=member_p.device)
    confidence = torch.empty(b, dtype=torch.float32, device=member_p.device)
    if b == 0:
        return score, confidence
    weights, stacking, weight_sum = combine_parameters(packed, member_p.device)
    block_b = 16 if interpreting() else 128
    grid = (triton.cdiv(b, block_b),)
    _combine_kernel[grid](
        member_p, weights, stacking, score, confidence,
        b, m, member_p.stride(0), member_p.stride(1), float(m), weight_sum,
        float(packed.combine.stacking_bias), float(packed.combine.vote_threshold),
        METHOD=METHOD_IDS[packed.combine.method], BLOCK_B=block_b, M_PAD=max(16, next_power_of_2(m)),
    )
    return score, confidence


# ---------------------------------------------------------------------------------- reference
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
    weights = packed.weights.to(p.device)
    if spec.method == "averaging":
        score = p.mean(dim=1)
    elif spec.method == "weighted_average":
        score = _weighted_mean(p, weights)
    elif spec.method == "majority_vote":
        votes = (p > spec.vote_threshold).sum(dim=1)
        score = (votes * 2 > m).float()
    elif spec.method == "dynamic":
        c = torch.maximum(p, 1 - p)
        score = (c * p).sum(dim=1) / c.sum(dim=1)
    elif spec.method == "logit_averaging":
        score = torch.sigmoid(_weighted_mean(member_logits.float(), weights))
    else:  # stacking
        score = torch.sigmoid(member_logits.float() @ packed.stacking_weights.to(p.device) + spec.stacking_bias)
    variance = p.var(dim=1, unbiased=False)
    confidence = (1.0 / (1.0 + variance) + torch.maximum(p, 1 - p).mean(dim=1)) / 2.0
    return score, confidence
