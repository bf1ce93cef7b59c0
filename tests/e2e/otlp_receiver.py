"""An OTLP/gRPC trace receiver on loopback (the opentelemetry-proto collector service)."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: "OtlpReceiver") -> None:
        self.sink = sink

    def Export(self, request, context):
        with self.sink.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.sink.spans.append((service, span))
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "OtlpReceiver":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(0)

    def trace(self, trace_id_hex: str, want_services: set[str], timeout: float = 15.0) -> list[tuple[str, object]]:
        """The spans of one trace, once spans from every wanted service have arrived."""
        trace_id = bytes.fromhex(trace_id_hex)
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [(s, span) for s, span in self.spans if span.trace_id == trace_id]
            if want_services <= {s for s, _ in found} or time.monotonic() > deadline:
                return found
            time.sleep(0.2)
