"""The NumPy CPU path against the PyTorch reference: every method, member layout and dtype, the
batch sizes that choose it, and the values where float32 arithmetic gets awkward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernels import cpu_scoring
from kernels.dispatch import score_ensemble
from kernels.packing import METHODS, CombineSpec, MemberWeights, pack
from tests.kernels.test_fused_scoring import HIDDEN_LAYOUTS, make_ensemble


def assert_matches_reference(x: torch.Tensor, packed) -> None:
    got = score_ensemble(x, packed, backend="numpy")
    expected = score_ensemble(x, packed, backend="reference")
    for name in ("member_scores", "confidence"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), atol=1e-6, rtol=0)
    if packed.combine.method == "majority_vote":
        near = ((expected.member_scores - packed.combine.vote_threshold).abs() < 1e-6).any(dim=1)
        assert torch.equal(got.score[~near], expected.score[~near])
    else:
        torch.testing.assert_close(got.score, expected.score, atol=1e-6, rtol=0)
    assert got.score.dtype == got.member_scores.dtype == got.confidence.dtype == torch.float32


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layout", HIDDEN_LAYOUTS)
def test_numpy_path_matches_the_reference(method, layout):
    packed = make_ensemble(11, HIDDEN_LAYOUTS[layout], method, seed=3)
    assert_matches_reference(torch.randn(37, 11, generator=torch.Generator().manual_seed(1)) * 2, packed)


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=str)
def test_16_bit_inputs_are_computed_in_float32(dtype):
    packed = make_ensemble(9, HIDDEN_LAYOUTS["mixed"], "weighted_average")
    x = torch.randn(5, 9).to(dtype)
    assert_matches_reference(x, packed)


def test_zero_weights_fall_back_to_the_mean_as_the_reference_does():
    members = [MemberWeights(f"m{i}", None, None, torch.full((2,), 0.5 * i), 0.0) for i in range(3)]
    for method in ("weighted_average", "logit_averaging"):
        packed = pack(members, 2, CombineSpec(method, weights=(0.0, 0.0, 0.0)))
        assert_matches_reference(torch.tensor([[1.0, -2.0], [0.5, 0.5]]), packed)


def test_saturated_logits_give_exact_zeros_and_ones_without_warnings():
    # Logits of +-1000: the sigmoid saturates; nothing overflows or warns.
    members = [MemberWeights("up", None, None, torch.tensor([1000.0]), 0.0), MemberWeights("down", None, None, torch.tensor([-1000.0]), 0.0)]
    packed = pack(members, 1, CombineSpec("logit_averaging", weights=(1.0, 3.0)))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = score_ensemble(torch.tensor([[1.0]]), packed, backend="numpy")
    assert out.member_scores.tolist() == [[1.0, pytest.approx(0.0, abs=1e-37)]]
    assert float(out.score[0]) == pytest.approx(0.0, abs=1e-37)
    assert float(out.confidence[0]) == pytest.approx((1 / 1.25 + 1.0) / 2)


def test_hand_computed_two_member_ensemble():
    # Member a: logistic regression 2x - 1, calibrated 0.5 z + 0.25. Member b: one ReLU unit
    # relu(x + 1) with output weight 2 and bias -1 (at x = 1: 2 * 2 - 1 = 3), no calibration.
    members = [
        MemberWeights("a", None, None, torch.tensor([2.0]), -1.0, 0.5, 0.25),
        MemberWeights("b", torch.tensor([[1.0]]), torch.tensor([1.0]), torch.tensor([2.0]), -1.0),
    ]
    packed = pack(members, 1, CombineSpec("averaging"))
    out = score_ensemble(torch.tensor([[1.0]]), packed, backend="numpy")
    pa, pb = 1 / (1 + np.exp(-0.75)), 1 / (1 + np.exp(-3.0))
    assert out.member_scores[0].tolist() == pytest.approx([pa, pb], abs=1e-7)
    assert float(out.score[0]) == pytest.approx((pa + pb) / 2, abs=1e-7)


def test_auto_picks_numpy_for_serving_batches_and_the_reference_beyond():
    packed = make_ensemble(7, HIDDEN_LAYOUTS["mixed"], "stacking")
    assert "numpy" not in packed.prepared
    score_ensemble(torch.randn(cpu_scoring.MAX_ROWS + 1, 7), packed)
    assert "numpy" not in packed.prepared  # too many rows: the reference ran
    score_ensemble(torch.randn(cpu_scoring.MAX_ROWS, 7), packed)
    prepared = packed.prepared["numpy"]
    score_ensemble(torch.randn(3, 7), packed)
    assert packed.prepared["numpy"] is prepared  # prepared once per ensemble


def test_a_logistic_member_with_zero_weights_still_gives_a_row_per_input():
    packed = pack([MemberWeights("lr", None, None, torch.zeros(4), 0.3)], 4, CombineSpec("averaging"))
    out = score_ensemble(torch.ones(3, 4), packed, backend="numpy")
    assert out.member_scores.shape == (3, 1) and out.score.shape == (3,)
    assert out.score.tolist() == pytest.approx([1 / (1 + np.exp(-0.3))] * 3, abs=1e-7)
