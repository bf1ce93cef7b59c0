"""The per-model signals the alert rules read."""

import numpy as np
import pytest

from services.monitoring.signals import LatencyAnomalies, instance_signals, model_signals, version_signals
from services.monitoring.live import LiveSamples
from services.monitoring.slo import Objective
from services.monitoring.windows import Record, TelemetryWindows

NOW = 1_000_000.0


def test_signals_per_model_with_a_latency_anomaly_after_ten_rounds():
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    objectives = [Objective("availability", "availability", 0.99)]
    anomalies = LatencyAnomalies()
    scores = []
    for round_index in range(12):
        now = NOW + round_index * 10
        latency = 10.0 + (round_index % 2) if round_index < 11 else 40.0  # the 12th round: p99 jumps
        for i in range(20):
            windows.add(Record("ctr", "UNAVAILABLE" if i == 0 else "OK", latency, now - 1))
        signals = model_signals(windows, objectives, 1 / 720, 5.0, now=now, anomalies=anomalies)
        scores.append(signals["ctr"]["p99_anomaly_score"])
    ctr = signals["ctr"]
    assert ctr["error_rate"] == pytest.approx(0.05) and ctr["availability"] == pytest.approx(0.95)
    assert ctr["requests_per_second"] == pytest.approx(20 / 5)
    assert ctr["slo_burn_fast_availability"] == pytest.approx(5.0)  # 5% bad / 1% budget
    assert scores[:11] == [0.0] * 11 and scores[11] == 1.0  # ~59 sigma above 10.5 +- 0.5 ms
    assert "drifted_features" not in ctr  # no baselines given


def test_drift_signals_are_recomputed_at_most_every_interval():
    from services.monitoring.signals import DriftCache

    cache = DriftCache(60.0)
    assert cache.get("ctr", 0.0) is None
    cache.put("ctr", 0.0, {"drifted_features": 2.0})
    assert cache.get("ctr", 59.0) == {"drifted_features": 2.0} and cache.get("ctr", 60.0) is None


def test_each_version_is_compared_with_the_busiest_older_version_of_its_model():
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    for i in range(100):  # production: 10 ms, 1 error in 100
        windows.add(Record("ctr", "INTERNAL" if i == 0 else "OK", 10.0, NOW - 2, model_version="1"))
    for i in range(30):  # the new version: 10x slower, 3 errors in 30
        windows.add(Record("ctr", "INTERNAL" if i < 3 else "OK", 100.0, NOW - 1, model_version="2"))
    for i in range(19):  # too little traffic to judge
        windows.add(Record("ctr", "INTERNAL", 500.0, NOW - 1, model_version="3"))
    for i in range(50):  # a model with one version: nothing to compare with
        windows.add(Record("cvr", "OK", 10.0, NOW - 1, model_version="1"))
    signals = version_signals(windows, 10.0, now=NOW)
    assert set(signals) == {"ctr:2"}  # production has no older version; v3 too little traffic; cvr one version
    new = signals["ctr:2"]
    assert new["version_error_rate"] == pytest.approx(0.1) and new["version_error_excess"] == pytest.approx(0.09)
    assert new["version_latency_ratio"] == pytest.approx(10.0, rel=0.03)  # DDSketch: 1% relative accuracy each

    # With the inference hop known, the ratio is the hop's: the version changes that, not features.
    hop = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    for version, inference_ms in (("1", 1.0), ("2", 8.0)):
        for _ in range(40):
            hop.add(Record("ctr", "OK", 10.0 + inference_ms, NOW - 1, model_version=version, inference_ms=inference_ms))
    assert version_signals(hop, 10.0, now=NOW)["ctr:2"]["version_latency_ratio"] == pytest.approx(8.0, rel=0.03)
    # A uniformly slower version under load: the median rose tenfold, both p99s are queueing.
    median = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    for version, typical in (("1", 1.0), ("2", 10.0)):
        for i in range(100):
            hop_ms = 40.0 if i >= 90 else typical  # the slowest tenth waited in the queue, in both
            median.add(Record("ctr", "OK", 10.0 + hop_ms, NOW - 1, model_version=version, inference_ms=hop_ms))
    assert version_signals(median, 10.0, now=NOW)["ctr:2"]["version_latency_ratio"] == pytest.approx(10.0, rel=0.03)



def test_an_older_version_is_never_judged_by_a_newer_one():
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    for i in range(100):  # v1 under a load spike, then v2 promoted, then v1 production again (v2 rolled back)
        windows.add(Record("ctr", "OK", 200.0, NOW - 8, model_version="1", inference_ms=190.0))
        windows.add(Record("ctr", "OK", 10.0, NOW - 5, model_version="2", inference_ms=2.0))
    for i in range(30):
        windows.add(Record("ctr", "OK", 10.0, NOW - 1, model_version="1", inference_ms=2.0))
    signals = version_signals(windows, 10.0, now=NOW)
    # Judged the other way, v1 would read 95x slower than v2 and be rolled back: the version serving.
    assert set(signals) == {"ctr:2"} and signals["ctr:2"]["version_latency_ratio"] < 1.0


def test_a_version_that_scores_traffic_differently_from_production_is_flagged_and_a_copy_is_not():
    rng = np.random.default_rng(7)
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    live = LiveSamples()
    for version, shift in (("1", 0.0), ("2", 0.0), ("3", 0.25)):
        for score in np.clip(rng.normal(0.3 + shift, 0.1, 400), 0, 1):
            windows.add(Record("ctr", "OK", 10.0, NOW - 1, model_version=version))
            live.add("ctr", version, NOW - 1, [], [float(score)])
    signals = version_signals(windows, 10.0, now=NOW, live=live)
    assert signals["ctr:3"]["version_score_shift"] > 1.0  # its scores moved by 2.5 standard deviations
    assert signals["ctr:2"]["version_score_shift"] < 1.0  # the same distribution as production (v1)


def test_each_inference_replica_is_compared_with_its_peers():
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    for instance, latency, errors in (("inference-1", 2.0, 0), ("inference-2", 2.2, 1), ("inference-3", 9.0, 6)):
        for i in range(30):
            windows.add(Record("ctr", "INTERNAL" if i < errors else "OK", latency, NOW - 1, "1", service="inference",
                               instance_id=instance))
    for i in range(10):  # a replica with too little traffic to judge
        windows.add(Record("ctr", "OK", 50.0, NOW - 1, "1", service="inference", instance_id="inference-4"))
    windows.add(Record("ctr", "OK", 12.0, NOW - 1, "1"))  # the router's Scores are not replicas
    for i in range(30):  # a replica already on a new, slower version has no peers on it: not judged
        windows.add(Record("ctr", "OK", 30.0, NOW - 1, "2", service="inference", instance_id="inference-1"))
    for instance, latency in (("inference-1", 2.0), ("inference-2", 2.0), ("inference-3", 900.0)):  # nor on a regressed one
        for i in range(30):
            windows.add(Record("ctr", "OK", latency, NOW - 1, "3", service="inference", instance_id=instance))
    signals = instance_signals(windows, 10.0, now=NOW, regressions=[("ctr:3", NOW - 2, float("inf"))])
    assert set(signals) == {"instance:inference-1", "instance:inference-2", "instance:inference-3"}
    slow = signals["instance:inference-3"]
    assert slow["instance_latency_ratio"] == pytest.approx(9.0 / 2.1, rel=0.03)  # against the median of its peers
    assert slow["instance_error_excess"] == pytest.approx(0.2 - (0 + 1 / 30) / 2, abs=1e-9)
    assert signals["instance:inference-1"]["instance_latency_ratio"] < 1.0


def test_a_replica_stalled_before_it_can_time_its_calls_is_found_by_what_the_router_saw():
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    for instance in ("inference-1", "inference-2"):  # in their own records both are equally quick
        for _ in range(30):
            windows.add(Record("ctr", "OK", 1.0, NOW - 1, "1", service="inference", instance_id=instance))
    for instance, hop_ms, outrun in (("inference-1", 1.5, 1), ("inference-2", 45.0, 20)):  # the router waited on inference-2
        for i in range(25):  # and hedged around it: outrun on 20 of 25 calls, inference-1 on 1
            windows.add(Record("ctr", "OK", 10.0 + hop_ms, NOW - 1, "1", inference_ms=hop_ms + 3.0, instance_id=instance,
                               replica_ms=hop_ms, outrun=i < outrun))
    windows.add(Record("ctr", "UNAVAILABLE", 3.0, NOW - 1, "1"))  # a failed Score names no replica
    signals = instance_signals(windows, 10.0, now=NOW)
    assert signals["instance:inference-2"]["instance_latency_ratio"] == pytest.approx(45.0 / 1.5, rel=0.03)
    assert signals["instance:inference-2"]["instance_outrun_excess"] == pytest.approx(20 / 25 - 1 / 25)
    assert signals["instance:inference-1"]["instance_outrun_excess"] == pytest.approx(1 / 25 - 20 / 25)
    assert signals["instance:inference-2"]["instance_error_excess"] == 0.0  # errors come from the replicas' own records
    assert signals["instance:inference-1"]["instance_latency_ratio"] == pytest.approx(1.0, rel=0.03)
    # The router's records still count once per Score in the model's views, whichever replica answered.
    assert windows.view(10.0, "ctr", now=NOW).requests == 51
    assert windows.view(10.0, "ctr", now=NOW).inference_p50_ms == pytest.approx(1.5, rel=0.03)


def test_a_replica_routers_ejected_as_stalled_is_flagged_however_few_calls_it_got():
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    for instance in ("inference-1", "inference-2"):  # 3 calls to inference-2 before its router steered around it
        for _ in range(30 if instance == "inference-1" else 3):
            windows.add(Record("ctr", "OK", 3.0, NOW - 5, "1", inference_ms=1.0, instance_id=instance, replica_ms=1.0))
    for router_time in (NOW - 4, NOW - 2):  # two routers' verdicts; one older than the window
        windows.add(Record("", "OK", 0.0, router_time, instance_id="inference-2", stalled=True))
    windows.add(Record("", "OK", 0.0, NOW - 30, instance_id="inference-1", stalled=True))
    signals = instance_signals(windows, 10.0, now=NOW)
    assert signals == {"instance:inference-2": {"instance_stall_ejections": 2.0}}
    assert windows.view(10.0, now=NOW).requests == 33  # events are not requests


def test_a_stall_verdict_on_a_replica_serving_a_regressed_version_is_the_versions():
    """A new version slow enough to be rolled back stops the replicas that serve it: the routers'
    verdicts from VERSION_EXCUSE_LEAD_S before the version's alert until it resolved are not the
    replica's; verdicts outside that span, or on a replica that never served the version, are."""
    windows = TelemetryWindows(bucket_s=1, slow_threshold_ms=100, clock=lambda: NOW)
    for instance in ("inference-1", "inference-2"):
        windows.add(Record("ctr", "OK", 20.0, NOW - 12, "2", service="inference", instance_id=instance))
    windows.add(Record("other", "OK", 1.0, NOW - 12, "1", service="inference", instance_id="inference-3"))
    for instance, at in (("inference-1", NOW - 15), ("inference-2", NOW - 3), ("inference-3", NOW - 15)):
        windows.add(Record("", "OK", 0.0, at, instance_id=instance, stalled=True))
    # ctr v2's alert opened at NOW - 8 and resolved at NOW - 4: inference-1's verdict 7 s before it
    # is excused, inference-2's a second after it resolved is not, inference-3 never served ctr v2.
    signals = instance_signals(windows, 20.0, now=NOW, regressions=[("ctr:2", NOW - 8, NOW - 4)])
    assert signals == {"instance:inference-2": {"instance_stall_ejections": 1.0},
                       "instance:inference-3": {"instance_stall_ejections": 1.0}}
    open_alert = instance_signals(windows, 20.0, now=NOW, regressions=[("ctr:2", NOW - 8, float("inf"))])
    assert open_alert == {"instance:inference-3": {"instance_stall_ejections": 1.0}}
    assert instance_signals(windows, 20.0, now=NOW)["instance:inference-1"] == {"instance_stall_ejections": 1.0}
