import pytest

from services.monitoring.store import Record, TelemetryStore


def test_slo_view_over_a_window():
    store = TelemetryStore(capacity=1000)
    now = 1_000_000.0
    for i in range(100):
        store.add(Record("ctr", "OK" if i % 10 else "UNAVAILABLE", float(i + 1), now - 10))
    store.add(Record("ctr", "OK", 5000.0, now - 400))  # outside the 300 s window
    store.add(Record("cvr", "OK", 1.0, now - 5))
    view = store.slo(300, "ctr", now=now)
    assert view.requests == 100
    assert view.error_rate == pytest.approx(0.1) and view.availability == pytest.approx(0.9)
    assert view.p50_ms == pytest.approx(50.5) and view.p99_ms == pytest.approx(99.01)
    assert view.requests_per_second == pytest.approx(100 / 300)
    assert store.slo(300, now=now).requests == 101
    assert store.total == 102


def test_empty_window():
    view = TelemetryStore().slo(60, now=0.0)
    assert (view.requests, view.availability, view.p99_ms) == (0, 1.0, 0.0)


def test_capacity_bounds_memory():
    store = TelemetryStore(capacity=3)
    for i in range(5):
        store.add(Record("m", "OK", 1.0, 0.0))
    assert len(store.records) == 3 and store.total == 5
