"""The fused Triton kernel against the PyTorch reference: every method, dtype and awkward shape.

Without a GPU this runs under TRITON_INTERPRET=1 (set in tests/conftest.py); with one, natively.
"""

from __future__ import annotations

import pytest
import torch

from kernels.dispatch import score_ensemble
from kernels.ensemble_combine import combine_reference, combine_triton
from kernels.fused_scoring import KernelConfig, member_logits_reference, score_triton
from kernels.packing import METHODS, CombineSpec, MemberWeights, pack

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Interpreter: exact float32 dots, so only summation order differs. GPU: tf32 reductions for
# 16-bit inputs (float32 inputs use IEEE float32 dots).
ATOL = {torch.float32: 1e-5 if DEVICE == "cpu" else 1e-4, torch.float16: 1e-5 if DEVICE == "cpu" else 3e-3, torch.bfloat16: 1e-5 if DEVICE == "cpu" else 3e-3}

TF32_ATOL = 2e-3

HIDDEN_LAYOUTS = {
    "logistic_only": (0, 0),
    "mixed": (0, 5, 19, 8),
    "uniform": (16, 16, 16),
}


def make_ensemble(d: int, hidden: tuple[int, ...], method: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    members = []
    for i, h in enumerate(hidden):
        a, b = 0.8 + 0.1 * i, 0.05 * i - 0.1  # calibration differs per member
        if h == 0:
            members.append(MemberWeights(f"m{i}", None, None, torch.randn(d, generator=g) * 0.3, 0.1 * i, a, b))
        else:
            members.append(MemberWeights(
                f"m{i}", torch.randn(h, d, generator=g) * 0.3, torch.randn(h, generator=g) * 0.1,
                torch.randn(h, generator=g) * 0.4, -0.1 * i, a, b,
            ))
    m = len(hidden)
    spec = CombineSpec(
        method,
        weights=tuple(float(w) for w in torch.rand(m, generator=g) + 0.5),
        stacking_weights=tuple(float(w) for w in torch.randn(m, generator=g)),
        stacking_bias=0.2,
    )
    return pack(members, d, spec)


def check(x: torch.Tensor, packed, out=None, config=None, precision="ieee"):
    rounded = packed if x.dtype == torch.float32 else packed.rounded_to(x.dtype)
    score, members, confidence = score_triton(x, rounded.to(DEVICE), out=out, config=config, precision=precision)
    expected = score_ensemble(x.cpu(), rounded, backend="reference")
    # tf32 operands keep 10 of float32's 23 mantissa bits (unlike 16-bit inputs, the reference
    # cannot round them the same way): the accuracy budget of the tf32 mode.
    atol = TF32_ATOL if precision == "tf32" and DEVICE == "cuda" else ATOL[x.dtype]
    torch.testing.assert_close(members.cpu(), expected.member_scores, atol=atol, rtol=0)
    torch.testing.assert_close(confidence.cpu(), expected.confidence, atol=atol, rtol=0)
    if packed.combine.method == "majority_vote":
        # A vote flips only for members within tolerance of the threshold.
        near = ((expected.member_scores - packed.combine.vote_threshold).abs() < atol).any(dim=1)
        assert torch.equal(score.cpu()[~near], expected.score[~near])
    else:
        torch.testing.assert_close(score.cpu(), expected.score, atol=atol, rtol=0)
    return score, members, confidence


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", HIDDEN_LAYOUTS)
def test_fused_kernel_matches_reference(method, dtype, layout):
    packed = make_ensemble(37, HIDDEN_LAYOUTS[layout], method)  # D=37: not a multiple of any block
    x = torch.randn(45, 37).to(dtype).to(DEVICE)  # 45 rows: a partial last block
    check(x, packed)


@pytest.mark.parametrize("batch", [1, 1023, 2**6 + 17])
def test_odd_batch_sizes_write_every_row_and_nothing_more(batch):
    packed = make_ensemble(7, HIDDEN_LAYOUTS["mixed"], "dynamic")
    m = packed.members
    guard = 5  # rows past the batch that must stay untouched
    score_buf = torch.full((batch + guard,), float("nan"), device=DEVICE)
    member_buf = torch.full((batch + guard, m), float("nan"), device=DEVICE)
    conf_buf = torch.full((batch + guard,), float("nan"), device=DEVICE)
    x = torch.randn(batch, 7, device=DEVICE)
    check(x, packed, out=(score_buf[:batch], member_buf[:batch], conf_buf[:batch]))
    assert torch.isfinite(score_buf[:batch]).all() and torch.isfinite(member_buf[:batch]).all()
    assert torch.isnan(score_buf[batch:]).all() and torch.isnan(member_buf[batch:]).all() and torch.isnan(conf_buf[batch:]).all()


def test_non_contiguous_inputs_are_handled():
    packed = make_ensemble(19, HIDDEN_LAYOUTS["mixed"], "weighted_average")
    wide = torch.randn(30, 38, device=DEVICE)
    check(wide[:, ::2], packed)  # column stride 2
    check(torch.randn(19, 30, device=DEVICE).t(), packed)  # transposed


def test_empty_batch_gives_empty_outputs():
    packed = make_ensemble(7, HIDDEN_LAYOUTS["uniform"], "averaging")
    score, members, confidence = score_triton(torch.zeros(0, 7, device=DEVICE), packed.to(DEVICE))
    assert score.shape == (0,) and members.shape == (0, 3) and confidence.shape == (0,)


def test_bad_inputs_are_rejected_clearly():
    packed = make_ensemble(7, HIDDEN_LAYOUTS["uniform"], "averaging").to(DEVICE)
    with pytest.raises(ValueError, match=r"features must have shape \[B, 7\]"):
        score_triton(torch.zeros(3, 8, device=DEVICE), packed)
    with pytest.raises(TypeError, match="features dtype must be one of"):
        score_triton(torch.zeros(3, 7, dtype=torch.float64, device=DEVICE), packed)
    with pytest.raises(ValueError, match="out: expected contiguous float32"):
        score_triton(torch.zeros(3, 7, device=DEVICE), packed, out=(torch.empty(2), torch.empty(3, 3), torch.empty(3)))


def test_zero_weights_fall_back_to_the_mean():
    packed = make_ensemble(7, HIDDEN_LAYOUTS["mixed"], "averaging")
    zero = pack(
        [MemberWeights(n, None, None, packed.w_linear[:, i], 0.0) for i, n in enumerate(packed.member_names)],
        7, CombineSpec("weighted_average", weights=(0.0,) * packed.members),
    )
    x = torch.randn(9, 7, device=DEVICE)
    score, members, _ = check(x, zero)
    torch.testing.assert_close(score.cpu(), members.cpu().mean(dim=1), atol=1e-6, rtol=0)


def test_weights_are_prepared_once_per_dtype():
    packed = make_ensemble(7, HIDDEN_LAYOUTS["mixed"], "averaging").to(DEVICE)
    x = torch.randn(4, 7, device=DEVICE)
    score_triton(x, packed)
    score_triton(x, packed)
    score_triton(x.half(), packed)
    assert len(packed.prepared) == 2


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_standalone_combine_kernel_matches_reference(method, dtype):
    packed = make_ensemble(5, (0, 0, 0, 0, 0), method)
    p = torch.rand(40, 10)[:, ::2].to(dtype)  # non-contiguous, member scores from elsewhere
    p[0] = 0.5  # exact ties and the threshold itself
    score, confidence = combine_triton(p.to(DEVICE), packed.to(DEVICE))
    expected_score, expected_conf = combine_reference(p.float(), packed)
    torch.testing.assert_close(confidence.cpu(), expected_conf, atol=1e-5, rtol=0)
    torch.testing.assert_close(score.cpu(), expected_score, atol=1e-5, rtol=0)


def test_dispatch_on_cpu_tensors_matches_the_reference():
    packed = make_ensemble(7, HIDDEN_LAYOUTS["mixed"], "stacking")
    x = torch.randn(6, 7)
    out = score_ensemble(x, packed)
    torch.testing.assert_close(out.member_scores, torch.sigmoid(member_logits_reference(x, packed)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU compile smoke test: needs CUDA (the interpreter cannot catch tl.dot shape limits)")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpu_compiles_for_small_odd_shapes(dtype):
    # K = D = 5 and M = 3 are below tl.dot's minimum of 16: the launcher's blocks must cover it.
    packed = make_ensemble(5, (0, 3, 1), "logit_averaging")
    check(torch.randn(3, 5, device="cuda").to(dtype), packed)


# Configs the tuner may pick: several hidden-unit splits (the last program to arrive finishes
# the rows), one split, a split count that leaves no split idle (7 slices over 3 splits), and
# x loaded once per program (BLOCK_D >= D) or once per slice.
SMALL = 1 if DEVICE == "cpu" else 4
SPLIT_CONFIGS = {
    "one_split": KernelConfig(16, 16, 16, splits=1, num_warps=SMALL, num_stages=1),
    "two_splits": KernelConfig(16, 16, 16, splits=2, num_warps=SMALL, num_stages=1),
    "three_splits_x_resident": KernelConfig(16, 16, 32, splits=3, num_warps=SMALL, num_stages=1),
    "split_per_slice": KernelConfig(32, 16, 16, splits=64, num_warps=SMALL, num_stages=1),
}


@pytest.mark.parametrize("config", SPLIT_CONFIGS.values(), ids=SPLIT_CONFIGS.keys())
@pytest.mark.parametrize("layout", ["mixed", "wide"])
def test_every_split_config_matches_the_reference_launch_after_launch(config, layout):
    hidden = {"mixed": HIDDEN_LAYOUTS["mixed"], "wide": (0, 40, 24, 48)}[layout]  # 32 / 112 hidden units
    packed = make_ensemble(21, hidden, "stacking")
    for _ in range(2):  # the arrival counters are back at zero for the next launch
        check(torch.randn(45, 21, device=DEVICE), packed, config=config)


def test_split_launches_write_every_row_and_nothing_more():
    packed = make_ensemble(9, (0, 40, 24), "dynamic")
    batch, guard = 37, 3
    bufs = [torch.full(shape, float("nan"), device=DEVICE) for shape in ((batch + guard,), (batch + guard, 3), (batch + guard,))]
    check(torch.randn(batch, 9, device=DEVICE), packed, out=tuple(b[:batch] for b in bufs), config=SPLIT_CONFIGS["three_splits_x_resident"])
    for buf in bufs:
        assert torch.isfinite(buf[:batch]).all() and torch.isnan(buf[batch:]).all()


# The shipped models (training/train.py): D = 99 features, members of 0 to 32 hidden units.
SHIPPED = {
    "ctr_ensemble": ((0, 32), "weighted_average"),
    "cvr_ensemble": ((8, 16), "averaging"),
    "quality_ensemble": ((0, 24, 8), "dynamic"),
    "ctr_stacking": ((0, 32), "stacking"),
}
SHIPPED_BATCHES = (1, 7, 64) if DEVICE == "cpu" else (1, 7, 64, 1000, 4096)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_model_shapes_match_the_reference(model, dtype):
    hidden, method = SHIPPED[model]
    packed = make_ensemble(99, hidden, method)
    for batch in SHIPPED_BATCHES:
        check(torch.randn(batch, 99).to(dtype).to(DEVICE), packed)


@pytest.mark.skipif(DEVICE == "cpu", reason="tf32 is a tensor-core mode: the interpreter multiplies in float32")
@pytest.mark.parametrize("model", SHIPPED)
def test_tf32_precision_stays_within_its_budget(model):
    hidden, method = SHIPPED[model]
    packed = make_ensemble(99, hidden, method)
    check(torch.randn(333, 99, device=DEVICE), packed, precision="tf32")


def test_unknown_precision_is_refused():
    packed = make_ensemble(7, HIDDEN_LAYOUTS["uniform"], "averaging").to(DEVICE)
    with pytest.raises(ValueError, match="precision must be one of"):
        score_triton(torch.zeros(3, 7, device=DEVICE), packed, precision="fast")
