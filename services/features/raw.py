"""The raw ads data model (shared/REFERENCE.md) as NumPy columns, one row per candidate.

Serving builds a `RawBatch` from a request (the context broadcast to every candidate); training
builds one from the synthetic data set. Both go through the same transforms in `schema.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from mesh.errors import InvalidArgument

DATA_TYPES = ("search", "display", "conversion")

CONTEXT_FIELDS = ("data_type", "user_id", "age", "gender", "location", "device_type", "hour", "day_of_week", "page_type")
CANDIDATE_FIELDS = ("ad_id", "category", "bid_amount", "quality_score")


@dataclass(frozen=True)
class Context:
    """What a request shares across its candidates."""

    data_type: str
    user_id: str = ""
    age: int = 0
    gender: str = ""
    location: str = ""
    device_type: str = ""
    hour: int = 0
    day_of_week: int = 0
    page_type: str = ""


@dataclass(frozen=True)
class CandidateColumns:
    ad_id: Sequence[str]
    category: Sequence[str]
    bid_amount: Sequence[float]
    quality_score: Sequence[float]


@dataclass(frozen=True)
class RawBatch:
    data_type: np.ndarray
    user_id: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    location: np.ndarray
    device_type: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray
    page_type: np.ndarray
    ad_id: np.ndarray
    category: np.ndarray
    bid_amount: np.ndarray
    quality_score: np.ndarray

    def __len__(self) -> int:
        return len(self.bid_amount)

    def column(self, name: str) -> np.ndarray:
        return getattr(self, name)

    @classmethod
    def from_request(cls, context: Context, candidates: CandidateColumns) -> "RawBatch":
        n = len(candidates.bid_amount)

        def repeat(value, dtype) -> np.ndarray:
            return np.full(n, value, dtype=dtype)

        return cls(
            data_type=repeat(context.data_type, object),
            user_id=repeat(context.user_id, object),
            age=repeat(context.age, np.float64),
            gender=repeat(context.gender, object),
            location=repeat(context.location, object),
            device_type=repeat(context.device_type, object),
            hour=repeat(context.hour, np.int64),
            day_of_week=repeat(context.day_of_week, np.int64),
            page_type=repeat(context.page_type, object),
            ad_id=np.asarray(candidates.ad_id, dtype=object),
            category=np.asarray(candidates.category, dtype=object),
            bid_amount=np.asarray(candidates.bid_amount, dtype=np.float64),
            quality_score=np.asarray(candidates.quality_score, dtype=np.float64),
        )

    def take(self, index: np.ndarray) -> "RawBatch":
        return RawBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def validate_context(context: Context) -> None:
    if context.data_type not in DATA_TYPES:
        raise InvalidArgument(
            f"data_type: must be one of {', '.join(DATA_TYPES)} (got {context.data_type!r})"
        )
    if not 0 <= context.age <= 120:
        raise InvalidArgument(f"context.user.age: must be in [0, 120] (got {context.age})")
    if not 0 <= context.hour <= 23:
        raise InvalidArgument(f"context.hour: must be in [0, 23] (got {context.hour})")
    if not 0 <= context.day_of_week <= 6:
        raise InvalidArgument(f"context.day_of_week: must be in [0, 6] (got {context.day_of_week})")


def validate_candidates(candidates: CandidateColumns, max_candidates: int) -> None:
    """Vectorized checks; the error names the first bad candidate and its field."""
    n = len(candidates.bid_amount)
    if n == 0:
        raise InvalidArgument("candidates: must not be empty")
    if n > max_candidates:
        raise InvalidArgument(f"candidates: at most {max_candidates} per request (got {n})")
    bid = np.asarray(candidates.bid_amount, dtype=np.float64)
    quality = np.asarray(candidates.quality_score, dtype=np.float64)
    checks = (
        ("bid_amount", ~np.isfinite(bid), "must be a finite number"),
        ("bid_amount", bid < 0, "must be >= 0"),
        ("quality_score", ~np.isfinite(quality), "must be a finite number"),
        ("quality_score", (quality < 0) | (quality > 1), "must be in [0, 1]"),
    )
    for field_name, bad, rule in checks:
        if bad.any():
            i = int(np.argmax(bad))
            value = bid[i] if field_name == "bid_amount" else quality[i]
            raise InvalidArgument(f"candidates[{i}].{field_name}: {rule} (got {value})")


def validate(context: Context, candidates: CandidateColumns, max_candidates: int) -> None:
    validate_context(context)
    validate_candidates(candidates, max_candidates)
