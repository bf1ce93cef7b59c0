"""Server interceptors shared by every service.

`ErrorMapping` is the one place where domain errors (`domain.errors`) become gRPC statuses; any
other exception is logged in full and answered with a generic INTERNAL message. Request bytes
that do not parse (truncated, invalid UTF-8 in a string field, ...) are answered with
INVALID_ARGUMENT and counted, without a traceback in the log. Status messages are capped, so no
error can outgrow what a client accepts in a trailer. `GrpcMetrics` counts RPCs started and
handled (by service, method and code) and times them.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from domain.errors import InvalidArgument, MeshError
from mesh.metrics import LATENCY_BUCKETS
from mesh.status_details import error_info_trailer
from mesh.telemetry import current_trace_id

log = logging.getLogger(__name__)

# A status message travels in the grpc-message trailer; clients refuse trailers over 8 KiB.
MAX_STATUS_MESSAGE = 1024

RPC_STARTED = Counter(
    "grpc_server_started_total",
    "RPCs started on the server.",
    ["grpc_type", "grpc_service", "grpc_method"],
)
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, whatever their status.",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from receiving an RPC to finishing it, in seconds.",
    ["grpc_type", "grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)

UNDECODABLE = Counter(
    "scoremesh_grpc_undecodable_requests_total",
    "Requests whose bytes did not parse as the method's request message (answered INVALID_ARGUMENT).",
    ["grpc_service", "grpc_method"],
)

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]
Wrapper = Callable[[Behaviour, str, str], Behaviour]


def _split(full_method: str) -> tuple[str, str]:
    _, service, method = full_method.split("/", 2)
    return service, method


def _rebuild(handler: grpc.RpcMethodHandler, wrap: Callable[[Behaviour, str], Behaviour], deserializer=None):
    """The same handler with its behaviour wrapped; keeps the serializer, the streaming kind and
    (unless given another) the request deserializer."""
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    )
    for kind, factory in kinds:
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return factory(
                wrap(behaviour, kind),
                request_deserializer=deserializer or handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def _wrap_call(behaviour: Behaviour, around: Callable[[Awaitable[Any], grpc.aio.ServicerContext], Awaitable[Any]], original: Behaviour):
    """Run a behaviour under `around`: a coroutine once, an async generator step by step.
    `original` is the servicer's own method (it tells which of the two it is)."""
    if inspect.isasyncgenfunction(original):

        async def stream(request_or_iterator, context):
            try:
                steps = behaviour(request_or_iterator, context)
            except Exception as error:  # e.g. an undecodable request, raised before the first step
                await around(_raise(error), context)
                return
            while True:
                try:
                    item = await around(steps.__anext__(), context)
                except StopAsyncIteration:
                    return
                yield item

        return stream

    async def unary(request_or_iterator, context):
        async def call():
            return await behaviour(request_or_iterator, context)

        return await around(call(), context)

    return unary


async def _raise(error: Exception):
    raise error


class Undecodable:
    """Stands in for a request message whose bytes did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer):
    """The deserializer, returning `Undecodable` instead of raising (grpc would log the
    exception and answer UNKNOWN)."""
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


class ErrorMapping(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        service, method_name = _split(method)
        message_name = _message_name(handler.request_deserializer)

        def undecodable(request: Undecodable) -> InvalidArgument:
            UNDECODABLE.labels(service, method_name).inc()
            return InvalidArgument(f"request: the bytes are not a valid {message_name} message ({type(request.error).__name__})")

        async def checked(requests):
            async for request in requests:
                if isinstance(request, Undecodable):
                    raise undecodable(request)
                yield request

        async def around(call, context: grpc.aio.ServicerContext):
            try:
                return await call
            except (StopAsyncIteration, grpc.aio.AbortError):
                raise
            except MeshError as error:
                code = grpc.StatusCode[error.status]
                message = _capped(error.message)
                trailer = error_info_trailer(code, message, error.reason, error.info) if error.reason else ()
                await context.abort(code, message, trailer)
            except Exception:
                trace_id = current_trace_id()
                log.exception("unexpected error in %s", method)
                await context.abort(
                    grpc.StatusCode.INTERNAL,
                    f"internal error in {method}; see the server log (trace id {trace_id})",
                )

        def wrap(behaviour: Behaviour, kind: str) -> Behaviour:
            if kind.startswith("stream_"):  # a stream of requests: each checked as it arrives
                return _wrap_call(lambda requests, context: behaviour(checked(requests), context), around, behaviour)

            def guarded(request, context):
                if isinstance(request, Undecodable):
                    raise undecodable(request)
                return behaviour(request, context)

            return _wrap_call(guarded, around, behaviour)

        return _rebuild(handler, wrap, _tolerant(handler.request_deserializer))


class GrpcMetrics(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _split(handler_call_details.method)

        def wrap(behaviour: Behaviour, kind: str) -> Behaviour:
            labels = (kind, service, method)

            def finish(started: float, code: str) -> None:
                RPC_SECONDS.labels(*labels).observe(time.perf_counter() - started)
                RPC_HANDLED.labels(*labels, code).inc()

            def code_of(context: grpc.aio.ServicerContext, default: str) -> str:
                code = context.code()
                if isinstance(code, grpc.StatusCode):
                    return code.name
                return default

            if inspect.isasyncgenfunction(behaviour):

                async def stream(request_or_iterator, context):
                    RPC_STARTED.labels(*labels).inc()
                    started = time.perf_counter()
                    code = "OK"
                    try:
                        async for item in behaviour(request_or_iterator, context):
                            yield item
                    except BaseException:
                        code = code_of(context, "UNKNOWN")
                        raise
                    finally:
                        finish(started, code_of(context, code))

                return stream

            async def unary(request_or_iterator, context):
                RPC_STARTED.labels(*labels).inc()
                started = time.perf_counter()
                code = "OK"
                try:
                    return await behaviour(request_or_iterator, context)
                except BaseException:
                    code = code_of(context, "UNKNOWN")
                    raise
                finally:
                    finish(started, code_of(context, code))

            return unary

        return _rebuild(handler, wrap)
