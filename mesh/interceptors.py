"""Server interceptors shared by every service.

`ErrorMapping` is the one place where domain errors (`mesh.errors`) become gRPC statuses; any
other exception is logged in full and answered with a generic INTERNAL message. `GrpcMetrics`
counts RPCs started and handled (by service, method and code) and times them.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from mesh.errors import MeshError
from mesh.status_details import error_info_trailer
from mesh.telemetry import current_trace_id

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

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

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]
Wrapper = Callable[[Behaviour, str, str], Behaviour]


def _split(full_method: str) -> tuple[str, str]:
    _, service, method = full_method.split("/", 2)
    return service, method


def _rebuild(handler: grpc.RpcMethodHandler, wrap: Callable[[Behaviour, str], Behaviour]):
    """The same handler with its behaviour wrapped; keeps (de)serializers and streaming kind."""
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
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def _wrap_call(behaviour: Behaviour, around: Callable[[Awaitable[Any], grpc.aio.ServicerContext], Awaitable[Any]]):
    """Run a behaviour under `around`: a coroutine once, an async generator step by step."""
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request_or_iterator, context):
            steps = behaviour(request_or_iterator, context)
            while True:
                try:
                    item = await around(steps.__anext__(), context)
                except StopAsyncIteration:
                    return
                yield item

        return stream

    async def unary(request_or_iterator, context):
        return await around(behaviour(request_or_iterator, context), context)

    return unary


class ErrorMapping(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        async def around(call, context: grpc.aio.ServicerContext):
            try:
                return await call
            except (StopAsyncIteration, grpc.aio.AbortError):
                raise
            except MeshError as error:
                code = grpc.StatusCode[error.status]
                trailer = error_info_trailer(code, error.message, error.reason, error.info) if error.reason else ()
                await context.abort(code, error.message, trailer)
            except Exception:
                trace_id = current_trace_id()
                log.exception("unexpected error in %s", method)
                await context.abort(
                    grpc.StatusCode.INTERNAL,
                    f"internal error in {method}; see the server log (trace id {trace_id})",
                )

        return _rebuild(handler, lambda behaviour, kind: _wrap_call(behaviour, around))


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
