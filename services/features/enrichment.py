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
from domain.features.store.base import OnlineStore

log = logging.getLogger(__name__)

LOOKUPS = Counter("scoremesh_feature_store_lookups_total", "Online store lookups by kind and outcome.", ["kind", "outcome"])
DEGRADED = Counter("scoremesh_feature_store_degraded_total", "Requests answered with store defaults, by reason.", ["reason"])


@dataclass(frozen=True)
class LookupStatus:
    degraded: bool = False
    reason: str = ""
    hits: int = 0
    misses: int = 0


class Enricher:
    def __init__(self, store: OnlineStore | None, timeout_s: float = 0.05) -> None:
        self.store = store
        self.timeout_s = timeout_s

    def _fetch(self, ad_ids: list[str], user_ids: list[str]) -> tuple[dict, dict]:
        return self.store.get_many("ad", ad_ids), self.store.get_many("user", user_ids)

    async def enrich(self, batch: RawBatch, budget_s: float | None = None) -> tuple[RawBatch, LookupStatus]:
        if self.store is None or len(batch) == 0:
            return batch, LookupStatus()
        ad_ids = sorted({str(a) for a in batch.ad_id if a})
        user_ids = sorted({str(u) for u in batch.user_id if u})
        timeout = self.timeout_s if budget_s is None else max(0.0, min(self.timeout_s, budget_s))
        started = time.perf_counter()
        try:
            ads, users = await asyncio.wait_for(asyncio.to_thread(self._fetch, ad_ids, user_ids), timeout)
        except TimeoutError:
            return self._degraded(batch, "timeout", f"online store did not answer within {timeout * 1000:.0f} ms")
        except Exception as error:  # store down, connection refused, corrupt file...
            log.warning("online store lookup failed: %s", error)
            return self._degraded(batch, "error", f"online store unavailable: {type(error).__name__}")
        hits = sum(1 for a in ad_ids if a in ads) + sum(1 for u in user_ids if u in users)
        misses = len(ad_ids) + len(user_ids) - hits
        for kind, asked, found in (("ad", ad_ids, ads), ("user", user_ids, users)):
            LOOKUPS.labels(kind, "hit").inc(sum(1 for i in asked if i in found))
            LOOKUPS.labels(kind, "miss").inc(sum(1 for i in asked if i not in found))
        log.debug("store lookups: %d hits, %d misses in %.1f ms", hits, misses, (time.perf_counter() - started) * 1000)
        return merge_lookups(batch, ads, users), LookupStatus(False, "", hits, misses)

    @staticmethod
    def _degraded(batch: RawBatch, reason: str, message: str) -> tuple[RawBatch, LookupStatus]:
        DEGRADED.labels(reason).inc()
        LOOKUPS.labels("all", reason).inc()
        return batch, LookupStatus(True, message)
