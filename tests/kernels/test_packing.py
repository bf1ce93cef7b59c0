"""The overflow-free input bound of a packed ensemble: at the bound, with inputs aligned to the
worst weights, every output of the float32 reference stays finite."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.dispatch import score_ensemble
from kernels.packing import METHODS, CombineSpec, MemberWeights, pack, safe_input_bound


@st.composite
def ensembles(draw):
    dim = draw(st.integers(1, 6))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e3]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    members = []
    for index in range(draw(st.integers(1, 3))):
        hidden = draw(st.sampled_from([0, 1, 4]))
        a, b = draw(st.floats(-5, 5)), draw(st.floats(-5, 5))
        if hidden == 0:
            members.append(MemberWeights(f"m{index}", None, None, torch.randn(dim, generator=generator) * scale, 0.5, a, b))
        else:
            members.append(MemberWeights(
                f"m{index}", torch.randn(hidden, dim, generator=generator) * scale, torch.randn(hidden, generator=generator),
                torch.randn(hidden, generator=generator) * scale, -0.5, a, b,
            ))
    method = draw(st.sampled_from(METHODS))
    m = len(members)
    combine = CombineSpec(method, weights=tuple(draw(st.floats(0.1, 3)) for _ in range(m)),
                          stacking_weights=tuple(draw(st.floats(-4, 4)) for _ in range(m)), stacking_bias=1.0)
    return pack(members, dim, combine)


@settings(max_examples=60, deadline=None)
@given(ensembles(), st.integers(0, 2**31))
def test_inputs_at_the_bound_never_overflow(packed, seed):
    bound = safe_input_bound(packed)
    assert 0 < bound <= torch.finfo(torch.float32).max
    # The worst inputs: each member's first layer (or linear weights) aligned in sign, plus noise.
    aligned = [torch.sign(packed.w_linear[:, m]) for m in range(packed.members)]
    aligned += [torch.sign(packed.w_hidden[:, j]) for j in range(packed.w_hidden.shape[1])]
    noise = torch.sign(torch.randn(4, packed.input_dim, generator=torch.Generator().manual_seed(seed)))
    x = torch.cat([torch.stack(aligned), noise]) * torch.tensor(bound, dtype=torch.float32)
    x = torch.where(x.abs() > bound, x.sign() * torch.nextafter(torch.tensor(bound, dtype=torch.float32), torch.tensor(0.0)), x)
    out = score_ensemble(x, packed, backend="reference")
    for name in ("score", "member_scores", "confidence"):
        assert torch.isfinite(getattr(out, name)).all(), name


def test_the_bound_is_that_of_the_largest_gain():
    member = MemberWeights("lr", None, None, torch.full((4,), 2.0), 0.0, 3.0, 0.0)
    packed = pack([member], 4, CombineSpec("averaging"))
    # |logit| <= 4 * 2 * B; calibrated |a * logit| <= 3 * 8 * B = 1e30 at the bound.
    assert safe_input_bound(packed) == 1e30 / 24
