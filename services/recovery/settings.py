"""Settings of the recovery service (section `recovery:` of scoremesh.yaml)."""

from __future__ import annotations

from typing import Literal

from mesh.config import MeshSettings


class RecoverySettings(MeshSettings):
    yaml_section = "recovery"

    probe_interval_s: float = 1.0
    """How often every instance is health-checked."""

    probe_timeout_s: float = 1.0
    """Deadline of one health check."""

    startup_grace_s: float = 60.0
    """An instance younger than this may report NOT_SERVING (warming up) without counting as failed."""

    restart_attempts: int = 3
    """Restart tries per recovery."""

    restart_backoff_s: float = 5.0
    """Backoff before retry n is this x 2^(n-1)."""

    recovery_timeout_s: float = 30.0
    """How long a restarted instance has to pass its health check."""

    restarts_by: Literal["supervisor", "orchestrator"] = "supervisor"
    """Who restarts an instance: the local supervisor of `scoremesh up` (asked over gRPC), or
    the orchestrator (Kubernetes liveness probes, docker-compose restart policies), where no
    supervisor runs: recovery then only watches the instance come back and audits it."""
