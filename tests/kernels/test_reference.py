"""The PyTorch reference ops against hand-computed values (shared/REFERENCE.md formulas)."""

from __future__ import annotations

import math

import pytest
import torch

from kernels.dispatch import score_ensemble
from kernels.ensemble_combine import combine_reference
from kernels.fused_scoring import member_scores_reference
from kernels.packing import CombineSpec, MemberWeights, pack

P = [0.2, 0.6, 0.9]


def _packed(method: str, members: int = 3, **spec):
    weights = [MemberWeights(f"m{i}", None, None, torch.zeros(2), 0.0) for i in range(members)]
    return pack(weights, 2, CombineSpec(method=method, **spec))


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _combine(method: str, p=P, **spec):
    score, confidence = combine_reference(torch.tensor([p]), _packed(method, len(p), **spec))
    return float(score[0]), float(confidence[0])


@pytest.mark.parametrize(
    "method,spec,expected",
    [
        ("averaging", {}, (0.2 + 0.6 + 0.9) / 3),
        ("weighted_average", {"weights": (1.0, 2.0, 1.0)}, (0.2 + 1.2 + 0.9) / 4),
        ("weighted_average", {"weights": (0.0, 0.0, 0.0)}, (0.2 + 0.6 + 0.9) / 3),
        ("majority_vote", {}, 1.0),
        ("majority_vote", {"vote_threshold": 0.7}, 0.0),
        ("dynamic", {}, (0.8 * 0.2 + 0.6 * 0.6 + 0.9 * 0.9) / (0.8 + 0.6 + 0.9)),
        ("logit_averaging", {"weights": (1.0, 1.0, 2.0)}, 1 / (1 + math.exp(-(_logit(0.2) + _logit(0.6) + 2 * _logit(0.9)) / 4))),
        ("stacking", {"stacking_weights": (0.5, -1.0, 2.0), "stacking_bias": 0.1}, 1 / (1 + math.exp(-(0.5 * _logit(0.2) - _logit(0.6) + 2 * _logit(0.9) + 0.1)))),
    ],
)
def test_combination_methods(method, spec, expected):
    score, confidence = _combine(method, **spec)
    assert score == pytest.approx(expected, abs=1e-6)
    mean = sum(P) / 3
    variance = sum((p - mean) ** 2 for p in P) / 3
    assert confidence == pytest.approx((1 / (1 + variance) + (0.8 + 0.6 + 0.9) / 3) / 2, abs=1e-6)


def test_majority_vote_tie_gives_zero():
    assert _combine("majority_vote", p=[0.7, 0.3])[0] == 0.0


def test_packed_scoring_equals_each_member_computed_alone():
    torch.manual_seed(0)
    d = 7
    lr = torch.nn.Linear(d, 1)
    mlp_a = torch.nn.Sequential(torch.nn.Linear(d, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))
    mlp_b = torch.nn.Sequential(torch.nn.Linear(d, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    members = [
        MemberWeights("lr", None, None, lr.weight.detach()[0], float(lr.bias.detach()), 1.5, -0.2),
        MemberWeights("a", mlp_a[0].weight.detach(), mlp_a[0].bias.detach(), mlp_a[2].weight.detach()[0], float(mlp_a[2].bias.detach())),
        MemberWeights("b", mlp_b[0].weight.detach(), mlp_b[0].bias.detach(), mlp_b[2].weight.detach()[0], float(mlp_b[2].bias.detach()), 0.5, 0.3),
    ]
    packed = pack(members, d, CombineSpec("weighted_average", weights=(1.0, 1.2, 0.8)))
    assert packed.w_hidden.shape == (d, 8) and packed.hidden_sizes == (0, 5, 3)
    x = torch.randn(11, d)
    with torch.no_grad():
        expected = torch.stack(
            [torch.sigmoid(1.5 * lr(x)[:, 0] - 0.2), torch.sigmoid(mlp_a(x)[:, 0]), torch.sigmoid(0.5 * mlp_b(x)[:, 0] + 0.3)], dim=1
        )
    torch.testing.assert_close(member_scores_reference(x, packed), expected, atol=1e-6, rtol=1e-5)
    out = score_ensemble(x, packed)
    torch.testing.assert_close(out.score, (expected * torch.tensor([1.0, 1.2, 0.8])).sum(1) / 3.0, atol=1e-6, rtol=1e-5)
    assert out.member_scores.shape == (11, 3) and out.confidence.shape == (11,)


def test_wrong_feature_width_is_rejected():
    packed = _packed("averaging")
    with pytest.raises(ValueError, match=r"features must have shape \[B, 2\]"):
        score_ensemble(torch.zeros(3, 4), packed)


def test_pack_rejects_mismatched_shapes():
    bad = MemberWeights("bad", torch.zeros(4, 3), torch.zeros(4), torch.zeros(4), 0.0)
    with pytest.raises(ValueError, match=r"member bad: hidden weight shape \(4, 3\) != \(4, 2\)"):
        pack([bad], 2, CombineSpec())
    with pytest.raises(ValueError, match="ensemble method must be one of"):
        CombineSpec(method="median")
