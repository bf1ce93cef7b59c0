"""`scoremesh.v1.Monitoring`: protobuf in, protobuf out; the work is in store.py."""

from __future__ import annotations

from prometheus_client import Counter

from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc
from services.monitoring import converters
from services.monitoring.store import TelemetryStore

RECORDS = Counter("scoremesh_monitoring_records_total", "Telemetry records accepted.", ["model", "status"])


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServicer):
    def __init__(self, store: TelemetryStore) -> None:
        self.store = store

    async def Report(self, request_iterator, context):
        accepted = 0
        async for batch in request_iterator:
            for record in converters.records_from_proto(batch):
                self.store.add(record)
                RECORDS.labels(record.model_name, record.status).inc()
                accepted += 1
        return monitoring_pb2.ReportResponse(accepted=accepted)

    async def GetSLO(self, request, context):
        window_s, model_name = converters.slo_request_from_proto(request)
        return converters.slo_to_proto(self.store.slo(window_s, model_name), self.store.total)
