"""Start one monitoring instance: `python -m services.monitoring --instance-id monitoring-1`."""

from __future__ import annotations

from mesh.runtime import Service, ServiceRuntime, service_main
from scoremesh.v1 import monitoring_pb2_grpc
from services.monitoring.servicer import MonitoringServicer
from services.monitoring.settings import MonitoringSettings
from services.monitoring.store import TelemetryStore


async def setup(runtime: ServiceRuntime, settings: MonitoringSettings) -> None:
    servicer = MonitoringServicer(TelemetryStore(settings.store_capacity))
    runtime.add_servicer(monitoring_pb2_grpc.add_MonitoringServicer_to_server, servicer, "scoremesh.v1.Monitoring")
    return None  # ready as soon as it listens


SERVICE = Service("monitoring", MonitoringSettings, setup)


def main(argv: list[str] | None = None) -> None:
    service_main(SERVICE, argv)
