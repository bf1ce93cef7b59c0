"""Fused batched scoring of every ensemble member: x [B, D] -> member probabilities [B, M].

logit_m = sum_{h in m} relu(x . W1[:, h] + b1[h]) * w2[h] + x . L[:, m] + b2[m]
p_m     = sigmoid(a_m * logit_m + b_m)

This file holds the PyTorch reference (the CPU path of the inference service and the oracle of
the kernel tests). The Triton kernel lands beside it (issue: fused kernels).
"""

from __future__ import annotations

import torch

from kernels.packing import PackedEnsemble


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
