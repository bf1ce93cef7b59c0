"""The request model of the ads example (shared/REFERENCE.md): a context shared by every
candidate of a request, and the candidates as columns. Every optional field may be absent.

`validate` is the one place these are checked; the features service calls it for every Extract
(the Score path included: the router relays its request and passes the verdict on).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from domain.errors import InvalidArgument, quote

DATA_TYPES = ("search", "display", "conversion")
# Ids and categorical values are free strings (unknown values go to an out-of-vocabulary
# bucket), but not unbounded ones.
MAX_STRING_LENGTH = 256


@dataclass(frozen=True)
class Context:
    """What a request shares across its candidates. None or "" = not given (missing)."""

    data_type: str
    user_id: str = ""
    age: float | None = None
    gender: str = ""
    location: str = ""
    device_type: str = ""
    hour: float | None = None
    day_of_week: float | None = None
    page_type: str = ""


@dataclass(frozen=True)
class CandidateColumns:
    ad_id: Sequence[str]
    category: Sequence[str]
    bid_amount: Sequence[float]
    quality_score: Sequence[float]

    def __len__(self) -> int:
        return len(self.bid_amount)


def validate_data_type(data_type: str) -> None:
    if data_type not in DATA_TYPES:
        raise InvalidArgument(f"data_type: must be one of {', '.join(DATA_TYPES)} (got {quote(data_type)})")


def _check_length(where: str, value: str) -> None:
    if len(value) > MAX_STRING_LENGTH:
        raise InvalidArgument(f"{where}: at most {MAX_STRING_LENGTH} characters (got {len(value)}: {quote(value)})")


def validate_context(context: Context) -> None:
    """Checks every consumer of a request needs; the feature schema adds its declared ranges."""
    validate_data_type(context.data_type)
    for name, where, low, high in (
        ("age", "context.user.age", 0, 120),
        ("hour", "context.hour", 0, 23),
        ("day_of_week", "context.day_of_week", 0, 6),
    ):
        value = getattr(context, name)
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise InvalidArgument(f"{where}: must be in [{low}, {high}] (got {value:g})")
    for name, where in (
        ("user_id", "context.user.user_id"), ("gender", "context.user.gender"), ("location", "context.user.location"),
        ("device_type", "context.user.device_type"), ("page_type", "context.page_type"),
    ):
        _check_length(where, getattr(context, name))


def validate_candidate_count(n: int, max_candidates: int) -> None:
    if n == 0:
        raise InvalidArgument("candidates: must not be empty")
    if n > max_candidates:
        raise InvalidArgument(f"candidates: at most {max_candidates} per request (got {n})")


def validate_candidates(candidates: CandidateColumns, max_candidates: int) -> None:
    """Vectorized checks; the error names the first bad candidate and its field."""
    validate_candidate_count(len(candidates), max_candidates)
    bid = np.asarray(candidates.bid_amount, dtype=np.float64)
    quality = np.asarray(candidates.quality_score, dtype=np.float64)
    checks = (
        ("bid_amount", bid, ~np.isfinite(bid), "must be a finite number"),
        ("bid_amount", bid, bid < 0, "must be >= 0"),
        ("quality_score", quality, ~np.isfinite(quality), "must be a finite number"),
        ("quality_score", quality, (quality < 0) | (quality > 1), "must be in [0, 1]"),
    )
    for field_name, values, bad, rule in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidArgument(f"candidates[{i}].{field_name}: {rule} (got {values[i]})")
    for field_name, values in (("ad_id", candidates.ad_id), ("category", candidates.category)):
        if max(map(len, values), default=0) > MAX_STRING_LENGTH:  # C loop; the index only on failure
            i = next(i for i, value in enumerate(values) if len(value) > MAX_STRING_LENGTH)
            _check_length(f"candidates[{i}].{field_name}", values[i])


def validate(context: Context, candidates: CandidateColumns, max_candidates: int) -> None:
    validate_context(context)
    validate_candidates(candidates, max_candidates)
