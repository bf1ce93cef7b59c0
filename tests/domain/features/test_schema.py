from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidArgument
from domain.features.raw import SHARED_BY_REQUEST, RawBatch
from domain.features.schema import REQUEST_PATHS, FeatureSchema, SchemaError, load_spec
from domain.features.schema_store import SchemaStore
from tests.domain.features.helpers import raw_batch

SPEC = {
    "name": "toy",
    "features": [
        {"name": "age", "kind": "numeric", "source": "age", "transform": "standardize", "range": [0, 120], "missing": {"default": "mean", "indicator": True}},
        {"name": "bid", "kind": "numeric", "source": "bid_amount", "transform": "log1p_standardize", "clip": [-1.0, 1.0]},
        {"name": "q", "kind": "numeric", "source": "quality_score", "transform": "bucketize", "boundaries": [0.25, 0.5]},
        {"name": "qq", "kind": "numeric", "source": "quality_score", "transform": "bucketize", "quantiles": 2},
        {"name": "cat", "kind": "categorical", "source": "category", "fit": {"min_count": 2, "max_size": 2}},
        {"name": "device", "kind": "categorical", "source": "device_type", "vocabulary": ["mobile", "desktop"], "missing": {"default": "desktop"}},
        {"name": "ad", "kind": "categorical", "source": "ad_id", "hash_buckets": 4},
        {"name": "page_x_type", "kind": "cross", "sources": ["page_type", "data_type"], "hash_buckets": 8},
        {"name": "hour", "kind": "cyclical", "source": "hour", "period": 24, "missing": {"default": 6, "indicator": True}},
        {"name": "dow", "kind": "categorical", "source": "day_of_week", "vocabulary": [0, 1]},
    ],
}

TRAIN = raw_batch(
    5,
    age=[20.0, 30.0, np.nan, 40.0, 50.0],
    bid_amount=[0.0, np.e - 1, 1.0, 2.0, 3.0],
    quality_score=[0.1, 0.3, 0.5, 0.7, 0.9],
    category=["food", "food", "food", "travel", "travel"],
    device_type=["mobile", "desktop", "", "tablet", "mobile"],
    ad_id=["a1", "a2", "a3", "a4", "a5"],
    page_type=["search"] * 5,
    data_type=["search", "display", "search", "display", "search"],
    hour=[0.0, 6.0, 12.0, np.nan, 18.0],
    day_of_week=[0.0, 1.0, 2.0, np.nan, 1.0],
)


@pytest.fixture()
def fitted() -> FeatureSchema:
    return FeatureSchema.from_dict(SPEC).fit(TRAIN, "1")


def test_fitting_learns_statistics_vocabularies_and_quantiles(fitted):
    by_name = {f.name: f for f in fitted.features}
    assert by_name["age"].mean == pytest.approx(35.0) and by_name["age"].std == pytest.approx(np.std([20, 30, 40, 50]))
    assert by_name["age"].missing_default == pytest.approx(35.0)
    logs = np.log1p([0.0, np.e - 1, 1.0, 2.0, 3.0])
    assert by_name["bid"].mean == pytest.approx(logs.mean()) and by_name["bid"].std == pytest.approx(logs.std())
    assert by_name["qq"].boundaries == (pytest.approx(0.5),)
    assert by_name["cat"].vocabulary == ("food", "travel")  # by count, then name
    assert fitted.column_names == [
        "age", "age_missing", "bid",
        "q[<0.25]", "q[0.25,0.5)", "q[>=0.5]", "qq[<0.5]", "qq[>=0.5]",
        "cat=food", "cat=travel", "cat=<oov>", "device=mobile", "device=desktop", "device=<oov>",
        "ad#0", "ad#1", "ad#2", "ad#3", *[f"page_x_type#{i}" for i in range(8)],
        "hour_sin", "hour_cos", "hour_missing", "dow=0", "dow=1", "dow=<oov>",
    ]


def test_transform_exact_values(fitted):
    x = fitted.transform(TRAIN)
    assert x.dtype == np.float32 and x.shape == (5, fitted.dim)
    col = {name: x[:, i] for i, name in enumerate(fitted.column_names)}
    np.testing.assert_allclose(col["age"], (np.array([20, 30, 35, 40, 50]) - 35.0) / (np.std([20, 30, 40, 50]) + 1e-8), rtol=1e-6)
    assert col["age_missing"].tolist() == [0, 0, 1, 0, 0]
    assert col["bid"].min() >= -1.0 and col["bid"].max() <= 1.0  # clipped
    assert col["q[<0.25]"].tolist() == [1, 0, 0, 0, 0] and col["q[>=0.5]"].tolist() == [0, 0, 1, 1, 1]
    assert col["device=desktop"].tolist() == [0, 1, 1, 0, 0]  # missing -> the default "desktop"
    assert col["device=<oov>"].tolist() == [0, 0, 0, 1, 0]  # tablet is not in the vocabulary
    assert col["dow=<oov>"].tolist() == [0, 0, 1, 1, 0]  # 2 unknown, missing -> OOV
    bucket = zlib.crc32(b"ad|a3") % 4
    assert x[2, fitted.column_names.index(f"ad#{bucket}")] == 1.0 and col["ad#0"].sum() + col["ad#1"].sum() + col["ad#2"].sum() + col["ad#3"].sum() == 5
    cross = [zlib.crc32(f"page_x_type|search\x1f{t}".encode()) % 8 for t in ("search", "display")]
    assert x[0, fitted.column_names.index(f"page_x_type#{cross[0]}")] == 1.0
    assert x[1, fitted.column_names.index(f"page_x_type#{cross[1]}")] == 1.0
    np.testing.assert_allclose(col["hour_sin"][[0, 1, 3]], [0.0, 1.0, 1.0], atol=1e-7)  # row 3: missing -> 6
    assert col["hour_missing"].tolist() == [0, 0, 0, 1, 0]


def test_round_trip_through_yaml_is_bit_identical(fitted):
    import yaml

    again = FeatureSchema.from_dict(yaml.safe_load(fitted.to_yaml()))
    assert again.column_names == fitted.column_names
    assert np.array_equal(again.transform(TRAIN), fitted.transform(TRAIN))


def test_validation_uses_declared_ranges_and_missing_policies(fitted):
    with pytest.raises(InvalidArgument, match=r"context.user.age: out of the declared range \[0, 120\] \(got 130\)"):
        fitted.validate(raw_batch(2, age=[130.0, 130.0], bid_amount=[1.0, 1.0], quality_score=[0.5, 0.5]))
    with pytest.raises(InvalidArgument, match=r"candidates\[1\].bid_amount: required by feature bid"):
        fitted.validate(raw_batch(2, age=[30.0, 30.0], bid_amount=[1.0, np.nan], quality_score=[0.5, 0.5]))
    fitted.validate(raw_batch(1, bid_amount=[1.0], quality_score=[0.5]))  # age missing: has a policy


def test_specs_are_checked_and_never_transform():
    with pytest.raises(SchemaError, match=r"features\[0\]\.kind: must be one of"):
        FeatureSchema.from_dict({"name": "x", "features": [{"name": "a", "kind": "text", "source": "age"}]})
    with pytest.raises(SchemaError, match=r"features\[0\]\.source: unknown raw field 'salary'"):
        FeatureSchema.from_dict({"name": "x", "features": [{"name": "a", "kind": "numeric", "source": "salary"}]})
    with pytest.raises(SchemaError, match="a cross needs two or more sources"):
        FeatureSchema.from_dict({"name": "x", "features": [{"name": "c", "kind": "cross", "sources": ["age"], "hash_buckets": 2}]})
    with pytest.raises(SchemaError, match="fitted schema lacks mean/std"):
        FeatureSchema.from_dict({"name": "x", "version": "3", "features": [{"name": "a", "kind": "numeric", "source": "age", "transform": "standardize"}]})
    spec = load_spec("ads")
    assert not spec.fitted
    with pytest.raises(SchemaError, match="is a specification; fit it first"):
        spec.transform(TRAIN)


def test_schema_store_versions(tmp_path, fitted):
    store = SchemaStore(tmp_path)
    first = store.save(fitted)
    assert first.version == "1" and store.versions("toy") == ["1"]
    assert store.save(FeatureSchema.from_dict(SPEC).fit(TRAIN, "0")).version == "1"  # identical: reused
    changed = FeatureSchema.from_dict(SPEC).fit(TRAIN.take(np.arange(4)), "0")
    assert store.save(changed).version == "2"
    assert store.load("toy").version == "2" and store.load("toy", "1").column_names == fitted.column_names
    with pytest.raises(SchemaError, match="unknown feature schema toy version 9"):
        store.load("toy", "9")
    with pytest.raises(SchemaError, match="versions integers"):
        store.load("toy", "../1")


# ---------------------------------------------------------------- computed once per request
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.sampled_from([0.0, -0.0, 0.25, 0.5, 6.0, 23.5, 1e300]))
WORDS = st.sampled_from(["", "mobile", "desktop", "tablet", "food", "travel", "search", "display", "x" * 40, "é"])
DAYS = st.one_of(st.sampled_from([0.0, 1.0, 2.0, np.nan]), NUMBERS)


@st.composite
def requests(draw):
    """A request's rows: context values shared by every row, candidate values per row."""
    n = draw(st.integers(1, 4))
    context = {
        "age": draw(NUMBERS), "hour": draw(NUMBERS), "day_of_week": draw(DAYS),
        "device_type": draw(WORDS), "page_type": draw(WORDS), "data_type": draw(WORDS),
    }
    columns = {name: [value] * n for name, value in context.items()}
    columns.update(
        bid_amount=draw(st.lists(NUMBERS, min_size=n, max_size=n)), quality_score=draw(st.lists(NUMBERS, min_size=n, max_size=n)),
        category=draw(st.lists(WORDS, min_size=n, max_size=n)), ad_id=draw(st.lists(WORDS, min_size=n, max_size=n)),
    )
    return raw_batch(n, **columns)


@settings(max_examples=300, deadline=None)
@given(requests())
def test_features_of_the_request_computed_once_equal_those_computed_per_row(batch):
    schema = FeatureSchema.from_dict(SPEC).fit(TRAIN, "1")
    np.testing.assert_array_equal(schema.transform(batch, shared=SHARED_BY_REQUEST), schema.transform(batch))


@settings(max_examples=300, deadline=None)
@given(requests())
def test_every_kind_of_feature_computed_once_for_identical_rows_equals_per_row(batch):
    schema = FeatureSchema.from_dict(SPEC).fit(TRAIN, "1")
    same = batch.take(np.zeros(len(batch), dtype=np.intp))  # every row the first one
    every_source = frozenset(RawBatch.__dataclass_fields__)
    assert schema._plan(every_source)[0] == []  # nothing per row: every feature computed once
    np.testing.assert_array_equal(schema.transform(same, shared=every_source), schema.transform(same))


def _outcome(check) -> str | None:
    try:
        check()
    except InvalidArgument as error:
        return str(error)
    return None


def _validated_row_by_row(schema: FeatureSchema, batch: RawBatch) -> None:
    """The rule spelled out in plain Python: for each checked feature in order, the first row
    missing a value it has no policy for, else the first row outside its declared range."""
    for feature in schema.features:
        if feature.kind not in ("numeric", "cyclical") or feature.source not in REQUEST_PATHS:
            continue
        values = [float(v) for v in batch.column(feature.source)]
        path = REQUEST_PATHS[feature.source]
        for i, value in enumerate(values):
            if math.isnan(value) and feature.missing_default is None:
                raise InvalidArgument(f"{path.format(i=i)}: required by feature {feature.name} (no missing-value policy)")
        if feature.range is not None:
            low, high = feature.range
            for i, value in enumerate(values):
                if not math.isnan(value) and not (low <= value <= high and math.isfinite(value)):
                    raise InvalidArgument(f"{path.format(i=i)}: out of the declared range [{low:g}, {high:g}] (got {value:g})")


@settings(max_examples=300, deadline=None)
@given(requests(), st.sampled_from(["toy", "ads"]))
def test_validation_checking_shared_values_once_answers_as_checking_every_row(batch, spec):
    schema = FeatureSchema.from_dict(SPEC) if spec == "toy" else load_spec("ads")
    expected = _outcome(lambda: _validated_row_by_row(schema, batch))
    assert _outcome(lambda: schema.validate(batch)) == expected
    assert _outcome(lambda: schema.validate(batch, shared=SHARED_BY_REQUEST)) == expected
