"""Start one router instance: `python -m services.router --instance-id router-1`."""

from __future__ import annotations

from prometheus_client import Counter

from inference import grpc_service_pb2_grpc
from mesh.runtime import Readiness, Service, ServiceRuntime, service_main
from scoremesh.v1 import features_pb2_grpc, monitoring_pb2_grpc, router_pb2_grpc
from services.router.clients import FeaturesCalls, InferenceCalls, send_telemetry
from services.router.model_catalog import ModelCatalog
from services.router.scoring import ScoringPipeline
from services.router.servicer import RouterServicer
from services.router.settings import RouterSettings
from services.router.telemetry_buffer import TelemetryBuffer

TELEMETRY_DROPPED = Counter("scoremesh_router_telemetry_dropped_total", "Telemetry records dropped (buffer full).")


async def setup(runtime: ServiceRuntime, settings: RouterSettings) -> Readiness:
    features = runtime.client("features", features_pb2_grpc.FeatureServiceStub, "scoremesh.v1.FeatureService")
    inference = runtime.client("inference", grpc_service_pb2_grpc.GRPCInferenceServiceStub, "inference.GRPCInferenceService")
    monitoring = runtime.client("monitoring", monitoring_pb2_grpc.MonitoringStub, "scoremesh.v1.Monitoring")
    buffer = TelemetryBuffer(settings.telemetry_buffer, on_drop=TELEMETRY_DROPPED.inc)
    inference_calls = InferenceCalls(inference)
    catalog = ModelCatalog(inference_calls.replicas, inference_calls.describe, settings.model_catalog_max_age_s)
    pipeline = ScoringPipeline(catalog, FeaturesCalls(features).extract, inference_calls.infer, buffer, settings.max_candidates)
    runtime.add_servicer(router_pb2_grpc.add_RouterServicer_to_server, RouterServicer(pipeline, settings.default_timeout_s), "scoremesh.v1.Router")
    runtime.spawn(send_telemetry(monitoring, buffer), "telemetry")

    async def ready() -> bool:
        """Ready means able to score: every dependency has a healthy instance."""
        for client in (features, inference):
            client.invalidate()
            if not await client.instances():
                return False
        return True

    return ready


SERVICE = Service("router", RouterSettings, setup, cores_per_worker=2)


def main(argv: list[str] | None = None) -> None:
    service_main(SERVICE, argv)
