"""The raw ads data model (shared/REFERENCE.md) as NumPy columns, one row per candidate.

Serving builds a `RawBatch` from a request (the context broadcast to every candidate, then the
online store's lookups merged in); training builds one from the synthetic data set. Both go
through the same transforms (`schema.py`). Missing values: NaN in numeric columns, "" in
categorical ones; the schema's missing-value policy decides what they become.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from mesh.errors import InvalidArgument

DATA_TYPES = ("search", "display", "conversion")
CATEGORICAL_FIELDS = ("data_type", "user_id", "gender", "location", "device_type", "page_type", "ad_id", "category")
NUMERIC_FIELDS = ("age", "hour", "day_of_week", "bid_amount", "quality_score", "ad_ctr", "user_clicks_7d")
# Filled from the online feature store, keyed by ad_id / user_id.
AD_LOOKUPS = ("ad_ctr",)
USER_LOOKUPS = ("user_clicks_7d",)


@dataclass(frozen=True)
class Context:
    """What a request shares across its candidates. None = not given (missing)."""

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
    ad_ctr: np.ndarray
    user_clicks_7d: np.ndarray

    def __len__(self) -> int:
        return len(self.bid_amount)

    def column(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def with_columns(self, **columns: np.ndarray) -> "RawBatch":
        return replace(self, **columns)

    @classmethod
    def from_request(cls, context: Context, candidates: CandidateColumns) -> "RawBatch":
        """The context broadcast to every candidate; lookups start missing (NaN)."""
        n = len(candidates)

        def repeat(value, dtype) -> np.ndarray:
            if dtype is np.float64:
                value = np.nan if value is None else value
            return np.full(n, value, dtype=dtype)

        return cls(
            data_type=repeat(context.data_type, object),
            user_id=repeat(context.user_id, object),
            age=repeat(context.age, np.float64),
            gender=repeat(context.gender, object),
            location=repeat(context.location, object),
            device_type=repeat(context.device_type, object),
            hour=repeat(context.hour, np.float64),
            day_of_week=repeat(context.day_of_week, np.float64),
            page_type=repeat(context.page_type, object),
            ad_id=np.asarray(candidates.ad_id, dtype=object),
            category=np.asarray(candidates.category, dtype=object),
            bid_amount=np.asarray(candidates.bid_amount, dtype=np.float64),
            quality_score=np.asarray(candidates.quality_score, dtype=np.float64),
            ad_ctr=np.full(n, np.nan),
            user_clicks_7d=np.full(n, np.nan),
        )

    def take(self, index: np.ndarray) -> "RawBatch":
        return RawBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def validate_context(context: Context) -> None:
    """Checks every consumer of a request needs; the schema adds its declared ranges."""
    if context.data_type not in DATA_TYPES:
        raise InvalidArgument(
            f"data_type: must be one of {', '.join(DATA_TYPES)} (got {context.data_type!r})"
        )
    for name, where, low, high in (
        ("age", "context.user.age", 0, 120),
        ("hour", "context.hour", 0, 23),
        ("day_of_week", "context.day_of_week", 0, 6),
    ):
        value = getattr(context, name)
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise InvalidArgument(f"{where}: must be in [{low}, {high}] (got {value:g})")


def validate_candidates(candidates: CandidateColumns, max_candidates: int) -> None:
    """Vectorized checks; the error names the first bad candidate and its field."""
    n = len(candidates)
    if n == 0:
        raise InvalidArgument("candidates: must not be empty")
    if n > max_candidates:
        raise InvalidArgument(f"candidates: at most {max_candidates} per request (got {n})")
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


def validate(context: Context, candidates: CandidateColumns, max_candidates: int) -> None:
    validate_context(context)
    validate_candidates(candidates, max_candidates)
