"""Shadow traffic: a share of a route's requests mirrored to another ensemble or version, off the
caller's path (no gRPC here).

The mirror starts after the caller's answer is ready and never changes it. It has its own time
budget (not what is left of the caller's deadline), runs outside admission control and the
SLO telemetry, in a fresh trace context, and is dropped first under load: when `max_running`
mirrors are already out, or the router is busy. The shadow's scores are compared with the
primary's; the mean absolute difference per request is a Prometheus histogram.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable

import numpy as np
from prometheus_client import Counter, Histogram

from domain.errors import MeshError
from services.router.model_catalog import ModelCatalog
from services.router.routing_config import Route

log = logging.getLogger(__name__)

MIRRORED = Counter("scoremesh_router_shadow_total", "Shadow mirrors by outcome (ok, failed, dropped).", ["route", "shadow", "outcome"])
DIFFERENCE = Histogram(
    "scoremesh_router_shadow_score_difference", "Mean |shadow score - primary score| of a mirrored request.", ["route", "shadow"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class ShadowRunner:
    def __init__(self, catalog: ModelCatalog, extract, infer, timeout_s: float = 1.0, max_running: int = 8,
                 busy: Callable[[], bool] = lambda: False) -> None:
        self.catalog = catalog
        self.extract = extract
        self.infer = infer
        self.timeout_s = timeout_s
        self.max_running = max_running
        self.busy = busy
        self.running: set[asyncio.Task] = set()

    def __call__(self, route, request, features, primary) -> None:
        shadow = route.shadow
        if len(self.running) >= self.max_running or self.busy():
            MIRRORED.labels(route.name, shadow.ensemble, "dropped").inc()
            return
        task = asyncio.get_running_loop().create_task(self._mirror(route, request, features, primary), context=contextvars.Context())
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _mirror(self, route: Route, request, features, primary) -> None:
        shadow = route.shadow
        deadline = time.monotonic() + self.timeout_s
        try:
            choice = await self.catalog.choose(shadow.ensemble, shadow.version)
            if choice.feature_schema != features.schema:
                features = await self.extract(request, choice.schema_version, deadline - time.monotonic(), 1)
            mirrored = await self.infer(choice, request.request_id, features, deadline - time.monotonic(), 1)
        except MeshError as error:
            MIRRORED.labels(route.name, shadow.ensemble, "failed").inc()
            log.debug("shadow %s of route %s failed: %s", shadow.ensemble, route.name, error.message)
            return
        MIRRORED.labels(route.name, shadow.ensemble, "ok").inc()
        if len(mirrored.score) == len(primary.score) and len(primary.score):
            DIFFERENCE.labels(route.name, shadow.ensemble).observe(float(np.abs(mirrored.score - primary.score).mean()))

    async def close(self) -> None:
        for task in list(self.running):
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)
