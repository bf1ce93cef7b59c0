"""`scoremesh features load` and `scoremesh train` from the command line."""

from __future__ import annotations

from domain.features.store.sqlite_store import SqliteStore
from tests.e2e.mesh_process import scoremesh


def test_features_load_fills_the_embedded_store(tmp_path):
    entities = tmp_path / "entities.jsonl"
    entities.write_text('{"kind": "ad", "id": "ad1", "ad_ctr": 0.04}\n{"kind": "user", "id": "u1", "user_clicks_7d": 2}\n')
    result = scoremesh("features", "load", str(entities), state_dir=tmp_path / "state")
    assert result.returncode == 0, result.stderr
    assert "loaded 1 ads and 1 users into the sqlite store" in result.stdout
    store = SqliteStore(tmp_path / "state" / "features" / "online.sqlite")
    assert store.get_many("ad", ["ad1"]) == {"ad1": {"ad_ctr": 0.04}}
    store.close()
    entities.write_text('{"kind": "ad", "id": "ad2", "ad_ctr": null}\n')
    refused = scoremesh("features", "load", str(entities), state_dir=tmp_path / "state")
    assert refused.returncode == 1 and "nothing loaded" in refused.stderr and ":1: field 'ad_ctr'" in refused.stderr
