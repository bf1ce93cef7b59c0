"""Start one router instance: `python -m services.router --instance-id router-1`."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter

from inference import grpc_service_pb2_grpc
from mesh.discovery import consul_client
from mesh.admin_auth import admin_token
from mesh.config import config_file
from mesh.runtime import Readiness, Service, ServiceRuntime, service_main
from scoremesh.v1 import features_pb2_grpc, monitoring_pb2_grpc, router_pb2_grpc
from services.router.admin import RoutingAdmin
from services.router.admission import AdmissionControl
from services.router.clients import FeaturesCalls, InferenceCalls
from services.router.converters import telemetry_to_proto
from services.router.model_catalog import ModelCatalog
from services.router.routing_config import parse
from services.router.routing_state import RoutingSource, RoutingState
from services.router.rules import RuleError
from services.router.scoring import ScoringPipeline
from services.router.servicer import RouterServicer
from services.router.settings import RouterSettings
from services.router.shadow import ShadowRunner
from mesh.telemetry_buffer import TelemetryBuffer, stream_telemetry

log = logging.getLogger(__name__)
TELEMETRY_SENT = Counter("scoremesh_router_telemetry_sent_total", "Telemetry records delivered to monitoring.")
TELEMETRY_DROPPED = Counter("scoremesh_router_telemetry_dropped_total", "Telemetry records dropped (buffer full).")


def routing_source(settings: RouterSettings) -> RoutingSource:
    consul = consul_client(settings) if settings.discovery == "consul" else None
    return RoutingSource(config_file(), settings.state_dir / "routing.yaml", consul)


async def setup(runtime: ServiceRuntime, settings: RouterSettings) -> Readiness:
    features = runtime.client("features", features_pb2_grpc.FeatureServiceStub, "scoremesh.v1.FeatureService")
    inference = runtime.client("inference", grpc_service_pb2_grpc.GRPCInferenceServiceStub, "inference.GRPCInferenceService")
    monitoring = runtime.client("monitoring", monitoring_pb2_grpc.MonitoringStub, "scoremesh.v1.Monitoring")
    buffer = TelemetryBuffer(settings.telemetry_buffer, on_drop=TELEMETRY_DROPPED.inc)
    # A replica this router's balancer ejected as stalled: reported, since the router steers
    # around it at once and monitoring would then see too few of its calls to judge it by.
    inference.on_stall = lambda instance_id: buffer.offer(
        {"service": "router", "inference_instance_id": instance_id, "inference_stalled": True, "timestamp": time.time(), "scores": ()})
    source = routing_source(settings)
    document, origin = source.initial()
    try:
        state = RoutingState(parse(document), origin)
    except RuleError as error:  # a bad file at start: refuse to start rather than route wrongly
        raise SystemExit(f"scoremesh: invalid routing configuration ({origin}): {error}") from None

    def reload(new_document, new_origin: str) -> None:
        try:
            state.apply(new_document, new_origin)
        except RuleError as error:
            log.error("routing configuration from %s refused, %s stays: %s", new_origin, state.config.version, error)

    runtime.spawn(source.watch(reload, settings.routing_poll_s), "routing-watch")
    feature_calls, inference_calls = FeaturesCalls(features), InferenceCalls(inference)
    catalog = ModelCatalog(inference_calls.replicas, inference_calls.describe, settings.model_catalog_max_age_s)
    admission = AdmissionControl(settings.max_in_flight)
    shadow = ShadowRunner(catalog, feature_calls.extract, inference_calls.infer, settings.shadow_timeout_s, settings.shadow_max_running,
                          busy=lambda: admission.in_flight > admission.max_in_flight // 2)
    runtime.on_stop(shadow.close)
    pipeline = ScoringPipeline(catalog, feature_calls.extract, inference_calls.infer, buffer, state.current, admission, shadow,
                               settings.max_candidates, span=runtime.tracing.internal_span)
    admin = RoutingAdmin(state, source, admin_token(settings.admin_token, settings.state_dir))
    runtime.add_servicer(router_pb2_grpc.add_RouterServicer_to_server, RouterServicer(pipeline, admin, settings.default_timeout_s),
                         "scoremesh.v1.Router")
    runtime.spawn(stream_telemetry(monitoring, buffer, telemetry_to_proto, TELEMETRY_SENT.inc), "telemetry")

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
