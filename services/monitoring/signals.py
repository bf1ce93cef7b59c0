"""The signals alert rules read, per model: computed from the telemetry windows, the SLO burn
rates and drift. No gRPC here."""

from __future__ import annotations

import time

from domain.errors import NotFound
from services.monitoring.live import Baselines, LiveSamples, judge
from services.monitoring.slo import Objective, evaluate
from services.monitoring.windows import TelemetryWindows


def model_signals(windows: TelemetryWindows, objectives: list[Objective], scale: float, window_s: float,
                  live: LiveSamples | None = None, baselines: Baselines | None = None, drift_window_s: float = 300.0,
                  now: float | None = None) -> dict[str, dict[str, float]]:
    """model -> {error_rate, availability, p50_ms, p99_ms, requests_per_second, slo_burn_fast,
    drifted_features}; a model without traffic in the window has no latency or error signals."""
    now = time.time() if now is None else now
    signals: dict[str, dict[str, float]] = {}
    for model in sorted({name for name, _ in windows.buckets}):
        view = windows.view(window_s, model, now=now)
        values: dict[str, float] = {}
        if view.requests:
            values.update(error_rate=view.error_rate, availability=view.availability, p50_ms=view.p50_ms, p99_ms=view.p99_ms,
                          requests_per_second=view.requests_per_second)
        for objective in objectives:
            fast = evaluate(windows, objective, scale, model, now=now).windows[0]
            # A pair fires when both windows burn faster than its factor: the smaller of the two says it.
            values[f"slo_burn_fast_{objective.kind}"] = min(fast.long_burn, fast.short_burn)
        if live is not None and baselines is not None:
            try:
                result = judge(live, baselines, model, "", drift_window_s, now)
            except NotFound:  # no live traffic with a baseline yet
                pass
            else:
                values["drifted_features"] = float(len(result.features.drifted))
                values["score_drifted"] = float(bool(result.scores.drifted))
        signals[model] = values
    return signals
