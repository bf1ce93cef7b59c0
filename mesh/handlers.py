"""Every method a service serves, wrapped once when it is registered: metrics, tracing, the
mapping of errors to statuses and the refusal of undecodable bytes. No server interceptor: what
an interceptor decides and rebuilds on every call is decided here once per method.

- Domain errors (`domain.errors`) become their gRPC status, with the ErrorInfo they carry; any
  other exception is logged in full once and answered INTERNAL with a generic message and the
  trace id. Status messages are capped, so no error outgrows what a client accepts in a trailer.
- Request bytes that do not parse as the method's message (truncated, invalid UTF-8 in a string
  field, ...) get INVALID_ARGUMENT naming the message type, counted, with no traceback in the
  log (grpc itself would log one and answer UNKNOWN).
- Metrics: grpc_server_started_total, grpc_server_handled_total (by code) and the
  grpc_server_handling_seconds histogram, label children bound once per method.
- Tracing (mesh.telemetry) for every method except health checks and reflection.

`WrappingRegistrar` stands in for the server when generated `add_..._to_server` functions
register a servicer, so each servicer is wrapped as it is added.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc._cython import cygrpc
from prometheus_client import Counter, Histogram

from domain.errors import DeadlineExceeded, InvalidArgument, MeshError, Unavailable
from mesh.metrics import LATENCY_BUCKETS
from mesh.status_details import error_info_trailer
from mesh.telemetry import Tracing, current_trace_id

log = logging.getLogger(__name__)

# A status message travels in the grpc-message trailer; clients refuse trailers over 8 KiB.
MAX_STATUS_MESSAGE = 1024
NOT_TRACED = ("grpc.health.v1.", "grpc.reflection.")

RPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", ["grpc_type", "grpc_service", "grpc_method"])
RPC_HANDLED = Counter(
    "grpc_server_handled_total", "RPCs completed on the server, whatever their status.", ["grpc_type", "grpc_service", "grpc_method", "grpc_code"]
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds", "Time from receiving an RPC to finishing it, in seconds.",
    ["grpc_type", "grpc_service", "grpc_method"], buckets=LATENCY_BUCKETS,
)
UNDECODABLE = Counter(
    "scoremesh_grpc_undecodable_requests_total",
    "Requests whose bytes did not parse as the method's request message (answered INVALID_ARGUMENT).",
    ["grpc_service", "grpc_method"],
)
# What grpc raises in a handler still reading its request stream when the server stops (it has no
# public name): the call ends with the server; it is nobody's bug and nothing can be answered.
SERVER_STOPPED: type | tuple = getattr(cygrpc, "_ServerStoppedError", ())
KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


class Undecodable:
    """Stands in for a request message whose bytes did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer):
    """The deserializer, returning `Undecodable` instead of raising."""
    if deserializer is None:
        return None

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except Exception as error:  # DecodeError, invalid UTF-8, ...: whatever the parser raises
            return Undecodable(error)

    return deserialize


def _message_name(deserializer) -> str:
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", "request")


def _capped(message: str) -> str:
    return message if len(message) <= MAX_STATUS_MESSAGE else message[: MAX_STATUS_MESSAGE - 16] + "... (truncated)"


class _Method:
    """What one method's wrapper needs, prepared once."""

    def __init__(self, full_method: str, kind: str, handler: grpc.RpcMethodHandler, tracing: Tracing | None) -> None:
        _, service, method = full_method.split("/", 2)
        self.full_method = full_method
        self.started = RPC_STARTED.labels(kind, service, method)
        self.seconds = RPC_SECONDS.labels(kind, service, method)
        self._handled_labels = (kind, service, method)
        self._handled: dict[str, Any] = {}
        self.undecodable = UNDECODABLE.labels(service, method)
        self.message_name = _message_name(handler.request_deserializer)
        self.tracing = tracing if tracing is not None and not full_method.startswith(tuple("/" + p for p in NOT_TRACED)) else None

    def handled(self, code: str) -> None:
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = RPC_HANDLED.labels(*self._handled_labels, code)
        child.inc()

    def refuse(self, request: Undecodable) -> InvalidArgument:
        self.undecodable.inc()
        return InvalidArgument(f"request: the bytes are not a valid {self.message_name} message ({type(request.error).__name__})")

    def begin(self, context: grpc.aio.ServicerContext) -> list:
        """[start time, span, status code] of one call."""
        self.started.inc()
        span = self.tracing.start_server_span(self.full_method, context.invocation_metadata()) if self.tracing else None
        return [time.perf_counter(), span, "OK"]

    def end(self, call: list) -> None:
        started, span, code = call
        self.seconds.observe(time.perf_counter() - started)
        self.handled(code)
        if span is not None:
            self.tracing.end(span, code)

    async def failed(self, call: list, error: BaseException, context: grpc.aio.ServicerContext) -> None:
        """Record the status of a failed call and answer it (context.abort raises AbortError);
        cancellation, aborts already under way and a server stopping under an open stream pass
        through."""
        if isinstance(error, grpc.aio.AbortError):
            call[2] = _code(context, "UNKNOWN")
            raise error
        if not isinstance(error, Exception):  # CancelledError and friends
            call[2] = "CANCELLED"
            raise error
        if isinstance(error, SERVER_STOPPED):  # a stream open while the server shut down
            call[2] = "UNAVAILABLE"
            raise error
        call[2] = error.status if isinstance(error, MeshError) else "INTERNAL"
        await self.fail(error, context)

    async def fail(self, error: BaseException, context: grpc.aio.ServicerContext) -> None:
        """Answer `error` with its status (context.abort raises AbortError)."""
        if isinstance(error, MeshError):
            code = grpc.StatusCode[error.status]
            message = _capped(error.message)
            trailer = error_info_trailer(code, message, error.reason, error.info, error.retry_after_s) if error.reason else ()
            await context.abort(code, message, trailer)
        log.error("unexpected error in %s", self.full_method, exc_info=error)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {self.full_method}; see the server log (trace id {current_trace_id()})")


def header(context: grpc.aio.ServicerContext, name: str) -> str:
    """The value of request header `name` ("" when absent): how servicers read the bearer
    token of admin calls and the caller's name."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value
    return ""


def _code(context: grpc.aio.ServicerContext, default: str) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else default


class OpenStreams:
    """The calls of streaming methods in progress on one server. Telemetry and watch streams
    stay open as long as their peers run, so the server's grace period at shutdown (for unary
    calls in flight to finish) would always run out on them: `end_all` ends them at once with
    UNAVAILABLE (the peer reopens on another instance) and refuses new ones."""

    SHUTTING_DOWN = "the server is shutting down; open the stream on another instance"

    def __init__(self) -> None:
        self._calls: set[asyncio.Task] = set()
        self.closing = False

    def __len__(self) -> int:
        return len(self._calls)

    @contextlib.contextmanager
    def open(self):
        """Around one streaming call: refused while closing; ended by `end_all` as UNAVAILABLE."""
        if self.closing:
            raise Unavailable(self.SHUTTING_DOWN)
        task = asyncio.current_task()
        self._calls.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self.closing:
                raise  # the caller went away
            task.uncancel()
            raise Unavailable(self.SHUTTING_DOWN) from None
        finally:
            self._calls.discard(task)

    def end_all(self) -> int:
        """End every open stream and refuse new ones; how many were open."""
        self.closing = True
        for task in self._calls:
            task.cancel()
        return len(self._calls)


def wrap_handler(full_method: str, handler: grpc.RpcMethodHandler, tracing: Tracing | None, max_call_s: float | None = None,
                 streams: OpenStreams | None = None) -> grpc.RpcMethodHandler:
    kind, factory = next((k, f) for k, f in KINDS if getattr(handler, k) is not None)
    behaviour = getattr(handler, kind)
    m = _Method(full_method, kind, handler, tracing)
    streaming_request = kind.startswith("stream_")
    stream_open = streams.open if streams is not None else contextlib.nullcontext

    async def checked(requests):
        async for request in requests:
            if isinstance(request, Undecodable):
                raise m.refuse(request)
            yield request

    def guarded(request):
        if streaming_request:
            return checked(request)
        if isinstance(request, Undecodable):
            raise m.refuse(request)
        return request

    if inspect.isasyncgenfunction(behaviour):  # server streaming: each step runs under the guard

        async def wrapped(request, context):
            call = m.begin(context)
            try:
                with stream_open():
                    async for item in behaviour(guarded(request), context):
                        yield item
            except BaseException as error:
                await m.failed(call, error, context)
            finally:
                m.end(call)

    elif kind == "unary_unary" and max_call_s:  # the deadline cap: streams (Watch, Report) may live long

        async def wrapped(request, context):
            call = m.begin(context)
            try:
                remaining = context.time_remaining()
                if remaining is not None and remaining <= max_call_s:  # the common case: the caller's deadline rules
                    return await behaviour(guarded(request), context)
                scope = asyncio.timeout(max_call_s)
                try:
                    async with scope:
                        return await behaviour(guarded(request), context)
                except TimeoutError:
                    if not scope.expired():
                        raise  # the handler's own timeout, not the cap
                    raise DeadlineExceeded(f"the call ran past this server's cap of {max_call_s:g} s (max_call_s)") from None
            except BaseException as error:
                await m.failed(call, error, context)
            finally:
                m.end(call)

    else:  # client streams (Report, Feedback: ended at shutdown) and uncapped unary calls
        scope = stream_open if streaming_request else contextlib.nullcontext

        async def wrapped(request, context):
            call = m.begin(context)
            try:
                with scope():
                    return await behaviour(guarded(request), context)
            except BaseException as error:
                await m.failed(call, error, context)
            finally:
                m.end(call)

    return factory(wrapped, request_deserializer=_tolerant(handler.request_deserializer), response_serializer=handler.response_serializer)


class WrappingRegistrar:
    """Pass this where generated code expects the server (`add_FooServicer_to_server(servicer,
    registrar)`): every method is wrapped once and registered on the real server."""

    def __init__(self, server: grpc.aio.Server, tracing: Tracing | None = None, max_call_s: float | None = None) -> None:
        self.server = server
        self.tracing = tracing
        self.max_call_s = max_call_s
        self.streams = OpenStreams()

    def add_generic_rpc_handlers(self, handlers) -> None:
        """Generated code registers each servicer twice, as a generic handler and as registered
        method handlers; the second carries everything, so the first is not needed."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        wrapped = {name: wrap_handler(f"/{service}/{name}", handler, self.tracing, self.max_call_s, self.streams)
                   for name, handler in handlers.items()}
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self.server.add_registered_method_handlers(service, wrapped)


def add_servicer(server: grpc.aio.Server, add_to_server: Callable[[Any, Any], None], servicer: Any, tracing: Tracing | None = None,
                 max_call_s: float | None = None) -> None:
    """Register `servicer` on `server` with every method wrapped (also for tests and benchmarks)."""
    add_to_server(servicer, WrappingRegistrar(server, tracing, max_call_s))
