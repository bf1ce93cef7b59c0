"""Start one features instance: `python -m services.features --instance-id features-1`."""

from __future__ import annotations

import asyncio

from mesh.config import MeshSettings
from mesh.server import ServiceRuntime, service_main
from scoremesh.v1 import features_pb2_grpc
from services.features.extraction import FeatureExtractor
from services.features.schema import load_schema
from services.features.servicer import FeatureServicer

SERVICE_NAME = "scoremesh.v1.FeatureService"


class FeatureSettings(MeshSettings):
    yaml_section = "features"

    schema_name: str = "ads"
    """Feature schema served (services/features/schemas/<name>-<version>.yaml)."""

    schema_version: str = "1"
    """Its version."""

    max_candidates: int = 1000
    """Most candidates one Extract accepts."""


async def serve(instance_id: str) -> None:
    settings = FeatureSettings()
    runtime = ServiceRuntime(settings, "features", instance_id)
    extractor = FeatureExtractor(load_schema(settings.schema_name, settings.schema_version), settings.max_candidates)
    features_pb2_grpc.add_FeatureServiceServicer_to_server(FeatureServicer(extractor), runtime.server)
    runtime.add_services([SERVICE_NAME])
    await runtime.start()
    await runtime.set_serving(True)
    await runtime.run_until_stopped()


def main(argv: list[str] | None = None) -> None:
    service_main("features", serve, argv)
