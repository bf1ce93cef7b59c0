"""Merge the online store's user and ad features into a raw batch under a time budget.

`Enricher` fetches from the store under a time budget: a slow or failed store
never fails the request; its fields stay missing (the schema's defaults apply) and the result
says it was degraded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from prometheus_client import Counter

from domain.features.raw import RawBatch, merge_lookups
from domain.features.store.base import KINDS, OnlineStore

log = logging.getLogger(__name__)

LOOKUPS = Counter("scoremesh_feature_store_lookups_total", "Online store lookups by kind and outcome.", ["kind", "outcome"])
CACHE = Counter("scoremesh_feature_store_cache_total", "Id lookups answered from the in-process cache (hit) or the store (miss).", ["kind", "outcome"])
DEGRADED = Counter("scoremesh_feature_store_degraded_total", "Requests answered with store defaults, by reason.", ["reason"])


@dataclass(frozen=True)
class LookupStatus:
    degraded: bool = False
    reason: str = ""
    hits: int = 0
    misses: int = 0


def _count(counter, amount: int) -> None:
    if amount:  # most of the eight counts of a request are zero: no lock taken for those
        counter.inc(amount)


_ABSENT = None  # cached: the store holds no entity with this id
_NOT_CACHED = object()


class TtlCache:
    """Entries that expire `ttl_s` after they were stored; at most `capacity`, the oldest
    stored going first. Written by hand because the hot path looks up every id of every
    request: cachetools' TTLCache costs ~6 us per lookup (a timer context and linked-list
    upkeep), a dict and one clock read cost a fraction of that."""

    def __init__(self, ttl_s: float, capacity: int) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._entries: dict[str, tuple[float, object]] = {}

    def get(self, key: str, now: float) -> object:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return _NOT_CACHED
        return entry[1]

    def put(self, key: str, value: object, now: float) -> None:
        entries = self._entries
        entries.pop(key, None)  # re-inserted last: insertion order is storage order
        if len(entries) >= self.capacity:
            for old in list(entries)[: max(1, self.capacity // 10)]:
                del entries[old]
        entries[key] = (now + self.ttl_s, value)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> int:
        """Drop every entry; how many there were."""
        dropped = len(self._entries)
        self._entries = {}
        return dropped


class Enricher:
    """Store lookups behind an in-process TTL cache: ids seen within `cache_ttl_s`
    are answered from memory, on the event loop, with no thread hop; only the others are fetched
    from the store, in a worker thread under the time budget. Absent ids are cached too. A store
    update reaches requests within the TTL."""

    def __init__(self, store: OnlineStore | None, timeout_s: float = 0.05, cache_ttl_s: float = 60.0, cache_entries: int = 100_000) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self._cache = {kind: TtlCache(cache_ttl_s, cache_entries) for kind in KINDS} if cache_ttl_s > 0 else None
        self._counts = {(kind, outcome): LOOKUPS.labels(kind, outcome) for kind in KINDS for outcome in ("hit", "miss")}
        self._cache_counts = {(kind, outcome): CACHE.labels(kind, outcome) for kind in KINDS for outcome in ("hit", "miss")}

    def clear_cache(self) -> int:
        """Drop every cached id (recovery's clear_cache): the next lookups read the store."""
        return sum(cache.clear() for cache in self._cache.values()) if self._cache is not None else 0

    def _fetch(self, wanted: dict[str, list[str]]) -> dict[str, dict]:
        return {kind: self.store.get_many(kind, ids) if ids else {} for kind, ids in wanted.items()}

    async def enrich(self, batch: RawBatch, budget_s: float | None = None) -> tuple[RawBatch, LookupStatus]:
        if self.store is None or len(batch) == 0:
            return batch, LookupStatus()
        asked = {"ad": set(batch.ad_id.tolist()), "user": set(batch.user_id.tolist())}
        found: dict[str, dict] = {"ad": {}, "user": {}}
        wanted: dict[str, list[str]] = {"ad": [], "user": []}
        now = time.monotonic()
        for kind, ids in asked.items():
            ids.discard("")
            if self._cache is None:
                wanted[kind] = list(ids)
                continue
            cache, want, have = self._cache[kind], wanted[kind], found[kind]
            for entity_id in ids:
                value = cache.get(entity_id, now)
                if value is _NOT_CACHED:
                    want.append(entity_id)
                elif value is not _ABSENT:
                    have[entity_id] = value
            _count(self._cache_counts[(kind, "hit")], len(ids) - len(wanted[kind]))
            _count(self._cache_counts[(kind, "miss")], len(wanted[kind]))
        status = None
        if wanted["ad"] or wanted["user"]:
            status = await self._fetch_missing(wanted, found, budget_s)
        hits = len(found["ad"]) + len(found["user"])
        total = len(asked["ad"]) + len(asked["user"])
        for kind in KINDS:
            _count(self._counts[(kind, "hit")], len(found[kind]))
            _count(self._counts[(kind, "miss")], len(asked[kind]) - len(found[kind]))
        merged = merge_lookups(batch, found["ad"], found["user"]) if hits else batch
        return merged, status or LookupStatus(False, "", hits, total - hits)

    async def _fetch_missing(self, wanted: dict[str, list[str]], found: dict[str, dict], budget_s: float | None) -> LookupStatus | None:
        """Fetch what the cache lacks; None when it went well, else the degraded status (the
        cached values found so far still apply)."""
        timeout = self.timeout_s if budget_s is None else max(0.0, min(self.timeout_s, budget_s))
        try:
            fetched = await asyncio.wait_for(asyncio.to_thread(self._fetch, wanted), timeout)
        except TimeoutError:
            return self._degraded("timeout", f"online store did not answer within {timeout * 1000:.0f} ms")
        except Exception as error:  # store down, connection refused, corrupt file...
            log.warning("online store lookup failed: %s", error)
            return self._degraded("error", f"online store unavailable: {type(error).__name__}")
        now = time.monotonic()
        for kind, ids in wanted.items():
            cache = self._cache[kind] if self._cache is not None else None
            for entity_id in ids:
                value = fetched[kind].get(entity_id, _ABSENT)
                if cache is not None:
                    cache.put(entity_id, value, now)
                if value is not _ABSENT:
                    found[kind][entity_id] = value
        return None

    @staticmethod
    def _degraded(reason: str, message: str) -> LookupStatus:
        DEGRADED.labels(reason).inc()
        LOOKUPS.labels("all", reason).inc()
        return LookupStatus(True, message)
