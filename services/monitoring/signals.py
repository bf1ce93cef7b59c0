"""The signals alert rules read, per model: computed from the telemetry windows, the SLO burn
rates and drift. No gRPC here."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from domain.errors import NotFound
from services.monitoring.anomaly import ZScoreDetector
from services.monitoring.drift import BINS, psi, psi_threshold
from services.monitoring.live import Baselines, LiveSamples, judge
from services.monitoring.quality import QualityWindows
from services.monitoring.slo import Objective, evaluate
from services.monitoring.windows import TelemetryWindows


class LatencyAnomalies:
    """A z-score detector per model over its p99 latency, one point per evaluation round."""

    def __init__(self, window: int = 100, min_points: int = 10, threshold: float = 3.0) -> None:
        self.window, self.min_points, self.threshold = window, min_points, threshold
        self.detectors: dict[str, ZScoreDetector] = {}

    def score(self, model: str, p99_ms: float) -> float:
        detector = self.detectors.setdefault(model, ZScoreDetector(self.window, self.min_points, self.threshold))
        anomaly = detector.observe(p99_ms)
        return anomaly.score if anomaly is not None else 0.0


DriftSignals = tuple[dict[str, float], dict[str, str]]
"""(signal values, and the names behind them: which features drifted)."""


class DriftCache:
    """The drift signals of each model, recomputed at most every `interval_s`."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._entries: dict[str, tuple[float, DriftSignals]] = {}

    def get(self, model: str, now: float) -> DriftSignals | None:
        entry = self._entries.get(model)
        return entry[1] if entry is not None and now - entry[0] < self.interval_s else None

    def put(self, model: str, now: float, signals: DriftSignals) -> None:
        self._entries[model] = (now, signals)


def model_signals(windows: TelemetryWindows, objectives: list[Objective], scale: float, window_s: float,
                  live: LiveSamples | None = None, baselines: Baselines | None = None, drift_window_s: float = 300.0,
                  now: float | None = None, anomalies: LatencyAnomalies | None = None,
                  drift_cache: DriftCache | None = None, details: dict[str, dict[str, str]] | None = None,
                  ) -> dict[str, dict[str, float]]:
    """model -> {error_rate, availability, p50_ms, p99_ms, requests_per_second,
    p99_anomaly_score, slo_burn_fast_<objective>, drifted_features, score_drifted}; a model
    without traffic in the window has no latency or error signals. `details`, when given, gets
    model -> {"drifted_features": the drifted features' names} for the alert messages."""
    now = time.time() if now is None else now
    signals: dict[str, dict[str, float]] = {}
    for model in sorted({key[1] for key in windows.keys() if key[0] == "router"}):
        view = windows.view(window_s, model, now=now)
        values: dict[str, float] = {}
        if view.requests:
            values.update(error_rate=view.error_rate, availability=view.availability, p50_ms=view.p50_ms, p99_ms=view.p99_ms,
                          requests_per_second=view.requests_per_second)
            if anomalies is not None:  # 0 until 10 rounds are known; |z|/7 above 3 sigma
                values["p99_anomaly_score"] = anomalies.score(model, view.p99_ms)
        for objective in objectives:
            fast = evaluate(windows, objective, scale, model, now=now).windows[0]
            # A pair fires when both windows burn faster than its factor: the smaller of the two says it.
            values[f"slo_burn_fast_{objective.kind}"] = min(fast.long_burn, fast.short_burn)
        if live is not None and baselines is not None:
            cached = drift_cache.get(model, now) if drift_cache is not None else None
            if cached is None:
                try:
                    result = judge(live, baselines, model, "", drift_window_s, now)
                except NotFound:  # no live traffic with a baseline yet
                    cached = ({}, {})
                else:
                    drifted = result.features.drifted
                    cached = ({"drifted_features": float(len(drifted)), "score_drifted": float(bool(result.scores.drifted))},
                              {"drifted_features": ", ".join(f"{f.name} (PSI {f.psi:.2f}, KS p {f.ks_p_value:.2g})" for f in drifted[:5])
                               + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")} if drifted else {})
                if drift_cache is not None:
                    drift_cache.put(model, now, cached)
            values.update(cached[0])
            if details is not None and cached[1]:
                details[model] = cached[1]
        signals[model] = values
    return signals


SCORE_MIN_SAMPLES = 100
"""Scores each version needs before their distributions are compared (as drift needs)."""
VERSION_MIN_REQUESTS = 20
"""Requests a version, and the version it is compared with, need in the window before they are
compared (fewer make a p99 of noise)."""
VERSION_EXCUSE_LEAD_S = 10.0
"""How long before a version's regression alert opened a router's stall verdict on a replica
that served the version is put down to the version. A new version slow enough to be rolled back
can leave a replica answering nothing for a second before enough of its calls are in to judge
the version (a verdict came 1 s before the version alert, 4 s after the version appeared, in
the end-to-end tests on a 2-core machine): recovery rolls the version back; ejecting the replica
as well took a healthy one out of two for 50 s."""


def version_target(model: str, version: str) -> str:
    """The alert target of one model version: `model:version` (recovery parses it back)."""
    return f"{model}:{version}"


def version_signals(windows: TelemetryWindows, window_s: float, now: float | None = None,
                    min_requests: int = VERSION_MIN_REQUESTS, live: LiveSamples | None = None) -> dict[str, dict[str, float]]:
    """`model:version` -> {version_error_rate, version_error_excess, version_latency_ratio (of
    p50s or p99s, whichever is larger; the inference hop's when known)}:
    each version with traffic against the busiest older version of its model (the one in
    production, or the canary's baseline), as canary analysis compares them (Argo Rollouts,
    Flagger). Never an older version against a newer one: what recovery does of a regression is
    hold the newer back so the older serves — after a rollback the older one is production again,
    and judging it by the newer, whose window lacks whatever load the older one met before,
    would roll back the version that serves. A model's oldest version in the window has none. With `live` samples, also
    version_score_shift: the PSI between the two versions' scores over its no-drift threshold for
    these sample sizes (above 1: the version scores traffic differently; at least 100 each)."""
    now = time.time() if now is None else now
    views: dict[str, dict[str, object]] = {}
    for model, version in sorted({key[1:3] for key in windows.keys() if key[0] == "router"}):
        view = windows.view(window_s, model, version, now=now)
        if view.requests >= min_requests:
            views.setdefault(model, {})[version] = view
    signals: dict[str, dict[str, float]] = {}
    for model, by_version in views.items():
        for version, view in by_version.items():
            others = [v for name, v in by_version.items() if name.isdigit() and version.isdigit() and int(name) < int(version)]
            if not others:
                continue
            reference = max(others, key=lambda v: v.requests)
            # The model's own hop when both know it (what a version changes; the rest of a Score
            # is features and the router), else the whole Score. The median or p99, whichever
            # rose more: a uniformly slower version moves the median most (under load the p99
            # of both is mostly queueing), a version with a new tail moves the p99.
            hop = view.inference_p99_ms > 0 and reference.inference_p99_ms > 0
            pairs = ([(view.inference_p50_ms, reference.inference_p50_ms), (view.inference_p99_ms, reference.inference_p99_ms)] if hop
                     else [(view.p50_ms, reference.p50_ms), (view.p99_ms, reference.p99_ms)])
            signals[version_target(model, version)] = {
                "version_error_rate": view.error_rate,
                "version_error_excess": view.error_rate - reference.error_rate,
                "version_latency_ratio": max(mine / max(theirs, 1e-3) for mine, theirs in pairs),
            }
            if live is not None:
                reference_version = next(name for name, v in by_version.items() if v is reference)
                _, mine = live.window(model, version, window_s, 0, now)
                _, theirs = live.window(model, reference_version, window_s, 0, now)
                if min(len(mine), len(theirs)) >= SCORE_MIN_SAMPLES:
                    edges = np.quantile(theirs, np.linspace(0, 1, BINS + 1))
                    signals[version_target(model, version)]["version_score_shift"] = psi(theirs, mine, edges) / psi_threshold(len(mine), len(theirs))
    return signals


def instance_target(instance_id: str) -> str:
    """The alert target of one instance: `instance:<id>` (recovery parses it back)."""
    return f"instance:{instance_id}"


def instance_signals(windows: TelemetryWindows, window_s: float, now: float | None = None,
                     min_requests: int = VERSION_MIN_REQUESTS,
                     regressions: Sequence[tuple[str, float, float]] = ()) -> dict[str, dict[str, float]]:
    """`instance:<id>` -> {instance_latency_ratio, instance_error_excess, instance_outrun_excess}:
    each inference replica against the median of its peers serving the same model version
    (during a rollout a replica already on a slower new version is not an outlier). Two views,
    each replica compared within each: what the replica records of its own ModelInfer calls
    (median latency, errors), and what the routers saw when they called it first (median wait,
    and the share of calls a hedge to another replica answered first): a stopped or CPU-starved
    process queues calls before it can time them, and hedging caps how long it makes callers
    wait, so only the outrun share shows how often it stalls. A slow replica gets less traffic
    from the balancers, but what it gets is slow. Needs two replicas with `min_requests` each
    in a view; a replica's worst view counts.

    `regressions`: (`model:version`, alert opened, resolved or inf) of the version alerts open
    in the window. Such a version's calls are not compared, and the routers' stall verdicts on a
    replica that served it, from VERSION_EXCUSE_LEAD_S before its alert opened until it
    resolved, are the version's."""
    now = time.time() if now is None else now
    signals: dict[str, dict[str, float]] = {}
    regressed = {target for target, _, _ in regressions}
    for service in ("inference", "router"):
        for model, version in sorted({key[1:3] for key in windows.keys() if key[0] == service and key[5]}):
            if version_target(model, version) in regressed:
                continue  # the calls of a version judged regressed say nothing of the replicas
            measured: dict[str, dict[str, float]] = {}
            for instance in sorted({key[5] for key in windows.keys() if key[0] == service and key[1:3] == (model, version) and key[5]}):
                view = windows.view(window_s, model, version, now=now, service=service, instance_id=instance)
                if view.requests < min_requests:
                    continue
                if service == "inference":
                    measured[instance] = {"instance_latency_ratio": view.p50_ms, "instance_error_excess": view.error_rate}
                elif view.inference_p50_ms > 0:
                    measured[instance] = {"instance_latency_ratio": view.inference_p50_ms, "instance_outrun_excess": view.outrun_share}
            for instance, values in measured.items():
                peers = [v for name, v in measured.items() if name != instance]
                if not peers:
                    continue
                out = signals.setdefault(instance_target(instance), {})
                for signal, value in values.items():
                    typical = float(np.median([p[signal] for p in peers]))
                    # Latencies as a ratio to the peers'; rates and shares as the excess over theirs.
                    compared = value / max(typical, 1e-3) if signal == "instance_latency_ratio" else value - typical
                    out[signal] = max(out.get(signal, compared), compared)
    # Routers' verdicts: a replica they ejected as stalled got too few calls since to be judged
    # by the views above (they steer around it at once).
    excused: dict[str, list[tuple[float, float]]] = {}
    for target, opened, resolved in regressions:
        model, _, version = target.rpartition(":")
        for key in windows.keys():
            if key[0] == "inference" and key[1:3] == (model, version) and key[5]:
                excused.setdefault(key[5], []).append((opened - VERSION_EXCUSE_LEAD_S, resolved))
    for instance, count in windows.stalls(window_s, now, excused).items():
        signals.setdefault(instance_target(instance), {})["instance_stall_ejections"] = float(count)
    return signals


def quality_signals(quality: QualityWindows, window_s: float, min_labelled: int, now: float | None = None) -> dict[str, dict[str, float]]:
    """model -> {auc, log_loss, calibration_error, positive_rate} of its joined outcomes over
    `window_s`, for models with at least `min_labelled` of them (an AUC of a few outcomes is
    noise). A rule such as "log loss up 10% over an hour" is pct_increase on log_loss."""
    signals: dict[str, dict[str, float]] = {}
    for model in sorted(quality.models()):
        view = quality.view(window_s, model, now=now)
        if view.labelled >= min_labelled:
            values = {"log_loss": view.log_loss, "calibration_error": view.calibration_error, "positive_rate": view.positive_rate}
            if np.isfinite(view.auc):
                values["auc"] = view.auc
            signals[model] = values
    return signals
