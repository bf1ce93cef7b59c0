"""Settings of the monitoring service (section `monitoring:` of scoremesh.yaml)."""

from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class MonitoringSettings(MeshSettings):
    yaml_section = "monitoring"

    bucket_s: float = Field(default=10.0, gt=0)
    """Telemetry is aggregated per model version into buckets of this many seconds (counts and a
    latency sketch each); windows are made of whole buckets."""

    retention_s: float = Field(default=3 * 86400.0, gt=0)
    """Buckets older than this are dropped (the longest burn-rate window is 3 days)."""

    slo_availability: float = Field(default=0.999, gt=0, lt=1)
    """Availability objective: this share of Scores must answer OK."""

    slo_latency_ms: float = Field(default=100.0, gt=0)
    """Latency objective: Scores no slower than this are good..."""

    slo_latency_target: float = Field(default=0.99, gt=0, lt=1)
    """...and this share of them must be."""

    slo_window_scale: float = Field(default=1.0, gt=0)
    """Multiplies every burn-rate window (1 h/5 min, 6 h/30 min, 3 d/6 h); below 1 in tests."""

    drift_samples: int = Field(default=20_000, ge=100)
    """Live samples (an input row and the scores of one Score) kept per model version for drift."""
