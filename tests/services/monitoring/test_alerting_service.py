"""The monitoring process evaluates its alert rules on what routers report: a model failing half
its Scores opens a deduplicated incident that WatchAlerts streams, Prometheus sees, and a restart
of the process does not lose."""

from __future__ import annotations

import time
import urllib.request

import grpc
import pytest

from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc
from tests.e2e.mesh_process import ServiceProcess

pytestmark = pytest.mark.mesh
ENV = {"SCOREMESH_ALERT_INTERVAL_S": "0.2", "SCOREMESH_ALERT_WINDOW_S": "30"}


def _report(stub, errors: bool) -> None:
    now = time.time()
    records = [monitoring_pb2.TelemetryRecord(model_name="ctr_ensemble", model_version="1", latency_ms=5.0, timestamp=now,
                                              status="UNAVAILABLE" if errors and i % 2 else "OK") for i in range(40)]
    assert stub.Report(iter([monitoring_pb2.ReportRequest(records=records)]), timeout=10).accepted == 40


def test_an_incident_is_streamed_counted_exported_and_kept_across_a_restart(tmp_path):
    monitoring = ServiceProcess("monitoring", tmp_path, ENV)
    try:
        monitoring.start()
        with grpc.insecure_channel(monitoring.address) as channel:
            stub = monitoring_pb2_grpc.MonitoringStub(channel)
            _report(stub, errors=False)
            watch = stub.WatchAlerts(monitoring_pb2.WatchAlertsRequest(), timeout=20)
            _report(stub, errors=True)  # 50% of Scores fail: error rate 0.5 > 0.1
            opened = {}
            while len(opened) < 2:  # the error-rate rule and the availability SLO's fast burn
                incident = next(watch).incident
                opened.setdefault(incident.rule, incident)
            first = opened["high_error_rate"]
            assert (first.target, first.status, first.severity) == ("ctr_ensemble", "open", "critical")
            assert first.message == "high_error_rate: error_rate of ctr_ensemble is 0.25 (gt 0.1)"  # 20 of 80 in the window
            assert opened["slo_fast_burn"].message.startswith("slo_fast_burn: slo_burn_fast_availability of ctr_ensemble is 250")
            time.sleep(1.0)
            watch.cancel()
            (listed,) = [i for i in stub.ListIncidents(monitoring_pb2.ListIncidentsRequest(), timeout=5).incidents if i.rule == "high_error_rate"]
            assert listed.status == "open" and listed.count >= 3  # evaluated every 0.2 s: one incident, counted
        metrics = urllib.request.urlopen(monitoring.metrics_url, timeout=5).read().decode()
        assert 'scoremesh_monitoring_open_incidents{severity="critical"}' in metrics
        monitoring.stop()
        monitoring.start()  # the incident is in SQLite, not in the process
        with grpc.insecure_channel(monitoring.address) as channel:
            stub = monitoring_pb2_grpc.MonitoringStub(channel)
            incidents = stub.ListIncidents(monitoring_pb2.ListIncidentsRequest(), timeout=5).incidents
            assert [(i.rule, i.first_seen) for i in incidents if i.rule == "high_error_rate"] == [("high_error_rate", listed.first_seen)]
            with pytest.raises(grpc.RpcError) as bad:
                stub.ListIncidents(monitoring_pb2.ListIncidentsRequest(limit=5000), timeout=5)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in bad.value.details()
    finally:
        monitoring.stop()
