"""Report batches -> the telemetry store's records."""

from __future__ import annotations

import numpy as np
import pytest

from domain.errors import InvalidArgument
from scoremesh.v1 import monitoring_pb2
from services.monitoring.converters import live_samples_from_proto, records_from_proto


def batch(**fields) -> monitoring_pb2.ReportRequest:
    record = dict(model_name="ctr", model_version="1", latency_ms=12.0, timestamp=1000.0, inference_ms=5.0)
    return monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord(**(record | fields))])


def test_a_router_record_is_keyed_by_the_replica_that_answered_an_inference_record_by_its_reporter():
    [scored] = records_from_proto(batch(inference_instance_id="inference-2", inference_attempt_ms=4.0, instance_id="router-1"))
    assert (scored.service, scored.instance_id, scored.replica_ms, scored.inference_ms) == ("router", "inference-2", 4.0, 5.0)
    [own] = records_from_proto(batch(service="inference", instance_id="inference-1", inference_instance_id="x", inference_attempt_ms=9.0))
    assert (own.service, own.instance_id, own.replica_ms) == ("inference", "inference-1", 0.0)


def test_a_routers_stall_event_names_the_replica_and_is_no_score():
    event = monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord(
        service="router", inference_instance_id="inference-2", inference_stalled=True, timestamp=1000.0)])
    [record] = records_from_proto(event)
    assert (record.stalled, record.instance_id, record.timestamp, record.model_name) == (True, "inference-2", 1000.0, "")
    assert live_samples_from_proto(event) == []  # nothing for drift
    for fields in ({"service": "inference", "instance_id": "inference-2"}, {"inference_instance_id": ""}):
        with pytest.raises(InvalidArgument, match=r"records\[0\]\.inference_stalled: a router's event naming the replica"):
            records_from_proto(batch(**{"inference_stalled": True, "inference_instance_id": "inference-2", **fields}))


@pytest.mark.parametrize("name", ["latency_ms", "timestamp", "inference_ms", "inference_attempt_ms"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_time_that_is_not_a_finite_non_negative_number_is_refused_naming_it(name, value):
    with pytest.raises(InvalidArgument, match=rf"records\[0\]\.{name}: must be a finite number"):
        records_from_proto(batch(**{name: value}))


def _record(**fields) -> monitoring_pb2.ReportRequest:
    return monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord(model_name="m", model_version="1", timestamp=5.0, **fields)])


def test_a_row_sent_as_float32_bytes_is_read_as_the_same_row_as_floats():
    row = np.array([0.5, -1.25, 3.0], dtype="<f4")
    (raw,) = live_samples_from_proto(_record(features_raw=row.tobytes(), scores=[0.25]))
    (floats,) = live_samples_from_proto(_record(features=row.tolist(), scores=[0.25]))
    assert raw[:3] == floats[:3] == ("m", "1", 5.0)
    assert raw[3].tolist() == floats[3].tolist() == [0.5, -1.25, 3.0]
    assert raw[4].tolist() == floats[4].tolist() == [0.25]
    (empty,) = live_samples_from_proto(_record(scores=[0.25]))
    assert empty[3] is None  # no row: nothing for drift to judge


@pytest.mark.parametrize("fields,message", [
    ({"features_raw": b"\x00" * 7}, "records[0].features_raw: float32 values, 4 bytes each (got 7 bytes)"),
    ({"features_raw": np.array([1.0, float("nan")], "<f4").tobytes()}, "records[0].features_raw: every value must be a finite number"),
    ({"features": [float("inf")]}, "records[0].features: every value must be a finite number"),
    ({"scores": [float("nan")]}, "records[0].scores: every value must be a finite number"),
])
def test_bad_rows_and_scores_are_refused_naming_the_field(fields, message):
    with pytest.raises(InvalidArgument) as caught:
        live_samples_from_proto(_record(**fields))
    assert str(caught.value) == message
