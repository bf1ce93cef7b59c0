"""The packed form of an ensemble, prepared once at model load.

Member m is `D -> H_m -> 1` with ReLU hidden units (H_m = 0: logistic regression), a calibration
`a_m * z + b_m` on its logit, and a sigmoid. Every member's first layer is concatenated into one
`[D, sum(H)]` matrix so one GEMM computes all hidden units; logistic-regression members keep their
weights in a `[D, M]` linear matrix (zero columns for MLP members).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

METHODS = (
    "averaging",
    "weighted_average",
    "majority_vote",
    "dynamic",
    "logit_averaging",
    "stacking",
)


@dataclass(frozen=True)
class MemberWeights:
    """One member in its natural (unpacked) form."""

    name: str
    hidden_weight: torch.Tensor | None  # [H, D] (MLP) or None (logistic regression)
    hidden_bias: torch.Tensor | None  # [H]
    output_weight: torch.Tensor  # [H] (MLP) or [D] (logistic regression)
    output_bias: float
    calibration_a: float = 1.0
    calibration_b: float = 0.0

    @property
    def hidden(self) -> int:
        return 0 if self.hidden_weight is None else int(self.hidden_weight.shape[0])


@dataclass(frozen=True)
class CombineSpec:
    """How member probabilities become the ensemble score."""

    method: str = "averaging"
    weights: tuple[float, ...] = ()
    vote_threshold: float = 0.5
    stacking_weights: tuple[float, ...] = ()
    stacking_bias: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"ensemble method must be one of {METHODS} (got {self.method!r})")


@dataclass(frozen=True)
class PackedEnsemble:
    member_names: tuple[str, ...]
    hidden_sizes: tuple[int, ...]
    w_hidden: torch.Tensor  # [D, sum(H)]
    b_hidden: torch.Tensor  # [sum(H)]
    w_out: torch.Tensor  # [sum(H)]
    hidden_member: torch.Tensor  # [sum(H)] int64: the member each hidden unit belongs to
    w_linear: torch.Tensor  # [D, M]
    b_out: torch.Tensor  # [M]
    cal_a: torch.Tensor  # [M]
    cal_b: torch.Tensor  # [M]
    combine: CombineSpec = field(default_factory=CombineSpec)
    weights: torch.Tensor | None = None  # [M] combination weights (weighted/logit averaging)
    stacking_weights: torch.Tensor | None = None  # [M]
    # Device/dtype-specific forms for the kernels, built once per (device, dtype) and kept.
    prepared: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def input_dim(self) -> int:
        return int(self.w_linear.shape[0])

    @property
    def members(self) -> int:
        return len(self.member_names)

    def to(self, device: torch.device | str) -> "PackedEnsemble":
        moved = {
            name: (value.to(device) if isinstance(value, torch.Tensor) else value)
            for name, value in self.__dict__.items()
            if name != "prepared"
        }
        return PackedEnsemble(**moved)

    def rounded_to(self, dtype: torch.dtype) -> "PackedEnsemble":
        """The same ensemble with its GEMM weights rounded through `dtype` (kept float32): what a
        kernel computing in `dtype` actually multiplies by, so references can match it."""
        rounded = {
            name: (value.to(dtype).float() if name in ("w_hidden", "w_linear") else value)
            for name, value in self.__dict__.items()
            if name != "prepared"
        }
        return PackedEnsemble(**rounded)


def pack(members: list[MemberWeights], input_dim: int, combine: CombineSpec) -> PackedEnsemble:
    if not members:
        raise ValueError("an ensemble needs at least one member")
    m = len(members)
    if combine.method in ("weighted_average", "logit_averaging") and combine.weights and len(combine.weights) != m:
        raise ValueError(f"ensemble weights: {len(combine.weights)} given for {m} members")
    if combine.method == "stacking" and len(combine.stacking_weights) != m:
        raise ValueError(f"stacking weights: {len(combine.stacking_weights)} given for {m} members")
    w_hidden, b_hidden, w_out, owner = [], [], [], []
    w_linear = torch.zeros(input_dim, m, dtype=torch.float32)
    for index, member in enumerate(members):
        if member.hidden_weight is None:
            if member.output_weight.shape != (input_dim,):
                raise ValueError(f"member {member.name}: linear weight shape {tuple(member.output_weight.shape)} != ({input_dim},)")
            w_linear[:, index] = member.output_weight.float()
            continue
        h = member.hidden
        if member.hidden_weight.shape != (h, input_dim):
            raise ValueError(f"member {member.name}: hidden weight shape {tuple(member.hidden_weight.shape)} != ({h}, {input_dim})")
        if member.hidden_bias is None or member.hidden_bias.shape != (h,) or member.output_weight.shape != (h,):
            raise ValueError(f"member {member.name}: hidden bias / output weight must have shape ({h},)")
        w_hidden.append(member.hidden_weight.float().t())
        b_hidden.append(member.hidden_bias.float())
        w_out.append(member.output_weight.float())
        owner.append(torch.full((h,), index, dtype=torch.int64))
    weights = torch.tensor(combine.weights or [1.0] * m, dtype=torch.float32)
    return PackedEnsemble(
        member_names=tuple(mem.name for mem in members),
        hidden_sizes=tuple(mem.hidden for mem in members),
        w_hidden=torch.cat(w_hidden, dim=1) if w_hidden else torch.zeros(input_dim, 0),
        b_hidden=torch.cat(b_hidden) if b_hidden else torch.zeros(0),
        w_out=torch.cat(w_out) if w_out else torch.zeros(0),
        hidden_member=torch.cat(owner) if owner else torch.zeros(0, dtype=torch.int64),
        w_linear=w_linear,
        b_out=torch.tensor([mem.output_bias for mem in members], dtype=torch.float32),
        cal_a=torch.tensor([mem.calibration_a for mem in members], dtype=torch.float32),
        cal_b=torch.tensor([mem.calibration_b for mem in members], dtype=torch.float32),
        combine=combine,
        weights=weights,
        stacking_weights=torch.tensor(combine.stacking_weights or [0.0] * m, dtype=torch.float32),
    )


# Every intermediate of the float32 arithmetic stays below this for inputs within the bound:
# eight orders of magnitude under float32's largest value, so rounding and summation order
# cannot reach it.
_INTERMEDIATE_LIMIT = 1e30


def safe_input_bound(packed: PackedEnsemble) -> float:
    """The largest |x| (max norm of a feature row) for which no intermediate of this ensemble
    (hidden units, member logits, calibration, combination) can overflow float32.

    Interval arithmetic stage by stage: a linear map's output is bounded by its largest
    absolute row sum times the input bound plus its largest absolute bias. Computed once per
    model at load time; inputs beyond it are refused before compute, so a finite input never
    turns into NaN in the model's arithmetic.
    """
    packed = packed.to("cpu")  # a few small tensors; the bound is computed the same wherever the model runs
    hidden_gain = packed.w_hidden.double().abs().sum(0)  # per hidden unit: sum_i |W_ij|
    hidden_bias = packed.b_hidden.double().abs()
    w_out = packed.w_out.double().abs()
    members = packed.members
    logit_gain = torch.zeros(members, dtype=torch.float64)  # per member: |logit| <= gain * B + offset
    logit_offset = packed.b_out.double().abs().clone()
    for m in range(members):
        units = packed.hidden_member == m
        if bool(units.any()):
            logit_gain[m] = (w_out[units] * hidden_gain[units]).sum()
            logit_offset[m] += (w_out[units] * hidden_bias[units]).sum()
        else:
            logit_gain[m] = packed.w_linear[:, m].double().abs().sum()
    cal_a = packed.cal_a.double().abs()
    calibrated_gain, calibrated_offset = logit_gain * cal_a, logit_offset * cal_a + packed.cal_b.double().abs()
    # The combination of logits: stacking sums them with its weights; (weighted) logit averaging
    # divides by the weights' sum, which amplifies when weights of both signs nearly cancel.
    combine = 1.0
    if packed.combine.method == "stacking" and packed.stacking_weights is not None:
        combine = max(1.0, float(packed.stacking_weights.double().abs().sum()))
    elif packed.combine.method == "logit_averaging" and packed.weights is not None:
        total = abs(float(packed.weights.double().sum()))
        combine = max(1.0, float(packed.weights.double().abs().sum()) / total) if total > 0 else 1.0
    stages = [(float(g.max()), float(o.max())) for g, o in ((hidden_gain, hidden_bias), (logit_gain, logit_offset)) if g.numel()]
    stages.append((float(calibrated_gain.max()) * combine, float(calibrated_offset.max()) * combine))
    bound = float(torch.finfo(torch.float32).max)
    for gain, offset in stages:
        if offset >= _INTERMEDIATE_LIMIT:
            return 0.0
        if gain > 0:
            bound = min(bound, (_INTERMEDIATE_LIMIT - offset) / gain)
    return bound
