"""Sliding-window views from merged per-bucket sketches."""

import pytest

from services.monitoring.windows import Record, TelemetryWindows

NOW = 1_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_window_merges_its_buckets_within_the_sketchs_accuracy():
    windows = TelemetryWindows(bucket_s=10, slow_threshold_ms=90, clock=Clock(NOW))
    for i in range(100):
        windows.add(Record("ctr", "OK" if i % 10 else "UNAVAILABLE", float(i + 1), NOW - 10 - (i % 5) * 20, "2"))
    windows.add(Record("ctr", "OK", 5000.0, NOW - 400, "2"))  # outside the 300 s window
    windows.add(Record("cvr", "OK", 1.0, NOW - 5, "1"))
    view = windows.view(300, "ctr", now=NOW)
    assert (view.requests, view.errors, view.slow) == (100, 10, 10)  # 91..100 ms are slow
    assert view.error_rate == pytest.approx(0.1) and view.availability == pytest.approx(0.9)
    assert view.p50_ms == pytest.approx(50, rel=0.02) and view.p99_ms == pytest.approx(99, rel=0.02)
    assert view.requests_per_second == pytest.approx(100 / 300)
    assert windows.view(300, now=NOW).requests == 101
    assert windows.view(300, "ctr", "1", now=NOW).requests == 0 and windows.view(300, "", "1", now=NOW).requests == 1
    assert windows.view(600, "ctr", now=NOW).requests == 101
    assert windows.total == 102


def test_empty_window():
    view = TelemetryWindows(clock=Clock(0.0)).view(60, now=0.0)
    assert (view.requests, view.availability, view.p99_ms) == (0, 1.0, 0.0)


def test_memory_follows_retention_not_traffic():
    clock = Clock(NOW)
    windows = TelemetryWindows(bucket_s=10, retention_s=100, clock=clock)
    for second in range(1000):
        clock.now = NOW + second
        for _ in range(5):
            windows.add(Record("m", "OK", 1.0, clock.now))
    (series,) = windows.buckets.values()
    assert len(series) <= 12 and windows.total == 5000
    assert windows.view(50, now=clock.now).requests == 6 * 10 * 5  # the six whole buckets that overlap it


def test_late_records_land_in_their_bucket():
    windows = TelemetryWindows(bucket_s=10, clock=Clock(NOW))
    windows.add(Record("m", "OK", 1.0, NOW - 5))
    windows.add(Record("m", "INTERNAL", 1.0, NOW - 25))
    (series,) = windows.buckets.values()
    assert [b.start for b in series] == sorted(b.start for b in series)
    assert windows.view(30, now=NOW).errors == 1 and windows.view(10, now=NOW).errors == 0


def test_a_callers_mistake_does_not_spend_the_error_budget():
    windows = TelemetryWindows(bucket_s=10, clock=Clock(NOW))
    for status in ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED", "CANCELLED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"):
        windows.add(Record("m", status, 1.0, NOW - 1))
    view = windows.view(60, now=NOW)
    assert (view.requests, view.errors) == (8, 3)


def test_views_by_route_and_split_arm_as_well_as_model_and_version():
    windows = TelemetryWindows(bucket_s=10, clock=lambda: 1000.0)
    for route, arm, version, latency, count in (("search", "stable", "1", 10.0, 30), ("search", "canary", "2", 50.0, 10),
                                                ("display", "main", "1", 20.0, 5)):
        for i in range(count):
            windows.add(Record("ctr", "UNAVAILABLE" if arm == "canary" and i < 2 else "OK", latency, 995.0, version,
                               route=route, split_arm=arm))
    canary = windows.view(60, route="search", split_arm="canary", now=1000.0)
    assert (canary.requests, canary.errors, canary.p50_ms) == (10, 2, pytest.approx(50.0, rel=0.01))
    assert windows.view(60, route="search", now=1000.0).requests == 40
    assert windows.view(60, "ctr", "1", now=1000.0).requests == 35  # version 1 over both routes
    assert windows.view(60, now=1000.0).requests == 45
