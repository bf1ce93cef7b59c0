from __future__ import annotations

import math

import numpy as np
import pytest

from services.features.raw import CandidateColumns, Context, RawBatch
from services.features.schema import FeatureSchema, SchemaError, load_schema

CONTEXT = Context("search", "u1", 50, "f", "EU", "mobile", 6, 2, "content")
CANDIDATES = CandidateColumns(["a1", "a2"], ["gaming", "spaceships"], [math.e - 1, 0.0], [0.25, 1.0])


def test_ads_schema_columns_and_exact_values():
    schema = load_schema("ads", "1")
    names = schema.column_names
    assert (schema.name, schema.version, schema.dim) == ("ads", "1", 39)
    assert names[:6] == ["age", "bid_amount", "quality_score", "gender=m", "gender=f", "gender=<oov>"]
    assert names[-2:] == ["hour_sin", "hour_cos"]
    x = schema.transform(RawBatch.from_request(CONTEXT, CANDIDATES))
    assert x.dtype == np.float32 and x.shape == (2, 39)
    row = dict(zip(names, x[0]))
    assert row["age"] == pytest.approx((50 - 38.0) / 12.0, rel=1e-6)
    assert row["bid_amount"] == pytest.approx((1.0 - 1.07) / 0.32, rel=1e-5)  # log1p(e - 1) = 1
    assert row["quality_score"] == pytest.approx(0.25)
    assert row["gender=f"] == 1.0 and row["gender=m"] == 0.0 and row["gender=<oov>"] == 0.0
    assert row["device_type=mobile"] == 1.0 and row["page_type=content"] == 1.0
    assert row["category=gaming"] == 1.0 and row["day_of_week=2"] == 1.0 and row["data_type=search"] == 1.0
    assert row["hour_sin"] == pytest.approx(1.0) and row["hour_cos"] == pytest.approx(0.0, abs=1e-6)
    second = dict(zip(names, x[1]))
    assert second["category=<oov>"] == 1.0 and second["category=gaming"] == 0.0  # unknown -> OOV bucket
    for feature in ("gender", "location", "device_type", "page_type", "category", "data_type", "day_of_week"):
        assert sum(v for k, v in row.items() if k.startswith(feature + "=")) == 1.0


def test_empty_batch_gives_empty_matrix():
    empty = RawBatch.from_request(CONTEXT, CandidateColumns([], [], [], []))
    assert load_schema().transform(empty).shape == (0, 39)


def test_schema_errors_name_the_field():
    with pytest.raises(SchemaError, match=r"features\[0\]\.kind: must be numeric, categorical or cyclical"):
        FeatureSchema.from_dict({"name": "x", "version": 1, "features": [{"name": "a", "kind": "text", "source": "age"}]})
    with pytest.raises(SchemaError, match=r"features\[0\]\.source: unknown raw field 'salary'"):
        FeatureSchema.from_dict({"name": "x", "version": 1, "features": [{"name": "a", "kind": "numeric", "source": "salary"}]})
    with pytest.raises(SchemaError, match="missing field 'features'"):
        FeatureSchema.from_dict({"name": "x", "version": 1})
    with pytest.raises(SchemaError, match="unknown feature schema ads version 9"):
        load_schema("ads", "9")
