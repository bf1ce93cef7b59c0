"""Enrichment from the online store under a time budget: a slow or failing store degrades the
answer (schema defaults, flagged) instead of failing it."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from domain.features.store.base import OnlineStore
from services.features.enrichment import Enricher
from tests.conftest import free_port
from tests.domain.features.helpers import raw_batch

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
    from domain.features.store.redis_store import RedisStore

    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.05)
    _, status = asyncio.run(Enricher(dead, timeout_s=0.5).enrich(BATCH))
    assert status.degraded and "online store unavailable" in status.reason




class CountingStore(OnlineStore):
    def __init__(self, tables):
        self.tables, self.asked = tables, []

    def get_many(self, kind, ids):
        self.asked.append((kind, sorted(ids)))
        return {i: self.tables[kind][i] for i in ids if i in self.tables[kind]}

    def put_many(self, kind, rows):
        return 0


def test_the_cache_answers_repeated_ids_without_the_store_until_its_ttl():
    store = CountingStore({"ad": {"ad1": {"ad_ctr": 0.25}}, "user": {}})
    enricher = Enricher(store, timeout_s=1.0, cache_ttl_s=0.2)

    async def twice():
        first = await enricher.enrich(BATCH)
        second = await enricher.enrich(BATCH)
        store.tables["ad"]["ad1"] = {"ad_ctr": 0.5}
        cached = await enricher.enrich(BATCH)
        await asyncio.sleep(0.25)  # past the TTL: the store's new value arrives
        return first, second, cached, await enricher.enrich(BATCH)

    first, second, cached, fresh = asyncio.run(twice())
    # ad1 found, ad2 and u1 absent: the absences are cached as well, so the second call asks nothing.
    assert store.asked == [("ad", ["ad1", "ad2"]), ("user", ["u1"]), ("ad", ["ad1", "ad2"]), ("user", ["u1"])]
    for enriched, status in (first, second, cached):
        assert not status.degraded and (status.hits, status.misses) == (1, 2)
        assert enriched.ad_ctr[0] == 0.25 and np.isnan(enriched.ad_ctr[1])
    assert fresh[0].ad_ctr[0] == 0.5


def test_the_ttl_cache_expires_entries_and_stays_bounded():
    from services.features.enrichment import TtlCache, _NOT_CACHED

    cache = TtlCache(ttl_s=10.0, capacity=20)
    cache.put("a", 1, now=100.0)
    assert cache.get("a", now=109.9) == 1 and cache.get("a", now=110.0) is _NOT_CACHED
    for i in range(25):
        cache.put(f"k{i}", i, now=100.0)
    assert len(cache) <= 20 and cache.get("k24", now=101.0) == 24 and cache.get("a", now=101.0) is _NOT_CACHED
