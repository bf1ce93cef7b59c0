"""Fused batched scoring of every ensemble member plus their combination, in one launch.

For x [B, D]:
    logit_m = sum_{h in m} relu(x . W1[:, h] + b1[h]) * w2[h] + x . L[:, m] + b2[m]
    p_m     = sigmoid(a_m * logit_m + b_m)
then the ensemble's combination (kernels/ensemble_combine.py) in the epilogue. Outputs
score [B], member_scores [B, M], confidence [B], all float32.

One program scores BLOCK_B rows: a grouped GEMM over the packed first layer in BLOCK_H-wide
slices (float32 accumulation), bias + ReLU + the second-layer weight applied in registers, and
each slice reduced into its members' logits with a small GEMM against the slice's 0/1
member-selection matrix, so the [B, sum(H)] hidden activations never reach global memory.

This file holds the kernel, its launcher (`score_triton`) and the PyTorch reference
(`member_logits_reference`, the CPU path of the inference service and the oracle of the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels._triton import interpreting, next_power_of_2
from kernels.ensemble_combine import METHOD_IDS, combine_and_store, combine_parameters
from kernels.packing import PackedEnsemble

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# ------------------------------------------------------------------------------------- Triton
def _configs() -> list[triton.Config]:
    if interpreting():  # the interpreter runs one config (autotune needs a GPU driver)
        return [triton.Config({"BLOCK_B": 16, "BLOCK_D": 16, "BLOCK_H": 16}, num_warps=1)]
    return [
        triton.Config({"BLOCK_B": bb, "BLOCK_D": bd, "BLOCK_H": bh}, num_warps=w, num_stages=s)
        for bb in (64, 128)
        for bd in (32, 64)
        for bh in (64, 128)
        for w, s in ((4, 3), (8, 3), (8, 4))
    ]


@triton.autotune(configs=_configs(), key=["B_BUCKET", "D", "H", "M", "METHOD"])
@triton.jit
def _fused_ensemble_kernel(
    x_ptr, w1_ptr, b1_ptr, w2_ptr, owner_ptr, lin_ptr, b_out_ptr, cal_a_ptr, cal_b_ptr,
    weights_ptr, stacking_ptr,
    score_ptr, member_ptr, conf_ptr,
    B, D, H, M, stride_xb, stride_xd, B_BUCKET,
    n_members, weight_sum, stacking_bias, vote_threshold,
    METHOD: tl.constexpr, M_PAD: tl.constexpr, UPCAST: tl.constexpr,
    GEMM_PRECISION: tl.constexpr, REDUCE_PRECISION: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # 64-bit offsets: B * D can pass 2^31
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    cols = tl.arange(0, M_PAD)
    col_ok = cols < M
    logits = tl.zeros((BLOCK_B, M_PAD), dtype=tl.float32)

    # Logistic-regression members: x @ L, accumulated in float32.
    for d0 in range(0, D, BLOCK_D):
        rd = d0 + tl.arange(0, BLOCK_D)
        d_ok = rd < D
        x = tl.load(x_ptr + rows[:, None] * stride_xb + rd[None, :] * stride_xd,
                    mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        lin = tl.load(lin_ptr + rd[:, None] * M + cols[None, :], mask=d_ok[:, None] & col_ok[None, :], other=0.0)
        if UPCAST:
            x = x.to(tl.float32)
            lin = lin.to(tl.float32)
        logits += tl.dot(x, lin, input_precision=GEMM_PRECISION)

    # MLP members: one slice of hidden units at a time, never written out.
    for h0 in range(0, H, BLOCK_H):
        rh = h0 + tl.arange(0, BLOCK_H)
        h_ok = rh < H
        acc = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            rd = d0 + tl.arange(0, BLOCK_D)
            d_ok = rd < D
            x = tl.load(x_ptr + rows[:, None] * stride_xb + rd[None, :] * stride_xd,
                        mask=row_ok[:, None] & d_ok[None, :], other=0.0)
            w1 = tl.load(w1_ptr + rd[:, None] * H + rh[None, :], mask=d_ok[:, None] & h_ok[None, :], other=0.0)
            if UPCAST:
                x = x.to(tl.float32)
                w1 = w1.to(tl.float32)
            acc += tl.dot(x, w1, input_precision=GEMM_PRECISION)
        b1 = tl.load(b1_ptr + rh, mask=h_ok, other=0.0)
        w2 = tl.load(w2_ptr + rh, mask=h_ok, other=0.0)
        owner = tl.load(owner_ptr + rh, mask=h_ok, other=-1)
        hidden = tl.maximum(acc + b1[None, :], 0.0) * w2[None, :]
        select = tl.where(owner[:, None] == cols[None, :], 1.0, 0.0)
        logits += tl.dot(hidden, select, input_precision=REDUCE_PRECISION)

    b_out = tl.load(b_out_ptr + cols, mask=col_ok, other=0.0)
    cal_a = tl.load(cal_a_ptr + cols, mask=col_ok, other=1.0)
    cal_b = tl.load(cal_b_ptr + cols, mask=col_ok, other=0.0)
    logits = cal_a[None, :] * (logits + b_out[None, :]) + cal_b[None, :]
    p = tl.sigmoid(logits)
    tl.store(member_ptr + rows[:, None] * M + cols[None, :], p, mask=row_ok[:, None] & col_ok[None, :])

    combine_and_store(p, logits, rows, row_ok, cols, col_ok, weights_ptr, stacking_ptr, score_ptr, conf_ptr,
                      n_members, weight_sum, stacking_bias, vote_threshold, METHOD)


@dataclass(frozen=True)
class FusedWeights:
    """The packed ensemble laid out for the kernel on one device, GEMM operands in one dtype."""

    w1: torch.Tensor  # [D, H] (x's dtype)
    b1: torch.Tensor  # [H] float32
    w2: torch.Tensor  # [H] float32
    owner: torch.Tensor  # [H] int32
    lin: torch.Tensor  # [D, M] (x's dtype)
    b_out: torch.Tensor
    cal_a: torch.Tensor
    cal_b: torch.Tensor
    weights: torch.Tensor
    stacking: torch.Tensor
    weight_sum: float


def prepare(packed: PackedEnsemble, dtype: torch.dtype, device: torch.device) -> FusedWeights:
    """Kernel-ready weights, built once per (device, dtype) and cached on the ensemble."""
    key = (str(device), dtype)
    if key not in packed.prepared:
        def f32(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=torch.float32).contiguous()

        # An empty hidden layer still needs a valid pointer; the kernel's H loop never runs.
        w1 = packed.w_hidden if packed.w_hidden.shape[1] else torch.zeros(packed.input_dim, 1)
        weights, stacking, weight_sum = combine_parameters(packed, device)
        packed.prepared[key] = FusedWeights(
            w1=w1.to(device=device, dtype=dtype).contiguous(),
            b1=f32(packed.b_hidden if packed.b_hidden.numel() else torch.zeros(1)),
            w2=f32(packed.w_out if packed.w_out.numel() else torch.zeros(1)),
            owner=(packed.hidden_member if packed.hidden_member.numel() else torch.zeros(1, dtype=torch.int64)).to(device=device, dtype=torch.int32).contiguous(),
            lin=packed.w_linear.to(device=device, dtype=dtype).contiguous(),
            b_out=f32(packed.b_out), cal_a=f32(packed.cal_a), cal_b=f32(packed.cal_b),
            weights=weights, stacking=stacking, weight_sum=weight_sum,
        )
    return packed.prepared[key]


Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def score_triton(x: torch.Tensor, packed: PackedEnsemble, out: Outputs | None = None) -> Outputs:
    """Launch the fused kernel: (score [B], member_scores [B, M], confidence [B]), float32.

    `out` lets a caller reuse preallocated contiguous float32 outputs of those shapes."""
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"features dtype must be one of float32, float16, bfloat16 (got {x.dtype})")
    if x.dim() != 2 or x.shape[1] != packed.input_dim:
        raise ValueError(f"features must have shape [B, {packed.input_dim}] (got {list(x.shape)})")
    b, d = x.shape
    m, h = packed.members, int(packed.w_hidden.shape[1])
    if out is None:
        score = torch.empty(b, dtype=torch.float32, device=x.device)
        members = torch.empty(b, m, dtype=torch.float32, device=x.device)
        confidence = torch.empty(b, dtype=torch.float32, device=x.device)
    else:
        score, members, confidence = out
        for tensor, shape in zip(out, ((b,), (b, m), (b,))):
            if tuple(tensor.shape) != shape or tensor.dtype != torch.float32 or not tensor.is_contiguous():
                raise ValueError(f"out: expected contiguous float32 tensors of shapes [{b}], [{b}, {m}], [{b}]")
    if b == 0:
        return score, members, confidence
    weights = prepare(packed, x.dtype, x.device)
    full_precision = x.dtype == torch.float32

    def grid(meta):
        return (triton.cdiv(b, meta["BLOCK_B"]),)

    _fused_ensemble_kernel[grid](
        x, weights.w1, weights.b1, weights.w2, weights.owner, weights.lin,
        weights.b_out, weights.cal_a, weights.cal_b, weights.weights, weights.stacking,
        score, members, confidence,
        b, d, h, m, x.stride(0), x.stride(1), min(next_power_of_2(b), 1 << 16),
        float(m), weights.weight_sum, float(packed.combine.stacking_bias), float(packed.combine.vote_threshold),
        METHOD=METHOD_IDS[packed.combine.method],
        M_PAD=max(16, next_power_of_2(m)),  # GPU tl.dot needs every dimension >= 16
        UPCAST=interpreting(),  # the interpreter mishandles 16-bit dot/arithmetic
        GEMM_PRECISION="ieee" if full_precision else "tf32",
        # float32 inputs get exact float32 reductions; 16-bit inputs already tolerate tf32.
        REDUCE_PRECISION="ieee" if full_precision else "tf32",
    )
    return score, members, confidence


# ---------------------------------------------------------------------------------- reference
def member_logits_reference(x: torch.Tensor, packed: PackedEnsemble) -> torch.Tensor:
    """Calibrated member logits [B, M] in float32, whatever the input dtype."""
    x = x.float()
    logits = x @ packed.w_linear + packed.b_out
    if packed.w_hidden.shape[1]:
        hidden = torch.relu(x @ packed.w_hidden + packed.b_hidden)  # [B, sum(H)]
        logits = logits.index_add(1, packed.hidden_member, hidden * packed.w_out)
    return packed.cal_a * logits + packed.cal_b


def member_scores_reference(x: torch.Tensor, packed: PackedEnsemble) -> torch.Tensor:
    return torch.sigmoid(member_logits_reference(x, packed))
