"""Settings of the recovery service (section `recovery:` of scoremesh.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mesh.config import MeshSettings
from services.recovery.policies import ALERT_ACTIONS, DEFAULT_POLICIES, FAILURE_TYPES


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

    alert_policies: dict[str, Literal[ALERT_ACTIONS]] = DEFAULT_POLICIES  # type: ignore[valid-type]
    """Failure type (services.recovery.policies.FAILURE_TYPES, classified from monitoring's alerts)
    -> action: `rollback_version` (the alert's target model:version), `scale_up` (one more
    inference replica), `switch_model` (the model's routes answer with their fallback first,
    switched back when the alert resolves), `clear_cache` (the features service's cache of
    store lookups), `eject_instance` (an outlier replica out of resolution until its alert
    resolves) or `none` (watch only)."""

    max_local_replicas: int = Field(default=4, ge=1, le=10)
    """scale_up starts replicas through the local supervisor up to this many per service (under
    an orchestrator, replicas are its autoscaler's)."""

    promotion_min_auc: float = Field(default=0.6, ge=0, le=1)
    """The promotion gate: a version's test AUC must reach this..."""
    promotion_max_log_loss: float = Field(default=0.69, gt=0)
    """...its test log loss stay under this (0.69: no better than a coin)..."""
    promotion_max_calibration_error: float = Field(default=0.05, ge=0)
    """...its calibration error under this..."""
    promotion_max_p99_ms: float = Field(default=100.0, gt=0)
    """...the p99 of a 200-call load probe against a replica serving it under this..."""
    promotion_margin: float = Field(default=0.01, ge=0)
    """...and it may be worse than production by at most this: AUC points, log loss relative."""

    eject_s: float = Field(default=120.0, gt=0)
    """An instance eject_instance took out of resolution is readmitted when its alert resolves
    (its calls aged out of monitoring's alert window, plus the rule's keep_firing_s: 90 s by
    default), or after this long at the latest (monitoring gone quiet)."""

    watch_alerts: bool = True
    """Follow every monitoring instance's WatchAlerts stream and act on alerts by the policies."""

    action_cooldown_s: float = Field(default=300.0, ge=0)
    """After an action on (failure type, target), no other on it for this long (no flapping)."""

    give_up_after: int = Field(default=3, ge=1)
    """Failed actions on (failure type, target) before recovery stops trying until the alert resolves."""

    latency_limit_ms: float = Field(default=10_000.0, gt=0)
    """Above this a latency alert classifies as high_latency (shared/REFERENCE.md: 10 s)."""

    reconcile_interval_s: float = Field(default=5.0, gt=0)
    """How often recorded rollbacks are checked against every inference replica (and applied again
    where a restarted or new replica serves the version)."""

    @field_validator("alert_policies")
    @classmethod
    def _known_failures(cls, policies: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(policies) - set(FAILURE_TYPES))
        if unknown:
            raise ValueError(f"unknown failure type {unknown[0]!r} (known: {', '.join(FAILURE_TYPES)})")
        return DEFAULT_POLICIES | policies
