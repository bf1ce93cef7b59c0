"""OpenTelemetry set-up: one tracer provider per process, W3C trace context over gRPC metadata.

Spans are always created (so every response can carry a trace id); they are exported over OTLP
only when an endpoint is configured. Health checks and reflection stay out of traces.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import (
    GrpcAioInstrumentorClient,
    GrpcAioInstrumentorServer,
    filters,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_NOT_TRACED = filters.negate(
    filters.any_of(
        filters.health_check(),
        filters.service_prefix("grpc.reflection"),
    )
)


def setup_tracing(service: str, instance_id: str, otlp_endpoint: str | None) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "service.instance.id": instance_id}
        )
    )
    if otlp_endpoint:
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True))
        )
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer(filter_=_NOT_TRACED).instrument(tracer_provider=provider)
    GrpcAioInstrumentorClient(filter_=_NOT_TRACED).instrument(tracer_provider=provider)
    return provider


def current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
