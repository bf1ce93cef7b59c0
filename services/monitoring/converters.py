"""scoremesh.v1 Monitoring messages <-> the telemetry store's types. Pure functions."""

from __future__ import annotations

import math

from domain.errors import InvalidArgument, quote
from scoremesh.v1 import monitoring_pb2
from services.monitoring.store import Record, SloView

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
        records.append(Record(r.model_name, status, r.latency_ms, r.timestamp))
    return records


def slo_request_from_proto(request: monitoring_pb2.GetSLORequest) -> tuple[float, str]:
    """(window in seconds, model name or "" for every model)."""
    window = request.window_seconds
    if not math.isfinite(window) or window < 0:
        raise InvalidArgument(f"window_seconds: must be a finite number >= 0 (got {window})")
    return window or DEFAULT_WINDOW_S, request.model_name


def slo_to_proto(view: SloView, total_records: int) -> monitoring_pb2.GetSLOResponse:
    return monitoring_pb2.GetSLOResponse(
        requests=view.requests,
        availability=view.availability,
        error_rate=view.error_rate,
        p50_ms=view.p50_ms,
        p95_ms=view.p95_ms,
        p99_ms=view.p99_ms,
        requests_per_second=view.requests_per_second,
        total_records=total_records,
    )
