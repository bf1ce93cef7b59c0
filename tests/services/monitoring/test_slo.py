"""Burn-rate alerts: a pair fires only when both its windows burn faster than its factor."""

import pytest

from services.monitoring.slo import Objective, evaluate
from services.monitoring.windows import Record, TelemetryWindows

NOW = 1_000_000.0
SCALE = 1 / 60  # 1 h -> 60 s, 5 min -> 5 s, 6 h -> 360 s, 30 min -> 30 s, 3 d -> 4,320 s, 6 h -> 360 s
AVAILABILITY = Objective("availability", "availability", 0.999)


def _traffic(windows: TelemetryWindows, start: float, seconds: int, per_second: int, bad_every: int = 0, latency_ms: float = 10.0):
    for s in range(seconds):
        for i in range(per_second):
            bad = bad_every and (s * per_second + i) % bad_every == 0
            windows.add(Record("ctr", "UNAVAILABLE" if bad else "OK", latency_ms, start + s))


def test_a_sustained_outage_fires_the_fast_pair_and_healthy_traffic_fires_none():
    windows = TelemetryWindows(bucket_s=1, clock=lambda: NOW)
    _traffic(windows, NOW - 4000, 3940, 10)  # healthy: burn 0
    status = evaluate(windows, AVAILABILITY, SCALE, now=NOW - 60)
    assert status.firing == () and status.budget_remaining == pytest.approx(1.0)
    _traffic(windows, NOW - 60, 60, 10, bad_every=50)  # 2% errors for the last "hour": burn 20x
    status = evaluate(windows, AVAILABILITY, SCALE, now=NOW)
    fast = status.windows[0]
    assert (fast.factor, fast.long_s, fast.short_s) == (14.4, 60.0, 5.0)
    assert fast.long_burn == pytest.approx(20.0, rel=0.05) and fast.short_burn == pytest.approx(20.0, rel=0.05)
    six = status.windows[1]  # 6 h -> 360 s holds 300 healthy seconds too: burn 20 x 60/360 = 3.3
    assert six.short_burn == pytest.approx(20.0, rel=0.05) and six.long_burn == pytest.approx(3.33, rel=0.05)
    assert [w.factor for w in status.firing] == [14.4]


def test_a_short_spike_alone_does_not_page():
    windows = TelemetryWindows(bucket_s=1, clock=lambda: NOW)
    _traffic(windows, NOW - 60, 55, 10)
    _traffic(windows, NOW - 5, 5, 10, bad_every=20)  # 5% errors for 5 s: the short window burns, the long does not
    fast = evaluate(windows, AVAILABILITY, SCALE, now=NOW).windows[0]
    assert fast.short_burn > 14.4 and fast.long_burn < 14.4 and not fast.firing


def test_latency_objective_counts_requests_over_the_threshold():
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    _traffic(windows, NOW - 60, 60, 10, latency_ms=150)
    objective = Objective("p99 under 100 ms", "latency", 0.99, threshold_ms=100)
    status = evaluate(windows, objective, SCALE, now=NOW)
    assert status.windows[0].long_burn == pytest.approx(100.0)  # every request bad: 1 / 0.01
    assert status.budget_remaining < 0
