"""scoremesh.v1 Monitoring messages <-> the telemetry store's types. Pure functions."""

from __future__ import annotations

import math

from domain.errors import InvalidArgument, quote
from scoremesh.v1 import monitoring_pb2
from services.monitoring.slo import ObjectiveStatus
from services.monitoring.windows import Record, WindowView

DEFAULT_WINDOW_S = 300.0
MAX_NAME_LENGTH = 128
# "OK" or a gRPC status name: statuses become metric labels, so only these are accepted.
STATUSES = frozenset((
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
))


def records_from_proto(batch: monitoring_pb2.ReportRequest) -> list[Record]:
    """The records of one Report batch; a record with a latency or time that is not a finite
    number is refused whole (naming it), never stored."""
    records = []
    for i, r in enumerate(batch.records):
        for name in ("latency_ms", "timestamp"):
            value = getattr(r, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidArgument(f"records[{i}].{name}: must be a finite number >= 0 (got {value})")
        status = r.status or "OK"
        if status not in STATUSES:
            raise InvalidArgument(f"records[{i}].status: must be OK or a gRPC status name (got {quote(status)})")
        if len(r.model_name) > MAX_NAME_LENGTH:
            raise InvalidArgument(f"records[{i}].model_name: at most {MAX_NAME_LENGTH} characters (got {quote(r.model_name)})")
        if len(r.model_version) > MAX_NAME_LENGTH:
            raise InvalidArgument(f"records[{i}].model_version: at most {MAX_NAME_LENGTH} characters (got {quote(r.model_version)})")
        records.append(Record(r.model_name, status, r.latency_ms, r.timestamp, r.model_version))
    return records


def slo_request_from_proto(request: monitoring_pb2.GetSLORequest) -> tuple[float, str, str]:
    """(window in seconds, model name or "" for every model, version or "" for every one)."""
    window = request.window_seconds
    if not math.isfinite(window) or window < 0:
        raise InvalidArgument(f"window_seconds: must be a finite number >= 0 (got {window})")
    return window or DEFAULT_WINDOW_S, request.model_name, request.model_version


def objective_to_proto(status: ObjectiveStatus) -> monitoring_pb2.ObjectiveStatus:
    o = status.objective
    return monitoring_pb2.ObjectiveStatus(
        name=o.name, kind=o.kind, target=o.target, threshold_ms=o.threshold_ms, budget_remaining=status.budget_remaining,
        windows=[monitoring_pb2.BurnWindow(factor=w.factor, long_seconds=w.long_s, short_seconds=w.short_s, long_burn_rate=w.long_burn,
                                           short_burn_rate=w.short_burn, firing=w.firing) for w in status.windows],
        firing=bool(status.firing),
    )


def slo_to_proto(view: WindowView, total_records: int, objectives: list[ObjectiveStatus] = ()) -> monitoring_pb2.GetSLOResponse:
    return monitoring_pb2.GetSLOResponse(
        requests=view.requests,
        availability=view.availability,
        error_rate=view.error_rate,
        p50_ms=view.p50_ms,
        p95_ms=view.p95_ms,
        p99_ms=view.p99_ms,
        requests_per_second=view.requests_per_second,
        total_records=total_records,
        objectives=[objective_to_proto(s) for s in objectives],
    )
