"""Start one monitoring instance: `python -m services.monitoring --instance-id monitoring-1`."""

from __future__ import annotations

import asyncio
import logging

import time
import urllib.request

from prometheus_client import Gauge
from prometheus_client.parser import text_string_to_metric_families

from mesh.runtime import Service, ServiceRuntime, service_main
from scoremesh.v1 import monitoring_pb2_grpc
from services.monitoring.servicer import MonitoringServicer
from services.monitoring.settings import MonitoringSettings
from services.monitoring.cost import CostTracker
from services.monitoring.alerts import Alerting, AlertRule, IncidentStore, RuleEvaluator
from services.monitoring.live import Baselines, LiveSamples
from domain.models.online_weights import LearnerSettings
from mesh.admin_auth import admin_token
from services.monitoring.feedback import FeedbackJoiner, JoinStore, ModelLabels, ScoredRequests
from services.monitoring.learning import OnlineLearning, SwitchStore
from services.monitoring.quality import QualityWindows
from services.monitoring.signals import DriftCache, LatencyAnomalies, instance_signals, model_signals, quality_signals, version_signals
from services.monitoring.slo import Objective
from services.monitoring.windows import TelemetryWindows

log = logging.getLogger(__name__)
OPEN_INCIDENTS = Gauge("scoremesh_monitoring_open_incidents", "Open incidents, by severity.", ["severity"], multiprocess_mode="max")
BURN = Gauge("scoremesh_slo_burn_rate_fast", "Error-budget burn rate of the fast pair (the smaller of its 1 h and 5 min windows).",
             ["model", "objective"], multiprocess_mode="max")

COST_PER_1000 = Gauge("scoremesh_cost_per_1000_scores", "CPU cost of 1,000 Scores, by model (cpu_price_per_hour).", ["model"],
                      multiprocess_mode="max")
SIGNAL = Gauge("scoremesh_monitoring_signal", "Every value the alert rules read, by target (a model, model:version, instance:<id> "
               "or mesh) and signal name, as of the last evaluation round.", ["target", "signal"], multiprocess_mode="max")
COST_MONTHLY = Gauge("scoremesh_cost_projected_monthly", "The month the current CPU spend projects.", multiprocess_mode="max")


def cpu_totals(states) -> dict[tuple[str, str], float]:
    """(service, instance) -> process_cpu_seconds_total read from each instance's /metrics; an
    instance that does not answer (or exports no process metrics) is left out this time."""
    totals = {}
    for state in states:
        url = state.instance.metrics_url
        if not url:
            continue
        try:
            text = urllib.request.urlopen(url, timeout=1.0).read().decode()
        except (OSError, ValueError):
            continue
        for family in text_string_to_metric_families(text):
            if family.name == "process_cpu_seconds":
                totals[(state.instance.service, state.instance.instance_id)] = sum(s.value for s in family.samples)
    return totals


async def setup(runtime: ServiceRuntime, settings: MonitoringSettings) -> None:
    objectives = [
        Objective("availability", "availability", settings.slo_availability),
        Objective(f"latency under {settings.slo_latency_ms:g} ms", "latency", settings.slo_latency_target, settings.slo_latency_ms),
    ]
    windows = TelemetryWindows(settings.bucket_s, settings.retention_s, settings.slo_latency_ms)
    live = LiveSamples(settings.drift_samples)
    baselines = Baselines(settings.model_repository, settings.feature_dir)
    rules = [AlertRule(r.name, r.signal, r.op, r.threshold, r.severity, r.target, r.window_s, r.message or AlertRule.message,
                       r.for_s, r.keep_firing_s) for r in settings.alert_rules]
    store = IncidentStore(settings.state_dir / "monitoring" / "incidents.sqlite")
    alerting = Alerting(RuleEvaluator(rules), store)
    joins = JoinStore(settings.state_dir / "monitoring" / "feedback.sqlite")
    joins.prune(time.time() - settings.quality_retention_s)
    quality = QualityWindows(settings.quality_retention_s)
    for joined in joins.since(time.time() - settings.quality_retention_s):  # a restart keeps what was learned
        quality.add(joined)
    feedback = FeedbackJoiner(ScoredRequests(settings.join_window_s, settings.join_capacity), joins, ModelLabels(settings.model_repository))
    switches = SwitchStore(settings.state_dir / "monitoring" / "feedback.sqlite")
    learning = OnlineLearning(settings.model_repository, switches,
                              LearnerSettings(settings.weighting_method, settings.weighting_learning_rate, settings.weighting_share),
                              tuple(settings.online_weighting), settings.weighting_interval_s, settings.weighting_min_outcomes)
    servicer = MonitoringServicer(windows, objectives, settings.slo_window_scale, live, baselines, alerting, feedback, quality, learning,
                                  admin_token(settings.admin_token, settings.state_dir))
    runtime.add_servicer(monitoring_pb2_grpc.add_MonitoringServicer_to_server, servicer, "scoremesh.v1.Monitoring")

    anomalies = LatencyAnomalies()
    drift_cache = DriftCache(settings.drift_interval_s)
    costs = CostTracker(settings.cpu_price_per_hour, settings.monthly_budget, settings.cost_interval_s)

    def read_cost() -> None:
        now = time.time()
        if not costs.due(now):
            return
        view = costs.update(now, cpu_totals(runtime.registry.list_all()), *servicer.take_usage())
        if view is not None:
            COST_MONTHLY.set(view.projected_monthly)
            for model, value in view.cost_per_1000_scores.items():
                COST_PER_1000.labels(model).set(value)

    def round_() -> list:
        read_cost()
        details: dict[str, dict[str, str]] = {}
        signals = model_signals(windows, objectives, settings.slo_window_scale, settings.alert_window_s, live, baselines,
                                settings.drift_window_s, anomalies=anomalies, drift_cache=drift_cache, details=details)
        signals.update(version_signals(windows, settings.alert_window_s, live=live))
        signals.update(instance_signals(windows, settings.alert_window_s,
                                        regressions=store.spans("version_", time.time() - settings.alert_window_s)))
        for model, values in quality_signals(quality, settings.quality_window_s, settings.quality_min_labelled).items():
            signals.setdefault(model, {}).update(values)
        view = costs.view
        if view is not None:
            for model, value in view.cost_per_1000_scores.items():
                signals.setdefault(model, {})["cost_per_1000_scores"] = value
            if view.budget_used is not None:
                signals["mesh"] = {"budget_used": view.budget_used}
        changed = alerting.evaluate(signals, details)
        OPEN_INCIDENTS.clear()
        for incident in store.list(include_resolved=False):
            OPEN_INCIDENTS.labels(incident.severity).inc()
        SIGNAL.clear()  # a target gone quiet leaves no stale series behind
        for target, values in signals.items():
            for name, value in values.items():
                SIGNAL.labels(target, name).set(value)
        for model, values in signals.items():
            for objective in objectives:
                BURN.labels(model, objective.kind).set(values.get(f"slo_burn_fast_{objective.kind}", 0.0))
        return changed

    async def evaluate_rules() -> None:
        while True:
            await asyncio.sleep(settings.alert_interval_s)
            try:
                changed = await asyncio.to_thread(round_)  # drift tests and SQLite: off the event loop
            except Exception:
                log.exception("alert evaluation failed")
                continue
            for incident in changed:
                log.warning("incident %s: %s (%s, seen %d times)", incident.status, incident.message, incident.severity, incident.count)
            servicer.publish(changed)

    async def write_weights() -> None:
        while True:
            await asyncio.sleep(min(settings.weighting_interval_s, 5.0))
            try:
                learning.publish_due()
            except Exception:
                log.exception("writing learned ensemble weights failed")

    async def close_store() -> None:
        store.close()
        joins.close()
        switches.close()

    runtime.spawn(evaluate_rules(), "alert-rules")
    runtime.spawn(write_weights(), "online-weighting")
    runtime.on_stop(close_store)
    return None  # ready as soon as it listens


SERVICE = Service("monitoring", MonitoringSettings, setup)


def main(argv: list[str] | None = None) -> None:
    service_main(SERVICE, argv)
