"""Start one monitoring instance: `python -m services.monitoring --instance-id monitoring-1`."""

from __future__ import annotations

from mesh.runtime import Service, ServiceRuntime, service_main
from scoremesh.v1 import monitoring_pb2_grpc
from services.monitoring.servicer import MonitoringServicer
from services.monitoring.settings import MonitoringSettings
from services.monitoring.live import Baselines, LiveSamples
from services.monitoring.slo import Objective
from services.monitoring.windows import TelemetryWindows


async def setup(runtime: ServiceRuntime, settings: MonitoringSettings) -> None:
    objectives = [
        Objective("availability", "availability", settings.slo_availability),
        Objective(f"latency under {settings.slo_latency_ms:g} ms", "latency", settings.slo_latency_target, settings.slo_latency_ms),
    ]
    windows = TelemetryWindows(settings.bucket_s, settings.retention_s, settings.slo_latency_ms)
    live = LiveSamples(settings.drift_samples)
    baselines = Baselines(settings.model_repository, settings.feature_dir)
    servicer = MonitoringServicer(windows, objectives, settings.slo_window_scale, live, baselines)
    runtime.add_servicer(monitoring_pb2_grpc.add_MonitoringServicer_to_server, servicer, "scoremesh.v1.Monitoring")
    return None  # ready as soon as it listens


SERVICE = Service("monitoring", MonitoringSettings, setup)


def main(argv: list[str] | None = None) -> None:
    service_main(SERVICE, argv)
