"""Settings of the monitoring service (section `monitoring:` of scoremesh.yaml)."""

from __future__ import annotations

from mesh.config import MeshSettings


class MonitoringSettings(MeshSettings):
    yaml_section = "monitoring"

    store_capacity: int = 100_000
    """Telemetry records kept in memory for SLO views."""
