"""Lean W3C tracing: traceparent parsing, and server/client spans with and without an exporter."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from mesh.telemetry import Tracing, current_trace_id, parse_traceparent, traceparent
from tests.e2e.otlp_receiver import OtlpReceiver

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_traceparent_round_trip_and_malformed_values():
    context = parse_traceparent(PARENT)
    assert (format(context.trace_id, "032x"), format(context.span_id, "016x"), int(context.trace_flags)) == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1)
    assert context.is_remote and traceparent(context) == PARENT
    for bad in ("", "00-abc", "00-" + "0" * 32 + "-b7ad6b7169203331-01", "00-zz" + "0" * 30 + "-b7ad6b7169203331-01", "x" * 10_000):
        assert parse_traceparent(bad) is None


@pytest.fixture(scope="module")
def receiver():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.mark.parametrize("recording", [False, True])
def test_a_server_span_continues_the_callers_trace_and_a_client_call_carries_it(recording, receiver):
    endpoint = receiver.endpoint if recording else None
    tracing = Tracing("svc", "svc-1", endpoint)
    started = tracing.start_server_span("/pkg.Service/Method", (("user-agent", "x"), ("traceparent", PARENT)))
    try:
        assert current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
        server_span = trace.get_current_span().get_span_context()
        assert server_span.span_id != int("b7ad6b7169203331", 16)  # a span of its own
        client, metadata = tracing.start_client_span("/pkg.Other/Call")
        (key, value), = metadata
        sent = parse_traceparent(value)
        assert key == "traceparent" and sent.trace_id == server_span.trace_id
        assert (client is not None) == bool(endpoint)  # a client span only when recording
        tracing.end_client_span(client)
    finally:
        tracing.end(started)
    assert current_trace_id() == ""
    fresh = tracing.start_server_span("/pkg.Service/Method", ())
    assert len(current_trace_id()) == 32 and current_trace_id() != "0af7651916cd43dd8448eb211c80319c"
    tracing.end(fresh)
    tracing.shutdown()  # flushes
    if recording:
        spans = {span.name: span for _, span in receiver.trace("0af7651916cd43dd8448eb211c80319c", {"svc"})}
        assert set(spans) == {"/pkg.Service/Method", "/pkg.Other/Call"}
        assert spans["/pkg.Service/Method"].parent_span_id == bytes.fromhex("b7ad6b7169203331")
        assert spans["/pkg.Other/Call"].parent_span_id == spans["/pkg.Service/Method"].span_id
