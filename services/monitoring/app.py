"""Start one monitoring instance: `python -m services.monitoring --instance-id monitoring-1`."""

from __future__ import annotations


from mesh.config import MeshSettings
from mesh.server import ServiceRuntime, service_main
from scoremesh.v1 import monitoring_pb2_grpc
from services.monitoring.servicer import MonitoringServicer
from services.monitoring.store import TelemetryStore

SERVICE_NAME = "scoremesh.v1.Monitoring"


class MonitoringSettings(MeshSettings):
    yaml_section = "monitoring"

    store_capacity: int = 100_000
    """Telemetry records kept in memory for SLO views."""


async def serve(instance_id: str) -> None:
    settings = MonitoringSettings()
    runtime = ServiceRuntime(settings, "monitoring", instance_id)
    monitoring_pb2_grpc.add_MonitoringServicer_to_server(
        MonitoringServicer(TelemetryStore(settings.store_capacity)), runtime.server
    )
    runtime.add_services([SERVICE_NAME])
    await runtime.start()
    await runtime.set_serving(True)
    await runtime.run_until_stopped()


def main(argv: list[str] | None = None) -> None:
    service_main("monitoring", serve, argv)
