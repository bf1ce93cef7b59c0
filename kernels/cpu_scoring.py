"""Ensemble scoring on the CPU for serving-sized batches, in NumPy.

The same arithmetic as the PyTorch reference (`member_logits_reference` + sigmoid +
`combine_reference`), for the batches a CPU serves: a few to a few hundred rows, where each
PyTorch op costs ~5 us of dispatch and a score took ~80 us for 5 rows; NumPy's ops cost ~1 us.
Larger batches go to the reference (its GEMMs thread; the dispatch cost no longer matters).

The model is prepared once per ensemble (`prepare`): the per-member sum of hidden units, which
the reference does with `index_add`, is a GEMM with a `[sum(H), M]` matrix holding each hidden
unit's output weight in its member's column. Float32 throughout, as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kernels.packing import PackedEnsemble

# Rows up to which NumPy is used; beyond, the PyTorch reference.
MAX_ROWS = 256
_EPS = np.float32(1e-7)


@dataclass(frozen=True)
class NumpyEnsemble:
    w_linear: np.ndarray  # [D, M]
    b_out: np.ndarray  # [M]
    w_hidden: np.ndarray  # [D, sum(H)]
    b_hidden: np.ndarray  # [sum(H)]
    hidden_to_member: np.ndarray  # [sum(H), M]: w_out[h] in column hidden_member[h]
    cal_a: np.ndarray  # [M]
    cal_b: np.ndarray  # [M]
    method: str
    weights: np.ndarray  # [M]; all-zero weights become ones (the plain mean), as the reference
    weight_sum: np.float32
    stacking_weights: np.ndarray  # [M]
    stacking_bias: np.float32
    vote_threshold: float
    linear_members: bool
    """Some member is a logistic regression (its weights are in w_linear)."""


def prepare(packed: PackedEnsemble) -> NumpyEnsemble:
    """The ensemble in NumPy form, built once and kept with the packed ensemble."""
    cached = packed.prepared.get("numpy")
    if cached is not None:
        return cached

    def f32(tensor: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(tensor.detach().cpu().float().numpy())

    members = packed.members
    hidden = int(packed.w_hidden.shape[1])
    to_member = np.zeros((hidden, members), dtype=np.float32)
    to_member[np.arange(hidden), packed.hidden_member.cpu().numpy()] = f32(packed.w_out)
    weights = f32(packed.weights)
    weight_sum = weights.sum(dtype=np.float32)
    if float(weight_sum) == 0.0:
        weights, weight_sum = np.ones(members, dtype=np.float32), np.float32(members)
    prepared = NumpyEnsemble(
        w_linear=f32(packed.w_linear), b_out=f32(packed.b_out), w_hidden=f32(packed.w_hidden), b_hidden=f32(packed.b_hidden),
        hidden_to_member=to_member, cal_a=f32(packed.cal_a), cal_b=f32(packed.cal_b), method=packed.combine.method,
        weights=weights, weight_sum=np.float32(weight_sum), stacking_weights=f32(packed.stacking_weights),
        stacking_bias=np.float32(packed.combine.stacking_bias), vote_threshold=packed.combine.vote_threshold,
        linear_members=any(h == 0 for h in packed.hidden_sizes),
    )
    packed.prepared["numpy"] = prepared
    return prepared


_EXP_LIMIT = np.float32(88.0)  # exp(88) is float32's largest power of e: no overflow, no warning


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.float32(1.0) / (np.float32(1.0) + np.exp(np.minimum(-z, _EXP_LIMIT)))


def _row_mean(values: np.ndarray) -> np.ndarray:
    # ndarray.mean/var go through Python-level helpers (~4 and ~10 us on a few rows); a sum is one call.
    return values.sum(axis=1) / np.float32(values.shape[1])


def score(x: np.ndarray, model: NumpyEnsemble) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score [B], member scores [B, M], confidence [B]) for float32 features `x [B, D]`."""
    x = np.asarray(x, dtype=np.float32)
    logits = model.b_out + (x @ model.w_linear if model.linear_members else np.float32(0.0))
    if model.hidden_to_member.shape[0]:
        hidden = x @ model.w_hidden
        hidden += model.b_hidden
        np.maximum(hidden, np.float32(0.0), out=hidden)
        logits = logits + hidden @ model.hidden_to_member
    logits = model.cal_a * logits + model.cal_b
    p = _sigmoid(logits)
    m = p.shape[1]
    method = model.method
    if method == "averaging":
        combined = _row_mean(p)
    elif method == "weighted_average":
        combined = (p @ model.weights) / model.weight_sum
    elif method == "majority_vote":
        combined = ((p > model.vote_threshold).sum(axis=1) * 2 > m).astype(np.float32)
    elif method == "dynamic":
        c = np.maximum(p, np.float32(1.0) - p)
        combined = (c * p).sum(axis=1) / c.sum(axis=1)
    elif method == "logit_averaging":
        combined = _sigmoid((logits @ model.weights) / model.weight_sum)
    else:  # stacking
        combined = _sigmoid(logits @ model.stacking_weights + model.stacking_bias)
    mean = _row_mean(p)
    deviation = p - mean[:, None]
    variance = _row_mean(deviation * deviation)  # population variance, as the reference
    certainty = _row_mean(np.maximum(p, np.float32(1.0) - p))
    confidence = (np.float32(1.0) / (np.float32(1.0) + variance) + certainty) / np.float32(2.0)
    return combined.astype(np.float32, copy=False), p, confidence.astype(np.float32, copy=False)
