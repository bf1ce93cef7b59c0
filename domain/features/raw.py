"""The raw ads data model (shared/REFERENCE.md) as NumPy columns, one row per candidate.

Serving builds a `RawBatch` from a request (the context broadcast to every candidate, then the
online store's lookups merged in); training builds one from the synthetic data set. Both go
through the same transforms (`schema.py`). Missing values: NaN in numeric columns, "" in
categorical ones; the schema's missing-value policy decides what they become.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from domain.features.store.base import Entity
from domain.request import CandidateColumns, Context

CATEGORICAL_FIELDS = ("data_type", "user_id", "gender", "location", "device_type", "page_type", "ad_id", "category")
NUMERIC_FIELDS = ("age", "hour", "day_of_week", "bid_amount", "quality_score", "ad_ctr", "user_clicks_7d")
# Filled from the online feature store, keyed by ad_id / user_id.
AD_LOOKUPS = ("ad_ctr",)
USER_LOOKUPS = ("user_clicks_7d",)
# Columns that hold one value for every row of a serving request: the context, broadcast to each
# candidate, and what the store knows of its one user (FeatureSchema.transform computes features
# of these once per request).
SHARED_BY_REQUEST = frozenset(("data_type", "user_id", "age", "gender", "location", "device_type", "hour", "day_of_week", "page_type", *USER_LOOKUPS))


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
            column = np.empty(n, dtype=dtype)  # empty + fill: half of np.full's cost
            column.fill(value)
            return column

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
            ad_ctr=repeat(None, np.float64),
            user_clicks_7d=repeat(None, np.float64),
        )

    def take(self, index: np.ndarray) -> "RawBatch":
        return RawBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


_NOTHING: Entity = {}


def _column(keys: np.ndarray, table: dict[str, Entity], field: str) -> np.ndarray:
    return np.array([table.get(k, _NOTHING).get(field, np.nan) for k in keys.tolist()], dtype=np.float64)


def merge_lookups(batch: RawBatch, ads: dict[str, Entity], users: dict[str, Entity]) -> RawBatch:
    """Fill the lookup columns from the store's tables; ids absent from them stay missing (NaN).
    The one merge, shared by serving and training, so both see the same values the same way."""
    columns = {f: _column(batch.ad_id, ads, f) for f in AD_LOOKUPS}
    columns.update({f: _column(batch.user_id, users, f) for f in USER_LOOKUPS})
    return batch.with_columns(**columns)
