"""Report batches -> the telemetry store's records."""

from __future__ import annotations

import pytest

from domain.errors import InvalidArgument
from scoremesh.v1 import monitoring_pb2
from services.monitoring.converters import records_from_proto


def batch(**fields) -> monitoring_pb2.ReportRequest:
    record = dict(model_name="ctr", model_version="1", latency_ms=12.0, timestamp=1000.0, inference_ms=5.0)
    return monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord(**(record | fields))])


def test_a_router_record_is_keyed_by_the_replica_that_answered_an_inference_record_by_its_reporter():
    [scored] = records_from_proto(batch(inference_instance_id="inference-2", inference_attempt_ms=4.0, instance_id="router-1"))
    assert (scored.service, scored.instance_id, scored.replica_ms, scored.inference_ms) == ("router", "inference-2", 4.0, 5.0)
    [own] = records_from_proto(batch(service="inference", instance_id="inference-1", inference_instance_id="x", inference_attempt_ms=9.0))
    assert (own.service, own.instance_id, own.replica_ms) == ("inference", "inference-1", 0.0)


@pytest.mark.parametrize("name", ["latency_ms", "timestamp", "inference_ms", "inference_attempt_ms"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_time_that_is_not_a_finite_non_negative_number_is_refused_naming_it(name, value):
    with pytest.raises(InvalidArgument, match=rf"records\[0\]\.{name}: must be a finite number"):
        records_from_proto(batch(**{name: value}))
