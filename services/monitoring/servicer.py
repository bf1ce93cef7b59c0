"""`scoremesh.v1.Monitoring`: protobuf in, protobuf out; the work is in store.py."""

from __future__ import annotations

from prometheus_client import Counter

from mesh.errors import InvalidArgument
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc
from services.monitoring.store import Record, TelemetryStore

RECORDS = Counter("scoremesh_monitoring_records_total", "Telemetry records accepted.", ["model", "status"])


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServicer):
    def __init__(self, store: TelemetryStore) -> None:
        self.store = store

    async def Report(self, request_iterator, context):
        accepted = 0
        async for batch in request_iterator:
            for r in batch.records:
                self.store.add(Record(r.model_name, r.status or "OK", r.latency_ms, r.timestamp))
                RECORDS.labels(r.model_name, r.status or "OK").inc()
                accepted += 1
        return monitoring_pb2.ReportResponse(accepted=accepted)

    async def GetSLO(self, request, context):
        if request.window_seconds < 0:
            raise InvalidArgument("window_seconds: must be >= 0")
        view = self.store.slo(request.window_seconds or 300.0, request.model_name)
        return monitoring_pb2.GetSLOResponse(
            requests=view.requests,
            availability=view.availability,
            error_rate=view.error_rate,
            p50_ms=view.p50_ms,
            p95_ms=view.p95_ms,
            p99_ms=view.p99_ms,
            requests_per_second=view.requests_per_second,
            total_records=self.store.total,
        )
