"""Start one features instance: `python -m services.features --instance-id features-1`."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from mesh.config import MeshSettings
from mesh.server import ServiceRuntime, service_main
from scoremesh.v1 import features_pb2_grpc
from services.features.enrichment import Enricher
from services.features.extraction import FeatureExtractor, SchemaVersions
from services.features.schema_store import SchemaStore
from services.features.servicer import FeatureServicer
from services.features.store import open_store

log = logging.getLogger(__name__)
SERVICE_NAME = "scoremesh.v1.FeatureService"


class FeatureSettings(MeshSettings):
    yaml_section = "features"

    schema_name: str = "ads"
    """Feature schema family served; its fitted versions live in <state_dir>/features/<name>/."""

    max_candidates: int = 1000
    """Most candidates one Extract accepts."""

    store_backend: Literal["sqlite", "redis", "none"] = "sqlite"
    """Online feature store: embedded SQLite (<state_dir>/features/online.sqlite), Redis, or none."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis connection URL (store_backend: redis)."""

    store_timeout_ms: float = 50.0
    """Longest a request waits for the online store before using the schema's defaults."""


async def serve(instance_id: str) -> None:
    settings = FeatureSettings()
    runtime = ServiceRuntime(settings, "features", instance_id)
    store = open_store(settings.store_backend, settings.feature_dir / "online.sqlite", settings.redis_url, settings.store_timeout_ms / 1000)
    if store is not None:
        runtime.on_stop(lambda: asyncio.to_thread(store.close))
    schemas = SchemaVersions(SchemaStore(settings.feature_dir), settings.schema_name)
    extractor = FeatureExtractor(schemas, Enricher(store, settings.store_timeout_ms / 1000), settings.max_candidates)
    features_pb2_grpc.add_FeatureServiceServicer_to_server(FeatureServicer(extractor), runtime.server)
    runtime.add_services([SERVICE_NAME])
    await runtime.start()

    async def track_readiness() -> None:
        """Ready once a fitted schema exists (training may still be writing the first one)."""
        while True:
            ready = bool(await asyncio.to_thread(schemas.versions))
            if ready != runtime.serving:
                await runtime.set_serving(ready)
            await asyncio.sleep(1.0)

    runtime.spawn(track_readiness(), "readiness")
    await runtime.run_until_stopped()


def main(argv: list[str] | None = None) -> None:
    service_main("features", serve, argv)
