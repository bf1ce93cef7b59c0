"""Fused batched scoring of every ensemble member plus their combination, in one launch.

For x [B, D]:
    logit_m = sum_{h in m} relu(x . W1[:, h] + b1[h]) * w2[h] + x . L[:, m] + b2[m]
    p_m     = sigmoid(a_m * logit_m + b_m)
then the ensemble's combination (kernels/ensemble_combine.py) in the epilogue. Outputs
score [B], member_scores [B, M], confidence [B], all float32.

The grid is rows x hidden-unit splits. Program (r, s) takes BLOCK_B rows and the s-th share of
the packed hidden units: a GEMM over its BLOCK_H-wide slices of the first layer (tensor cores for
16-bit inputs, tf32 or IEEE float32 for float32 ones; float32 accumulation), bias + ReLU in
registers, and each slice reduced into its members' logits by a small GEMM against the slice's
[BLOCK_H, M] matrix holding each unit's output weight in its member's column — so the
[B, sum(H)] hidden activations never reach global memory. With one split the program finishes
the rows itself; with several, each writes its partial logits, and the last to arrive (an atomic
counter per row block) sums them in split order (deterministic) and runs the epilogue. Splitting
is what keeps a small batch from running on a handful of multiprocessors.

Block sizes, splits, warps and stages are a `KernelConfig`, tuned per batch bucket at model load
(kernels/tuning.py); no tuning happens on live traffic.

This file holds the kernel, its launcher (`score_triton`) and the PyTorch reference
(`member_logits_reference`, the CPU path of the inference service and the oracle of the tests).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels._triton import interpreting, next_power_of_2
from kernels.ensemble_combine import METHOD_IDS, combine_and_store, combine_parameters
from kernels.packing import PackedEnsemble

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# How float32 inputs are multiplied: "ieee" (exact float32, CUDA cores) or "tf32" (tensor cores,
# 10-bit mantissa operands, float32 accumulation). 16-bit inputs always use their tensor cores.
PRECISIONS = ("ieee", "tf32")


@dataclass(frozen=True)
class KernelConfig:
    block_b: int
    block_h: int
    block_d: int
    splits: int = 1
    num_warps: int = 4
    num_stages: int = 3


# ------------------------------------------------------------------------------------- Triton
@triton.jit
def _finish(logits, rows, row_ok, cols, col_ok, b_out_ptr, cal_a_ptr, cal_b_ptr, weights_ptr, stacking_ptr,
            score_ptr, member_ptr, conf_ptr, M, n_members, weight_sum, stacking_bias, vote_threshold,
            METHOD: tl.constexpr):
    """Bias, calibration, sigmoid, the member scores' store and the ensemble combination."""
    b_out = tl.load(b_out_ptr + cols, mask=col_ok, other=0.0)
    cal_a = tl.load(cal_a_ptr + cols, mask=col_ok, other=1.0)
    cal_b = tl.load(cal_b_ptr + cols, mask=col_ok, other=0.0)
    logits = cal_a[None, :] * (logits + b_out[None, :]) + cal_b[None, :]
    p = tl.sigmoid(logits)
    tl.store(member_ptr + rows[:, None] * M + cols[None, :], p, mask=row_ok[:, None] & col_ok[None, :])
    combine_and_store(p, logits, rows, row_ok, cols, col_ok, weights_ptr, stacking_ptr, score_ptr, conf_ptr,
                      n_members, weight_sum, stacking_bias, vote_threshold, METHOD)


@triton.jit
def _linear_logits(logits, x_ptr, lin_ptr, rows, row_ok, cols, D, stride_xb, stride_xd, M_PAD: tl.constexpr,
                   UPCAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_D: tl.constexpr):
    """The logistic-regression members: x @ L into the logits, float32 accumulation."""
    for d0 in range(0, D, BLOCK_D):
        rd = d0 + tl.arange(0, BLOCK_D)
        d_ok = rd < D
        x = tl.load(x_ptr + rows[:, None] * stride_xb + rd[None, :] * stride_xd,
                    mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        lin = tl.load(lin_ptr + rd[:, None] * M_PAD + cols[None, :], mask=d_ok[:, None], other=0.0)
        if UPCAST:
            x = x.to(tl.float32)
            lin = lin.to(tl.float32)
        logits = tl.dot(x, lin, logits, input_precision=PRECISION)
    return logits


@triton.jit
def _reduce_slice(acc, logits, rh, h_ok, cols, b1_ptr, reduce_ptr, M_PAD: tl.constexpr, PRECISION: tl.constexpr):
    """Bias + ReLU on one slice of hidden units, then their sum into the member logits: a GEMM
    with the slice's [BLOCK_H, M_PAD] matrix (each unit's output weight in its member's column)."""
    b1 = tl.load(b1_ptr + rh, mask=h_ok, other=0.0)
    hidden = tl.maximum(acc + b1[None, :], 0.0)
    reduce = tl.load(reduce_ptr + rh[:, None] * M_PAD + cols[None, :], mask=h_ok[:, None], other=0.0)
    return tl.dot(hidden, reduce, logits, input_precision=PRECISION)


# B is not specialized on (Triton would compile apart batches of 1 row, of a multiple of 16 and
# of others): one compile per config then serves every batch of its bucket, so what tuning
# compiles at load is all that live traffic ever launches.
@triton.jit(do_not_specialize=["B"])
def _fused_ensemble_kernel(
    x_ptr, w1_ptr, b1_ptr, reduce_ptr, lin_ptr, b_out_ptr, cal_a_ptr, cal_b_ptr,
    weights_ptr, stacking_ptr,
    score_ptr, member_ptr, conf_ptr, partial_ptr, arrived_ptr,
    B, D, H, M, stride_xb, stride_xd, SPLITS, slices_per_split,
    n_members, weight_sum, stacking_bias, vote_threshold,
    METHOD: tl.constexpr, M_PAD: tl.constexpr, HAS_LINEAR: tl.constexpr, UPCAST: tl.constexpr, X_RESIDENT: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid = tl.program_id(0)
    split = pid % SPLITS  # the splits of one row block are neighbours: x stays in L2 between them
    block = (pid // SPLITS).to(tl.int64)  # 64-bit offsets: B * D can pass 2^31
    rows = block * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    cols = tl.arange(0, M_PAD)
    col_ok = cols < M
    logits = tl.zeros((BLOCK_B, M_PAD), dtype=tl.float32)

    if HAS_LINEAR:  # logistic-regression members: the first split's share
        if split == 0:
            logits = _linear_logits(logits, x_ptr, lin_ptr, rows, row_ok, cols, D, stride_xb, stride_xd,
                                    M_PAD, UPCAST, PRECISION, BLOCK_D)

    # MLP members: this split's slices of hidden units, never written out.
    h_begin = split * slices_per_split * BLOCK_H
    h_end = tl.minimum(H, h_begin + slices_per_split * BLOCK_H)
    if X_RESIDENT:
        # D fits one block: the x tile is loaded once and stays on chip for every slice, so each
        # slice streams only its first-layer weights (what keeps large batches compute-bound).
        rd = tl.arange(0, BLOCK_D)
        d_ok = rd < D
        x = tl.load(x_ptr + rows[:, None] * stride_xb + rd[None, :] * stride_xd,
                    mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        if UPCAST:
            x = x.to(tl.float32)
        for h0 in range(h_begin, h_end, BLOCK_H):
            rh = h0 + tl.arange(0, BLOCK_H)
            h_ok = rh < H
            w1 = tl.load(w1_ptr + rd[:, None] * H + rh[None, :], mask=d_ok[:, None] & h_ok[None, :], other=0.0)
            if UPCAST:
                w1 = w1.to(tl.float32)
            acc = tl.dot(x, w1, input_precision=PRECISION)
            logits = _reduce_slice(acc, logits, rh, h_ok, cols, b1_ptr, reduce_ptr, M_PAD, PRECISION)
    else:
        for h0 in range(h_begin, h_end, BLOCK_H):
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
                acc = tl.dot(x, w1, acc, input_precision=PRECISION)
            logits = _reduce_slice(acc, logits, rh, h_ok, cols, b1_ptr, reduce_ptr, M_PAD, PRECISION)

    if SPLITS == 1:
        _finish(logits, rows, row_ok, cols, col_ok, b_out_ptr, cal_a_ptr, cal_b_ptr, weights_ptr, stacking_ptr,
                score_ptr, member_ptr, conf_ptr, M, n_members, weight_sum, stacking_bias, vote_threshold, METHOD)
    else:
        offsets = rows[:, None] * M_PAD + cols[None, :]
        tl.store(partial_ptr + split * B * M_PAD + offsets, logits, mask=row_ok[:, None])
        # Every thread's partial is written before the counter moves (the release publishes them).
        tl.debug_barrier()
        arrived = tl.atomic_add(arrived_ptr + block, 1, sem="acq_rel")
        if arrived == SPLITS - 1:  # the last split of this row block: sum in split order, finish
            total = tl.zeros((BLOCK_B, M_PAD), dtype=tl.float32)
            for s in range(0, SPLITS):
                total += tl.load(partial_ptr + s * B * M_PAD + offsets, mask=row_ok[:, None], other=0.0,
                                 cache_modifier=".cg")
            _finish(total, rows, row_ok, cols, col_ok, b_out_ptr, cal_a_ptr, cal_b_ptr, weights_ptr, stacking_ptr,
                    score_ptr, member_ptr, conf_ptr, M, n_members, weight_sum, stacking_bias, vote_threshold, METHOD)
            tl.atomic_xchg(arrived_ptr + block, 0)  # ready for the next launch on this stream


# ------------------------------------------------------------------------------------ launcher
@dataclass(frozen=True)
class FusedWeights:
    """The packed ensemble laid out for the kernel on one device, GEMM operands in one dtype."""

    w1: torch.Tensor  # [D, H] (x's dtype)
    b1: torch.Tensor  # [H] float32
    reduce: torch.Tensor  # [H, M_PAD] float32: w2[h] in column owner[h]
    lin: torch.Tensor  # [D, M_PAD] (x's dtype), zero columns for MLP members and padding
    b_out: torch.Tensor
    cal_a: torch.Tensor
    cal_b: torch.Tensor
    weights: torch.Tensor
    stacking: torch.Tensor
    weight_sum: float
    m_pad: int
    has_linear: bool


def m_pad(members: int) -> int:
    return max(16, next_power_of_2(members))  # GPU tl.dot needs every dimension >= 16


def prepare(packed: PackedEnsemble, dtype: torch.dtype, device: torch.device) -> FusedWeights:
    """Kernel-ready weights, built once per (device, dtype) and cached on the ensemble."""
    key = (str(device), dtype)
    if key not in packed.prepared:
        def f32(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=torch.float32).contiguous()

        m, pad, h = packed.members, m_pad(packed.members), int(packed.w_hidden.shape[1])
        # An empty hidden layer still needs valid pointers; the kernel's H loop never runs.
        w1 = packed.w_hidden if h else torch.zeros(packed.input_dim, 1)
        reduce = torch.zeros(max(h, 1), pad)
        if h:
            reduce[torch.arange(h), packed.hidden_member.cpu()] = packed.w_out.cpu().float()
        lin = torch.zeros(packed.input_dim, pad)
        lin[:, :m] = packed.w_linear.cpu().float()
        weights, stacking, weight_sum = combine_parameters(packed, device)
        packed.prepared[key] = FusedWeights(
            w1=w1.to(device=device, dtype=dtype).contiguous(),
            b1=f32(packed.b_hidden if h else torch.zeros(1)),
            reduce=f32(reduce),
            lin=lin.to(device=device, dtype=dtype).contiguous(),
            b_out=f32(packed.b_out), cal_a=f32(packed.cal_a), cal_b=f32(packed.cal_b),
            weights=weights, stacking=stacking, weight_sum=weight_sum, m_pad=pad,
            has_linear=any(size == 0 for size in packed.hidden_sizes),
        )
    return packed.prepared[key]


def hidden_slices(packed: PackedEnsemble, block_h: int) -> int:
    return max(1, triton.cdiv(int(packed.w_hidden.shape[1]), block_h))


def default_config(batch: int, packed: PackedEnsemble, multiprocessors: int) -> KernelConfig:
    """The config used where none was tuned: enough programs to cover the multiprocessors."""
    if interpreting():
        return KernelConfig(16, 16, 16, splits=1, num_warps=1, num_stages=1)
    block_b = min(64, max(16, next_power_of_2(batch)))
    slices = hidden_slices(packed, 64)
    splits = max(1, min(slices, multiprocessors // triton.cdiv(batch, block_b)))
    return KernelConfig(block_b, 64, 64, splits=splits, num_warps=4, num_stages=3)


class _Workspace:
    """Per (device, stream) scratch for split launches: partial logits and the arrival counters
    (kept at zero between launches by the kernel itself). Launches on one stream run in order,
    so they can share it; another stream gets its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffers: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, device: torch.device, partial_floats: int, counters: int) -> tuple[torch.Tensor, torch.Tensor]:
        stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
        key = (str(device), stream)
        with self._lock:
            partial, arrived = self._buffers.get(key, (None, None))
            if partial is None or partial.numel() < partial_floats:
                partial = torch.empty(max(partial_floats, 1), dtype=torch.float32, device=device)
            if arrived is None or arrived.numel() < counters:
                arrived = torch.zeros(max(counters, 1), dtype=torch.int32, device=device)
            self._buffers[key] = (partial, arrived)
            return partial, arrived


_WORKSPACE = _Workspace()


@functools.cache
def multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1


# ---------------------------------------------------------------------------- tuned configs
def _tuned_key(dtype: torch.dtype, precision: str) -> tuple:
    return ("tuned", dtype, precision)


def tuned_table(packed: PackedEnsemble, dtype: torch.dtype, precision: str) -> dict[int, KernelConfig]:
    """The per-bucket configs kept on the ensemble (kernels/tuning.py fills it at load)."""
    return packed.prepared.setdefault(_tuned_key(dtype, precision), {})


def keep_tuning(source: PackedEnsemble, target: PackedEnsemble) -> None:
    """Give `target` (the same shapes, new weights) the configs tuned for `source`."""
    target.prepared.update({k: v for k, v in source.prepared.items() if isinstance(k, tuple) and k[0] == "tuned"})


def tuned_config(packed: PackedEnsemble, dtype: torch.dtype, precision: str, batch: int) -> KernelConfig | None:
    """The config tuned for this batch's bucket (or the largest bucket tuned, for bigger ones)."""
    table = packed.prepared.get(_tuned_key(dtype, precision))
    if not table:
        return None
    bucket = next_power_of_2(batch)
    if bucket in table:
        return table[bucket]
    largest = max(table)
    return table[largest] if bucket > largest else None


Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def score_triton(x: torch.Tensor, packed: PackedEnsemble, out: Outputs | None = None,
                 config: KernelConfig | None = None, precision: str = "ieee") -> Outputs:
    """Launch the fused kernel: (score [B], member_scores [B, M], confidence [B]), float32.

    `out` lets a caller reuse preallocated contiguous float32 outputs of those shapes; `config`
    picks blocks and splits (default: the one tuned for this batch's bucket, kernels/tuning.py,
    else a heuristic); `precision` is how float32 inputs are multiplied (PRECISIONS)."""
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"features dtype must be one of float32, float16, bfloat16 (got {x.dtype})")
    if x.dim() != 2 or x.shape[1] != packed.input_dim:
        raise ValueError(f"features must have shape [B, {packed.input_dim}] (got {list(x.shape)})")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} (got {precision!r})")
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
    if config is None:
        config = tuned_config(packed, x.dtype, precision, b) or default_config(b, packed, multiprocessors(x.device))
    slices = hidden_slices(packed, config.block_h)
    splits = max(1, min(config.splits, slices))
    per_split = triton.cdiv(slices, splits)
    splits = triton.cdiv(slices, per_split)  # no split left without work
    row_blocks = triton.cdiv(b, config.block_b)
    partial, arrived = (_WORKSPACE.get(x.device, splits * b * weights.m_pad, row_blocks) if splits > 1
                        else (score, score))  # unused with one split
    _fused_ensemble_kernel[(row_blocks * splits,)](
        x, weights.w1, weights.b1, weights.reduce, weights.lin,
        weights.b_out, weights.cal_a, weights.cal_b, weights.weights, weights.stacking,
        score, members, confidence, partial, arrived,
        b, d, h, m, x.stride(0), x.stride(1), splits, per_split,
        float(m), weights.weight_sum, float(packed.combine.stacking_bias), float(packed.combine.vote_threshold),
        METHOD=METHOD_IDS[packed.combine.method], M_PAD=weights.m_pad, HAS_LINEAR=weights.has_linear,
        UPCAST=interpreting(),  # the interpreter mishandles 16-bit dot/arithmetic
        X_RESIDENT=config.block_d >= d,
        # Both GEMMs of float32 inputs, and the float32 hidden-to-logit reduction of every dtype:
        # exact for "ieee", tf32 otherwise (16-bit operands ignore it).
        PRECISION=precision if x.dtype == torch.float32 else "tf32",
        BLOCK_B=config.block_b, BLOCK_D=config.block_d, BLOCK_H=config.block_h,
        num_warps=config.num_warps, num_stages=config.num_stages,
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
