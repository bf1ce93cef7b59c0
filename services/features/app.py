"""Start one features instance: `python -m services.features --instance-id features-1`."""

from __future__ import annotations

import asyncio

from domain.features.schema_store import SchemaStore
from domain.features.store import open_store
from mesh.admin_auth import admin_token
from mesh.runtime import Readiness, Service, ServiceRuntime, service_main
from scoremesh.v1 import features_pb2_grpc
from services.features.enrichment import Enricher
from services.features.extraction import FeatureExtractor, SchemaVersions
from services.features.servicer import FeatureServicer
from services.features.settings import FeatureSettings


async def setup(runtime: ServiceRuntime, settings: FeatureSettings) -> Readiness:
    store = open_store(settings.store_backend, settings.feature_dir / "online.sqlite", settings.redis_url, settings.store_timeout_ms / 1000)
    if store is not None:
        runtime.on_stop(lambda: asyncio.to_thread(store.close))
    schemas = SchemaVersions(SchemaStore(settings.feature_dir), settings.schema_name)
    extractor = FeatureExtractor(schemas, Enricher(store, settings.store_timeout_ms / 1000, settings.store_cache_ttl_s, settings.store_cache_entries), settings.max_candidates)
    runtime.add_servicer(features_pb2_grpc.add_FeatureServiceServicer_to_server, FeatureServicer(extractor, admin_token(settings.admin_token, settings.state_dir)), "scoremesh.v1.FeatureService")

    async def ready() -> bool:
        """Ready once a fitted schema exists (training may still be writing the first one)."""
        return bool(await asyncio.to_thread(schemas.versions))

    return ready


SERVICE = Service("features", FeatureSettings, setup, cores_per_worker=2)


def main(argv: list[str] | None = None) -> None:
    service_main(SERVICE, argv)
