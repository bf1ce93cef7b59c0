"""Settings of the monitoring service (section `monitoring:` of scoremesh.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mesh.config import MeshSettings

SIGNALS = ("error_rate", "availability", "p50_ms", "p99_ms", "requests_per_second", "p99_anomaly_score", "slo_burn_fast_availability",
           "slo_burn_fast_latency", "drifted_features", "score_drifted", "cost_per_1000_scores", "budget_used",
           "version_error_rate", "version_error_excess", "version_latency_ratio", "version_score_shift",
           "instance_error_excess", "instance_latency_ratio", "instance_outrun_excess", "instance_stall_ejections",
           "auc", "log_loss", "calibration_error", "positive_rate")


class AlertRuleConfig(BaseModel):
    """One alert rule (services.monitoring.alerts)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    signal: Literal[SIGNALS]  # type: ignore[valid-type]
    op: Literal["gt", "lt", "eq", "ne", "pct_increase"]
    threshold: float
    severity: Literal["low", "medium", "high", "critical"] = "high"
    target: str = "*"
    """A model name (`model:version` for the version_* signals), or * for every one."""
    window_s: float = Field(default=300.0, gt=0)
    """pct_increase: compared with the value this long ago."""
    message: str | None = None
    """Template with {rule}, {signal}, {target}, {value}, {op}, {threshold}."""
    for_s: float = Field(default=0.0, ge=0)
    """The rule fires only once its condition has held this long (Prometheus' `for`)."""
    keep_firing_s: float = Field(default=0.0, ge=0)
    """The incident stays open this long after the rule last fired (Prometheus' keep_firing_for),
    so an action undone on resolve (switch back, readmit) is not undone by a value hovering at
    the threshold or by the quiet the action itself made."""


DEFAULT_RULES = [
    AlertRuleConfig(name="slo_fast_burn", signal="slo_burn_fast_availability", op="gt", threshold=14.4, severity="critical"),
    AlertRuleConfig(name="high_error_rate", signal="error_rate", op="gt", threshold=0.1, severity="critical", keep_firing_s=30.0),
    AlertRuleConfig(name="latency_doubled", signal="p99_ms", op="pct_increase", threshold=100.0, severity="high"),
    # p99 above the mean + 5 sigma of the last 100 evaluations (anomaly score |z|/7 > 0.7: high).
    AlertRuleConfig(name="latency_anomaly", signal="p99_anomaly_score", op="gt", threshold=0.7, severity="high"),
    AlertRuleConfig(name="feature_drift", signal="drifted_features", op="gt", threshold=0.0, severity="medium"),
    AlertRuleConfig(name="score_drift", signal="score_drifted", op="gt", threshold=0.0, severity="medium"),
    # A model version against the busiest other version of its model (target `model:version`):
    # recovery rolls such a version back.
    AlertRuleConfig(name="version_errors", signal="version_error_excess", op="gt", threshold=0.05, severity="critical"),
    AlertRuleConfig(name="version_slow", signal="version_latency_ratio", op="gt", threshold=3.0, severity="critical"),
    AlertRuleConfig(name="version_score_shift", signal="version_score_shift", op="gt", threshold=1.0, severity="high"),
    # An inference replica against its peers (target `instance:<id>`): recovery ejects it.
    # Held for 10 s before they fire: a replica is ejected for what it keeps doing, not for a blip.
    AlertRuleConfig(name="instance_errors", signal="instance_error_excess", op="gt", threshold=0.05, severity="high", for_s=10.0,
                    keep_firing_s=30.0),
    AlertRuleConfig(name="instance_slow", signal="instance_latency_ratio", op="gt", threshold=3.0, severity="high", for_s=10.0,
                    keep_firing_s=30.0),
    # Beaten by hedges to its peers on 20 points more of the calls sent to it first than they are
    # (peers differ by a few points): it stalls.
    AlertRuleConfig(name="instance_stalls", signal="instance_outrun_excess", op="gt", threshold=0.2, severity="high", for_s=10.0,
                    keep_firing_s=30.0),
    # A router's balancer ejected it as stalled (outrun three times in a row, nothing answered for
    # a second while its peers answered): the routers then steer around it, and the rule above
    # would lack the calls to judge it by. Held 5 s: time for the alert on a new version slow
    # enough to stop a replica to open first, which makes the verdict the version's (recovery
    # rolls the version back rather than eject a healthy replica; signals.VERSION_EXCUSE_LEAD_S).
    AlertRuleConfig(name="instance_stalled", signal="instance_stall_ejections", op="gt", threshold=0.0, severity="high",
                    for_s=5.0, keep_firing_s=30.0),
    # Model quality from feedback (quality_window_s, once quality_min_labelled outcomes are in it):
    # log loss up 10% against an hour ago. Watched, not acted on: the fix is a retrain or a rollback.
    AlertRuleConfig(name="log_loss_up", signal="log_loss", op="pct_increase", threshold=10.0, window_s=3600.0, severity="medium"),
    # The month the current spend projects, against monthly_budget (target "mesh"; only with a budget).
    AlertRuleConfig(name="budget_70", signal="budget_used", op="gt", threshold=0.70, severity="medium", target="mesh"),
    AlertRuleConfig(name="budget_80", signal="budget_used", op="gt", threshold=0.80, severity="high", target="mesh"),
    AlertRuleConfig(name="budget_95", signal="budget_used", op="gt", threshold=0.95, severity="critical", target="mesh"),
]


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

    alert_rules: list[AlertRuleConfig] = DEFAULT_RULES
    """Alert rules, evaluated every `alert_interval_s` per model; a firing rule opens (or counts
    into) an incident."""

    alert_interval_s: float = Field(default=5.0, gt=0)
    """How often the rules are evaluated."""

    alert_window_s: float = Field(default=60.0, gt=0)
    """The window of the error, latency and throughput signals the rules read."""

    drift_window_s: float = Field(default=300.0, gt=0)
    """The window of live samples drift is judged on, for the drift rules."""

    drift_interval_s: float = Field(default=60.0, gt=0)
    """How often the drift rules' signals are recomputed (KS and PSI over every feature cost
    tens of CPU-ms; between, the last result stands)."""

    join_window_s: float = Field(default=600.0, gt=0)
    """How long after a Score its outcomes are joined to it; later ones are counted late."""

    join_capacity: int = Field(default=200_000, gt=0)
    """The most Scores kept for joining (memory is bounded by this and join_window_s)."""

    quality_window_s: float = Field(default=3600.0, gt=0)
    """The window of joined outcomes the quality signals (auc, log_loss, calibration_error) read."""

    quality_min_labelled: int = Field(default=200, gt=0)
    """Joined outcomes a model needs in quality_window_s before its quality signals exist."""

    quality_retention_s: float = Field(default=7 * 86_400.0, gt=0)
    """Joins are kept this long (in SQLite, and in memory for the quality views)."""

    online_weighting: list[str] = []
    """Models whose ensemble weights learn from feedback from the start (a run-time switch,
    Monitoring/SetWeighting, overrides this per model). Off for every model by default."""

    weighting_method: Literal["gradient", "exponential"] = "gradient"
    """The online learner (domain.models.online_weights): exponentiated gradient on the
    ensemble's log loss, or exponential weights on the members'."""

    weighting_learning_rate: float = Field(default=0.2, gt=0)
    """The learner's step size (eta)."""

    weighting_share: float = Field(default=0.001, ge=0, lt=1)
    """Fixed-Share: weight mass returned toward the trained weights per outcome."""

    weighting_interval_s: float = Field(default=300.0, gt=0)
    """How often learned weights may be written as a new weights version."""

    weighting_min_outcomes: int = Field(default=500, gt=0)
    """Outcomes learned from, since the last weights version, before a new one is written."""

    cpu_price_per_hour: float = Field(default=0.04, ge=0)
    """Price of one CPU-hour: what cost per 1,000 Scores is computed with."""

    monthly_budget: float = Field(default=0.0, ge=0)
    """Monthly budget in the same currency; 0 = none. The month the current spend projects is
    alerted on at 70%, 80% and 95% of it."""

    cost_interval_s: float = Field(default=30.0, gt=0)
    """How often every instance's CPU-seconds are read (its /metrics process_cpu_seconds_total)."""
