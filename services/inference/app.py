"""Start one inference instance: `python -m services.inference --instance-id inference-1`."""

from __future__ import annotations

import asyncio
import logging

import torch
from prometheus_client import Counter

from inference import grpc_service_pb2_grpc as pb_grpc
from mesh.admin_auth import admin_token
from mesh.runtime import Readiness, Service, ServiceRuntime, service_main
from mesh.telemetry_buffer import TelemetryBuffer, stream_telemetry
from scoremesh.v1 import monitoring_pb2_grpc
from services.inference import converters
from services.inference.batching import BatchingPolicy
from services.inference.handler import InferenceHandler
from services.inference.model_manager import ModelManager, VersionPolicy
from services.inference.servicer import InferenceServicer
from services.inference.settings import InferenceSettings

log = logging.getLogger(__name__)
TELEMETRY_SENT = Counter("scoremesh_inference_telemetry_sent_total", "ModelInfer records delivered to monitoring.")
TELEMETRY_DROPPED = Counter("scoremesh_inference_telemetry_dropped_total", "ModelInfer records dropped (buffer full).")


def build_manager(settings: InferenceSettings) -> ModelManager:
    device = settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    mode = settings.compute_dtype if settings.compute_dtype != "auto" else ("tf32" if device.startswith("cuda") else "float32")
    if mode == "tf32" and not device.startswith("cuda"):
        raise ValueError("inference.compute_dtype: tf32 is a GPU mode (tensor cores); the CPU computes in float32")
    return ModelManager(
        repository=settings.model_repository_path or settings.model_repository,
        feature_dir=settings.feature_dir,
        device=device,
        compute_dtype=torch.float32 if mode == "tf32" else getattr(torch, mode),
        precision="tf32" if mode == "tf32" else "ieee",
        tuning_cache=settings.kernel_tuning_cache or settings.state_dir / "kernel-tuning.json",
        batching=BatchingPolicy(
            max_batch_rows=settings.max_batch_rows,
            max_queue_delay_s=settings.max_queue_delay_ms / 1000,
            max_queue_rows=settings.max_queue_rows,
            slo_s=settings.latency_slo_ms / 1000,
            inline=settings.inline_cpu_batches and device == "cpu",
        ),
        default_policy=VersionPolicy(latest=settings.versions_latest),
        policies={name: VersionPolicy(specific=tuple(str(v) for v in versions)) for name, versions in settings.versions_specific.items()},
    )


async def setup(runtime: ServiceRuntime, settings: InferenceSettings) -> Readiness:
    torch.set_num_threads(settings.torch_threads)
    manager = build_manager(settings)
    telemetry = None
    if settings.telemetry_buffer > 0:
        telemetry = TelemetryBuffer(settings.telemetry_buffer, on_drop=TELEMETRY_DROPPED.inc)
        monitoring = runtime.client("monitoring", monitoring_pb2_grpc.MonitoringStub, "scoremesh.v1.Monitoring")
        runtime.spawn(stream_telemetry(monitoring, telemetry, converters.telemetry_to_proto, TELEMETRY_SENT.inc), "telemetry")
    runtime.add_servicer(
        pb_grpc.add_GRPCInferenceServiceServicer_to_server,
        InferenceServicer(InferenceHandler(manager, admin_token(settings.admin_token, settings.state_dir)), telemetry, runtime.instance_id),
        "inference.GRPCInferenceService",
    )
    runtime.on_stop(manager.unload_all)

    async def watch_repository() -> None:
        """Load what appears, unload what goes (every `repository_poll_s`)."""
        while True:
            try:
                await manager.refresh()
            except Exception:
                log.exception("repository scan failed")
            if settings.repository_poll_s <= 0:
                return
            await asyncio.sleep(settings.repository_poll_s)

    runtime.spawn(watch_repository(), "repository")

    async def ready() -> bool:
        """Ready when every model of the repository has a warm version serving."""
        return manager.ready

    return ready


SERVICE = Service("inference", InferenceSettings, setup, cores_per_worker=4)


def main(argv: list[str] | None = None) -> None:
    service_main(SERVICE, argv)
