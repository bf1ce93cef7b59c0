"""Online store backends (SQLite always; Redis against a real redis-server when installed), the
bulk loader, and enrichment under a slow or failing store."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from services.features.enrichment import Enricher, merge_lookups
from services.features.store.base import OnlineStore
from services.features.store.loader import LoadError, load_file
from services.features.store.sqlite_store import SqliteStore
from tests.features.helpers import raw_batch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install redis-server); .ci/run installs it")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path) -> OnlineStore:
    if request.param == "sqlite":
        backend = SqliteStore(tmp_path / "online.sqlite")
    else:
        from services.features.store.redis_store import RedisStore

        backend = RedisStore(request.getfixturevalue("redis_url"), timeout_s=1.0)
        backend.client.flushdb()
    yield backend
    backend.close()


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


def test_enrichment_merges_lookups(store):
    store.put_many("ad", [("ad1", {"ad_ctr": 0.25})])
    store.put_many("user", [("u1", {"user_clicks_7d": 9.0})])
    enriched, status = asyncio.run(Enricher(store, timeout_s=1.0).enrich(BATCH))
    assert not status.degraded and (status.hits, status.misses) == (2, 1)
    assert enriched.ad_ctr[[0, 2]].tolist() == [0.25, 0.25] and np.isnan(enriched.ad_ctr[1])
    assert enriched.user_clicks_7d.tolist() == [9.0, 9.0, 9.0]


class SlowStore(OnlineStore):
    def get_many(self, kind, ids):
        time.sleep(0.5)
        return {}

    def put_many(self, kind, rows):
        return 0


class BrokenStore(OnlineStore):
    def get_many(self, kind, ids):
        raise ConnectionRefusedError("store is down")

    def put_many(self, kind, rows):
        return 0


def test_a_slow_store_degrades_within_the_budget():
    async def timed():
        started = time.perf_counter()
        result = await Enricher(SlowStore(), timeout_s=0.05).enrich(BATCH)
        return time.perf_counter() - started, result

    elapsed, (enriched, status) = asyncio.run(timed())
    assert elapsed < 0.3
    assert status.degraded and "did not answer within 50 ms" in status.reason
    assert np.isnan(enriched.ad_ctr).all()  # defaults will apply


def test_a_failing_store_degrades_instead_of_failing():
    _, status = asyncio.run(Enricher(BrokenStore()).enrich(BATCH))
    assert status.degraded and status.reason == "online store unavailable: ConnectionRefusedError"


def test_a_dead_redis_degrades_instead_of_failing():
    from services.features.store.redis_store import RedisStore

    dead = RedisStore(f"redis://127.0.0.1:{_free_port()}/0", timeout_s=0.05)
    _, status = asyncio.run(Enricher(dead, timeout_s=0.5).enrich(BATCH))
    assert status.degraded and "online store unavailable" in status.reason


def test_merge_lookups_is_pure():
    merged = merge_lookups(BATCH, {"ad2": {"ad_ctr": 0.5}}, {})
    assert np.isnan(merged.ad_ctr[0]) and merged.ad_ctr[1] == 0.5 and np.isnan(merged.user_clicks_7d).all()
    assert np.isnan(BATCH.ad_ctr).all()  # the input batch is untouched
