"""Start one router instance: `python -m services.router --instance-id router-1`."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from prometheus_client import Counter

from inference import grpc_service_pb2_grpc
from mesh.client import ServiceClient
from mesh.config import MeshSettings
from mesh.server import ServiceRuntime, service_main
from scoremesh.v1 import features_pb2, features_pb2_grpc, monitoring_pb2, monitoring_pb2_grpc, router_pb2_grpc
from services.features.converters import candidates_to_proto, context_to_proto, matrix_from_proto
from services.inference.converters import decode_response, encode_request
from services.inference.protocol import FEATURE_SCHEMA_PARAMETER, MEMBER_NAMES_PARAMETER
from services.router.scoring import Features, Inference, ScoringPipeline
from services.router.servicer import RouterServicer
from services.router.telemetry_buffer import TelemetryBuffer

log = logging.getLogger(__name__)
SERVICE_NAME = "scoremesh.v1.Router"

TELEMETRY_SENT = Counter("scoremesh_router_telemetry_sent_total", "Telemetry records delivered to monitoring.")
TELEMETRY_DROPPED = Counter("scoremesh_router_telemetry_dropped_total", "Telemetry records dropped (buffer full).")


class RouterSettings(MeshSettings):
    yaml_section = "router"

    max_candidates: int = 1000
    """Most candidates one Score request may carry."""

    default_timeout_s: float = 2.0
    """Deadline for a Score whose caller set none; downstream calls share it."""

    telemetry_buffer: int = 10_000
    """Telemetry records held for monitoring before new ones are dropped."""


def build_pipeline(
    runtime: ServiceRuntime, settings: RouterSettings, buffer: TelemetryBuffer
) -> tuple[ScoringPipeline, list[ServiceClient]]:
    features = ServiceClient(runtime.registry, "features", features_pb2_grpc.FeatureServiceStub, settings.max_message_bytes)
    inference = ServiceClient(runtime.registry, "inference", grpc_service_pb2_grpc.GRPCInferenceServiceStub, settings.max_message_bytes)
    runtime.on_stop(features.close)
    runtime.on_stop(inference.close)

    async def extract(request_id, context, candidates, timeout, schema_version) -> Features:
        data_type, proto_context = context_to_proto(context)
        request = features_pb2.ExtractRequest(
            request_id=request_id, data_type=data_type, context=proto_context,
            candidates=candidates_to_proto(candidates), schema_version=schema_version,
        )
        response = await features.call(lambda stub: stub.Extract, request, timeout)
        return Features(matrix_from_proto(response), response.schema_name, response.schema_version, response.store_degraded)

    async def infer(model, request_id, matrix, timeout, feature_schema) -> Inference:
        request = encode_request(model, matrix, request_id, parameters={FEATURE_SCHEMA_PARAMETER: feature_schema})
        response = await inference.call(lambda stub: stub.ModelInfer, request, timeout)
        outputs = decode_response(response)
        members = response.parameters[MEMBER_NAMES_PARAMETER].string_param.split(",")
        return Inference(
            response.model_name, response.model_version, members,
            outputs["score"], outputs["member_scores"], outputs["confidence"],
            response.parameters[FEATURE_SCHEMA_PARAMETER].string_param,
        )

    return ScoringPipeline(extract, infer, buffer, settings.max_candidates), [features, inference]


def _record_to_proto(record: dict) -> monitoring_pb2.TelemetryRecord:
    return monitoring_pb2.TelemetryRecord(**{**record, "scores": [float(s) for s in np.asarray(record["scores"])]})


async def send_telemetry(runtime: ServiceRuntime, buffer: TelemetryBuffer) -> None:
    """Keep a Report stream open to a monitoring instance; reconnect when it goes away."""
    monitoring = ServiceClient(runtime.registry, "monitoring", monitoring_pb2_grpc.MonitoringStub)
    runtime.on_stop(monitoring.close)
    while True:
        instances = await monitoring.instances()
        if not instances:
            await asyncio.sleep(1.0)
            monitoring.invalidate()
            continue

        async def batches():
            while True:
                batch = await buffer.next_batch()
                yield monitoring_pb2.ReportRequest(records=[_record_to_proto(r) for r in batch])
                TELEMETRY_SENT.inc(len(batch))

        try:
            stub = monitoring.stub(instances[0].address)
            await stub.Report(batches())
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("telemetry stream to monitoring ended: %s; reconnecting", error)
            await asyncio.sleep(1.0)
            monitoring.invalidate()


async def serve(instance_id: str) -> None:
    settings = RouterSettings()
    runtime = ServiceRuntime(settings, "router", instance_id)
    buffer = TelemetryBuffer(settings.telemetry_buffer, on_drop=TELEMETRY_DROPPED.inc)
    pipeline, dependencies = build_pipeline(runtime, settings, buffer)
    router_pb2_grpc.add_RouterServicer_to_server(RouterServicer(pipeline, settings.default_timeout_s), runtime.server)
    runtime.add_services([SERVICE_NAME])
    await runtime.start()
    runtime.spawn(send_telemetry(runtime, buffer), "telemetry")
    runtime.spawn(track_readiness(runtime, dependencies), "readiness")
    await runtime.run_until_stopped()


async def track_readiness(runtime: ServiceRuntime, dependencies: list[ServiceClient]) -> None:
    """Ready means able to score: every dependency has a healthy instance."""
    while True:
        ready = True
        for client in dependencies:
            client.invalidate()
            ready = ready and bool(await client.instances())
        if ready != runtime.serving:
            await runtime.set_serving(ready)
        await asyncio.sleep(1.0)


def main(argv: list[str] | None = None) -> None:
    service_main("router", serve, argv)
