"""Alert rules and incidents: every operator, deduplication, resolution, and persistence across a
restart (a new store on the same SQLite file)."""

import sqlite3

import pytest

from services.monitoring.alerts import Alerting, AlertRule, IncidentStore, RuleEvaluator

ERRORS = AlertRule("errors", "error_rate", "gt", 0.1, severity="critical")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("op", "threshold", "value", "fires"), [
    ("gt", 0.1, 0.2, True), ("gt", 0.1, 0.1, False), ("lt", 0.99, 0.98, True), ("lt", 0.99, 0.995, False),
    ("eq", 1.0, 1.0005, True), ("eq", 1.0, 1.002, False), ("ne", 1.0, 1.002, True), ("ne", 1.0, 1.0005, False),
])
def test_comparisons(op, threshold, value, fires):
    rule = AlertRule("r", "availability", op, threshold)
    assert bool(RuleEvaluator([rule]).firing({"ctr": {"availability": value}}, 0.0)) is fires


def test_pct_increase_against_the_value_a_window_ago():
    rule = AlertRule("latency doubled", "p99_ms", "pct_increase", 100.0, window_s=300)
    evaluator = RuleEvaluator([rule])
    assert evaluator.firing({"ctr": {"p99_ms": 10.0}}, 0.0) == []
    assert evaluator.firing({"ctr": {"p99_ms": 30.0}}, 100.0) == []  # no value 300 s old yet
    assert evaluator.firing({"ctr": {"p99_ms": 20.0}}, 300.0) == []  # +100% exactly: not above
    assert evaluator.firing({"ctr": {"p99_ms": 20.5}}, 301.0) == [(rule, "ctr", 20.5)]  # vs 10.0 at t=0
    assert evaluator.firing({"ctr": {"p99_ms": 21.0}}, 700.0) == []  # vs 20.5 at 301, the newest at least 300 s old


def test_incidents_are_deduplicated_resolved_and_survive_a_restart(tmp_path):
    clock = Clock()
    alerting = Alerting(RuleEvaluator([ERRORS]), IncidentStore(tmp_path / "monitoring.sqlite"), clock)
    (opened,) = alerting.evaluate({"ctr": {"error_rate": 0.3}, "cvr": {"error_rate": 0.0}})
    assert (opened.rule, opened.target, opened.count, opened.status, opened.severity) == ("errors", "ctr", 1, "open", "critical")
    assert opened.message == "errors: error_rate of ctr is 0.3 (gt 0.1)"
    clock.now += 10
    (again,) = alerting.evaluate({"ctr": {"error_rate": 0.25}})
    assert (again.count, again.first_seen, again.last_seen) == (2, 1000.0, 1010.0) and again.active(clock.now)
    assert (again.signal, again.value) == ("error_rate", 0.25)  # what recovery classifies
    alerting.store.close()

    clock.now += 10
    restarted = Alerting(RuleEvaluator([ERRORS]), IncidentStore(tmp_path / "monitoring.sqlite"), clock)
    assert [(i.rule, i.target, i.count, i.status) for i in restarted.store.list()] == [("errors", "ctr", 2, "open")]
    (resolved,) = restarted.evaluate({"ctr": {"error_rate": 0.01}})
    assert (resolved.status, resolved.resolved_at, resolved.count) == ("resolved", 1020.0, 2)
    clock.now += 10
    (reopened,) = restarted.evaluate({"ctr": {"error_rate": 0.5}})
    assert reopened.count == 1 and reopened.status == "open"  # a new incident, the old one stays resolved
    assert [i.status for i in restarted.store.list()] == ["open", "resolved"]
    assert not reopened.active(clock.now + 3601)


def test_the_spans_of_the_incidents_on_a_kind_of_signal_open_since_a_time(tmp_path):
    clock = Clock()
    slow = AlertRule("version_slow", "version_latency_ratio", "gt", 3.0)
    alerting = Alerting(RuleEvaluator([slow, ERRORS]), IncidentStore(tmp_path / "monitoring.sqlite"), clock)
    alerting.evaluate({"ctr:2": {"version_latency_ratio": 9.0}, "ctr": {"error_rate": 0.5}})
    clock.now += 10
    alerting.evaluate({"ctr:3": {"version_latency_ratio": 9.0}, "ctr": {"error_rate": 0.5}})  # ctr:2 resolved at 1010
    assert sorted(alerting.store.spans("version_", since=1005.0)) == [("ctr:2", 1000.0, 1010.0), ("ctr:3", 1010.0, float("inf"))]
    assert alerting.store.spans("version_", since=1010.5) == [("ctr:3", 1010.0, float("inf"))]  # resolved before `since`


def test_a_store_written_before_signal_and_value_existed_is_migrated_in_place(tmp_path):
    path = tmp_path / "monitoring.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE incidents (id INTEGER PRIMARY KEY, rule TEXT, target TEXT, severity TEXT, message TEXT,"
                " count INTEGER, first_seen REAL, last_seen REAL, status TEXT, resolved_at REAL)")
    old.execute("INSERT INTO incidents VALUES (1, 'errors', 'ctr', 'critical', 'm', 3, 1.0, 2.0, 'open', 0)")
    old.commit()
    old.close()
    store = IncidentStore(path)
    assert [(i.rule, i.count, i.signal, i.value) for i in store.list()] == [("errors", 3, "", 0.0)]
    incident, opened = store.record(ERRORS, "ctr", 0.4, 5.0)
    assert (opened, incident.count, incident.signal, incident.value) == (False, 4, "", 0.4)
    store.close()


def test_an_incident_message_names_what_the_value_stands_for(tmp_path):
    drift = AlertRule("feature_drift", "drifted_features", "gt", 0.0, severity="medium")
    alerting = Alerting(RuleEvaluator([drift]), IncidentStore(tmp_path / "monitoring.sqlite"), Clock())
    (incident,) = alerting.evaluate({"ctr": {"drifted_features": 1.0}}, {"ctr": {"drifted_features": "age (PSI 1.20, KS p 1e-30)"}})
    assert incident.message == "feature_drift: drifted_features of ctr is 1 (gt 0): age (PSI 1.20, KS p 1e-30)"


def test_an_incident_stays_open_for_keep_firing_s_after_its_rule_last_fired(tmp_path):
    clock = Clock()
    slow = AlertRule("slow", "instance_latency_ratio", "gt", 3.0, keep_firing_s=30.0)
    alerting = Alerting(RuleEvaluator([slow]), IncidentStore(tmp_path / "monitoring.sqlite"), clock)
    (opened,) = alerting.evaluate({"instance:i-2": {"instance_latency_ratio": 3.4}})
    clock.now += 10
    assert alerting.evaluate({"instance:i-2": {"instance_latency_ratio": 2.9}}) == []  # hovering at the threshold
    clock.now += 10
    assert alerting.evaluate({}) == []  # its traffic stopped: no value at all
    clock.now += 9.5
    assert alerting.evaluate({}) == []  # 29.5 s since it last fired
    clock.now += 0.5
    (resolved,) = alerting.evaluate({})
    assert (resolved.status, resolved.resolved_at, resolved.last_seen, resolved.count) == ("resolved", 1030.0, 1000.0, 1)


def test_a_rule_with_for_s_fires_only_once_its_condition_held_that_long():
    slow = AlertRule("slow", "instance_latency_ratio", "gt", 3.0, for_s=10.0)
    evaluator = RuleEvaluator([slow])
    high = {"instance:i-2": {"instance_latency_ratio": 3.5}}
    assert evaluator.firing(high, 100.0) == []  # pending
    assert evaluator.firing(high, 109.9) == []
    assert evaluator.firing({"instance:i-2": {"instance_latency_ratio": 2.0}}, 110.0) == []  # a dip starts it over
    assert evaluator.firing(high, 111.0) == [] and evaluator.firing(high, 120.5) == []
    assert evaluator.firing(high, 121.0) == [(slow, "instance:i-2", 3.5)]
    assert evaluator.firing({}, 122.0) == [] and evaluator.firing(high, 123.0) == []  # gone quiet: pending again from scratch
