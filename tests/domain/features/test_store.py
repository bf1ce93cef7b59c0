"""Online store backends (SQLite always; Redis against a real redis-server when installed), the
bulk loader, and the pure merge of lookups into a raw batch."""

from __future__ import annotations

import numpy as np
import pytest

from domain.features.raw import merge_lookups
from domain.features.store.loader import LoadError, load_file
from tests.domain.features.helpers import raw_batch


def test_put_and_get_many(store):
    assert store.put_many("ad", [("ad1", {"ad_ctr": 0.05}), ("ad2", {"ad_ctr": 0.125})]) == 2
    store.put_many("user", [("u1", {"user_clicks_7d": 3.0})])
    assert store.get_many("ad", ["ad2", "ad1", "ad9", "ad1"]) == {"ad1": {"ad_ctr": 0.05}, "ad2": {"ad_ctr": 0.125}}
    assert store.get_many("user", ["u1"]) == {"u1": {"user_clicks_7d": 3.0}}
    store.put_many("ad", [("ad1", {"ad_ctr": 0.07})])  # replace
    assert store.get_many("ad", ["ad1"]) == {"ad1": {"ad_ctr": 0.07}}
    with pytest.raises(ValueError, match="kind must be one of ad, user"):
        store.get_many("campaign", ["c1"])


def test_bulk_loader_is_all_or_nothing(store, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"kind": "ad", "id": "ad1", "ad_ctr": 0.1}\n\n{"kind": "user", "id": "u1", "user_clicks_7d": 4}\n')
    assert load_file(store, good) == {"ad": 1, "user": 1}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "ad", "id": "ad2", "ad_ctr": 0.2}\n{"kind": "ad", "id": "ad3", "ad_ctr": "high"}\n')
    with pytest.raises(LoadError, match=r"bad.jsonl:2: field 'ad_ctr' must be a finite number \(got 'high'\)"):
        load_file(store, bad)
    assert store.get_many("ad", ["ad2"]) == {}  # nothing from the bad file was written
    for line, message in (('{"kind": "page", "id": "p"}', "kind must be one of"), ('{"kind": "ad", "id": ""}', "id must be a non-empty string"), ("[1]", "expected an object"), ("{", "not JSON")):
        bad.write_text(line + "\n")
        with pytest.raises(LoadError, match=message):
            load_file(store, bad)


BATCH = raw_batch(3, ad_id=["ad1", "ad2", "ad1"], user_id=["u1", "u1", "u1"], bid_amount=[1, 1, 1], quality_score=[0.5, 0.5, 0.5])


def test_merge_lookups_is_pure():
    merged = merge_lookups(BATCH, {"ad2": {"ad_ctr": 0.5}}, {})
    assert np.isnan(merged.ad_ctr[0]) and merged.ad_ctr[1] == 0.5 and np.isnan(merged.user_clicks_7d).all()
    assert np.isnan(BATCH.ad_ctr).all()  # the input batch is untouched
