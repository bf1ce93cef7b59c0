"""OpenTelemetry tracing with W3C trace context in gRPC metadata, at a cost of almost nothing when
no exporter is configured.

Every server call gets a span context (so responses and logs carry trace ids) and every outgoing
call carries `traceparent`. Without an exporter the spans are non-recording: two random ids and
a context switch, no SDK span objects. With an exporter (`otlp_endpoint`) they are real SDK spans
(server and client kinds, named by the full method), batched out over OTLP. Which methods are
traced is decided once per method when handlers are registered (health checks and reflection
are not), never per call.

This replaces opentelemetry-instrumentation-grpc, whose interceptors rewrap every call and run
its method filters (typing.Protocol isinstance checks) per call: ~20% of a service's CPU with no
exporter at all.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

TRACEPARENT = "traceparent"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_random = random.Random()  # ids need no cryptographic strength (the SDK's generator is the same)


def parse_traceparent(value: str) -> SpanContext | None:
    """The remote parent of a W3C `traceparent` (version 00), or None when malformed."""
    parts = value.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 0xFF))


def traceparent(span_context: SpanContext) -> str:
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


class Tracing:
    """One per process: the tracer provider (flushed on stop) and the per-call span helpers."""

    def __init__(self, service: str, instance_id: str, otlp_endpoint: str | None, sample_ratio: float = 1.0) -> None:
        self.recording = bool(otlp_endpoint)
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service, "service.instance.id": instance_id}),
            # A trace started here is recorded with this probability; one started upstream
            # follows the caller's decision (the sampled flag of its traceparent).
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        )
        if otlp_endpoint:
            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
        trace.set_tracer_provider(self.provider)
        self.tracer = self.provider.get_tracer("scoremesh")

    # ------------------------------------------------------------------ server side
    def start_server_span(self, method: str, metadata: Sequence[tuple[str, str]] | None):
        """Open the span of an incoming call (`method` is /package.Service/Method) and make it
        current; returns what `end` needs."""
        parent = None
        for key, value in metadata or ():
            if key == TRACEPARENT:
                parent = parse_traceparent(value)
                break
        if self.recording:
            parent_context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else otel_context.Context()
            span = self.tracer.start_span(method, context=parent_context, kind=SpanKind.SERVER, attributes={"rpc.system": "grpc"})
        else:
            trace_id = parent.trace_id if parent is not None else _random.getrandbits(128)
            flags = parent.trace_flags if parent is not None else _SAMPLED
            span = NonRecordingSpan(SpanContext(trace_id, _random.getrandbits(64), is_remote=False, trace_flags=flags))
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def end(started, code: str = "OK") -> None:
        span, token = started
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code)
            if code != "OK":
                span.set_status(Status(StatusCode.ERROR, code))
            span.end()
        otel_context.detach(token)

    # ------------------------------------------------------------------ client side
    def start_client_span(self, method: str):
        """A client span for an outgoing call when recording (else None), and the metadata that
        carries the trace downstream."""
        if self.recording:
            span = self.tracer.start_span(method, kind=SpanKind.CLIENT, attributes={"rpc.system": "grpc"})
            return span, ((TRACEPARENT, traceparent(span.get_span_context())),)
        current = trace.get_current_span().get_span_context()
        if not current.is_valid:
            return None, ()
        return None, ((TRACEPARENT, traceparent(current)),)

    @staticmethod
    def end_client_span(span, code: str = "OK") -> None:
        if span is not None:
            span.set_attribute("rpc.grpc.status_code", code)
            if code != "OK":
                span.set_status(Status(StatusCode.ERROR, code))
            span.end()

    def internal_span(self, name: str):
        """A span around a step inside a call (a pipeline stage), when recording."""
        if self.recording:
            return self.tracer.start_as_current_span(name)
        return contextlib.nullcontext()

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes pending spans


def current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
