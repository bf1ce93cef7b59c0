"""Wrapped method handlers (errors, metrics, undecodable bytes) and the client side over real
loopback gRPC servers in this process."""

from __future__ import annotations

import asyncio
import os

import grpc
import pytest
from prometheus_client import REGISTRY

from mesh.client import ClientPolicy, ServiceClient
from mesh.discovery import Instance, LocalRegistry
from domain.errors import InvalidArgument, UpstreamError
from mesh.handlers import add_servicer
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc


class Servicer(monitoring_pb2_grpc.MonitoringServicer):
    def __init__(self, name: str = "s") -> None:
        self.name = name

    async def GetSLO(self, request, context):
        if request.model_name == "bad":
            raise InvalidArgument("model_name: 'bad' is not allowed")
        if request.model_name == "crash":
            raise RuntimeError("secret internal detail")
        return monitoring_pb2.GetSLOResponse(requests=len(self.name))

    async def Report(self, request_iterator, context):
        count = 0
        async for batch in request_iterator:
            count += len(batch.records)
        return monitoring_pb2.ReportResponse(accepted=count)


async def _server(name: str = "s") -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    add_servicer(server, monitoring_pb2_grpc.add_MonitoringServicer_to_server, Servicer(name))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def _handled(method: str, code: str) -> float:
    return REGISTRY.get_sample_value(
        "grpc_server_handled_total",
        {"grpc_type": "unary_unary" if method == "GetSLO" else "stream_unary", "grpc_service": "scoremesh.v1.Monitoring", "grpc_method": method, "grpc_code": code},
    ) or 0.0


def test_domain_errors_map_to_status_and_crashes_stay_generic():
    async def scenario():
        server, address = await _server()
        before = {code: _handled("GetSLO", code) for code in ("OK", "INVALID_ARGUMENT", "INTERNAL")}
        async with grpc.aio.insecure_channel(address) as channel:
            stub = monitoring_pb2_grpc.MonitoringStub(channel)
            assert (await stub.GetSLO(monitoring_pb2.GetSLORequest(), timeout=5)).requests == 1
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.GetSLO(monitoring_pb2.GetSLORequest(model_name="bad"), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as crash:
                await stub.GetSLO(monitoring_pb2.GetSLORequest(model_name="crash"), timeout=5)
            streamed = await stub.Report(
                iter([monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord()] * 3)]), timeout=5
            )
        await server.stop(0)
        return before, bad.value, crash.value, streamed

    before, bad, crash, streamed = asyncio.run(scenario())
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.details() == "model_name: 'bad' is not allowed"
    assert crash.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in crash.details() and "see the server log" in crash.details()
    assert streamed.accepted == 3
    assert _handled("GetSLO", "OK") == before["OK"] + 1
    assert _handled("GetSLO", "INVALID_ARGUMENT") == before["INVALID_ARGUMENT"] + 1
    assert _handled("GetSLO", "INTERNAL") == before["INTERNAL"] + 1
    assert _handled("Report", "OK") >= 1


def test_client_round_robins_and_fails_over_from_a_dead_instance(tmp_path):
    async def scenario():
        live_a, address_a = await _server("a")
        live_b, address_b = await _server("bb")
        dead, address_dead = await _server("ccc")
        await dead.stop(0)
        registry = LocalRegistry(tmp_path)
        for i, address in enumerate((address_dead, address_a, address_b)):
            instance = Instance("monitoring", f"m-{i}", address, pid=os.getpid())
            registry.register(instance)
            registry.set_serving(instance, True)
        client = ServiceClient(registry, "monitoring", monitoring_pb2_grpc.MonitoringStub, policy=ClientPolicy(strategy="round_robin", hedge=False))
        answers = [
            (await client.call("GetSLO", monitoring_pb2.GetSLORequest(), timeout=5)).requests
            for _ in range(6)
        ]
        with pytest.raises(UpstreamError) as refused:
            await client.call("GetSLO", monitoring_pb2.GetSLORequest(model_name="bad"), timeout=5)
        await client.close()
        for server in (live_a, live_b):
            await server.stop(0)
        return answers, refused.value

    answers, refused = asyncio.run(scenario())
    assert set(answers) == {1, 2}  # both live instances served; the dead one never answered
    assert refused.status == "INVALID_ARGUMENT"  # not retried: only UNAVAILABLE fails over


def test_client_without_instances_is_unavailable(tmp_path):
    async def scenario():
        client = ServiceClient(LocalRegistry(tmp_path), "monitoring", monitoring_pb2_grpc.MonitoringStub)
        with pytest.raises(UpstreamError) as raised:
            await client.call("GetSLO", monitoring_pb2.GetSLORequest(), timeout=1)
        return raised.value

    error = asyncio.run(scenario())
    assert error.status == "UNAVAILABLE" and "no healthy instance" in error.message


class _Context:
    def __init__(self, remaining):
        self.remaining = remaining

    def time_remaining(self):
        return self.remaining


def test_downstream_timeout_never_outlives_the_callers_deadline():
    from mesh.client import remaining_timeout
    from domain.errors import DeadlineExceeded

    assert remaining_timeout(_Context(None), 2.0) == 2.0  # caller set no deadline
    assert remaining_timeout(_Context(0.3), 2.0) == 0.3
    assert remaining_timeout(_Context(9.0), 2.0) == 2.0
    with pytest.raises(DeadlineExceeded):
        remaining_timeout(_Context(-0.01), 2.0)


class SlowServicer(monitoring_pb2_grpc.MonitoringServicer):
    async def GetSLO(self, request, context):
        await asyncio.sleep(float(request.model_name or 0))
        return monitoring_pb2.GetSLOResponse(requests=1)


def test_a_call_is_cut_at_the_servers_deadline_cap():
    """max_call_s: a call without a deadline (or with a longer one) is answered
    DEADLINE_EXCEEDED at the cap; a call within the cap, or with a shorter deadline, is not
    touched."""

    async def scenario():
        server = grpc.aio.server()
        add_servicer(server, monitoring_pb2_grpc.add_MonitoringServicer_to_server, SlowServicer(), max_call_s=0.3)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        outcomes = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = monitoring_pb2_grpc.MonitoringStub(channel)
            for sleep_s, timeout in (("2", None), ("2", 30.0), ("0.05", None), ("0.05", 0.2)):
                started = asyncio.get_running_loop().time()
                try:
                    await stub.GetSLO(monitoring_pb2.GetSLORequest(model_name=sleep_s), timeout=timeout)
                    outcomes.append(("OK", ""))
                except grpc.aio.AioRpcError as error:
                    outcomes.append((error.code().name, error.details()))
                outcomes[-1] += (asyncio.get_running_loop().time() - started,)
        await server.stop(0)
        return outcomes

    (no_deadline, long_deadline, quick, quick_with_deadline) = asyncio.run(scenario())
    for code, message, elapsed in (no_deadline, long_deadline):
        assert code == "DEADLINE_EXCEEDED" and "max_call_s" in message and elapsed < 1.5
    assert quick[0] == "OK" and quick_with_deadline[0] == "OK"


def test_every_server_gets_its_limits_from_one_place():
    from mesh.config import MeshSettings
    from mesh.runtime import server_options

    options = dict(server_options(MeshSettings(max_message_bytes=1 << 20, max_concurrent_streams=64, keepalive_time_s=20,
                                               keepalive_timeout_s=5, min_client_ping_interval_s=15)))
    assert options == {
        "grpc.max_receive_message_length": 1 << 20, "grpc.max_send_message_length": 1 << 20,
        "grpc.max_concurrent_streams": 64, "grpc.keepalive_time_ms": 20_000, "grpc.keepalive_timeout_ms": 5_000,
        "grpc.http2.min_ping_interval_without_data_ms": 15_000, "grpc.http2.max_ping_strikes": 2,
    }


def test_a_stream_cut_by_the_server_stopping_is_not_logged_as_a_crash(caplog):
    """grpc raises its server-stopped error into a handler still reading a stream at shutdown:
    the call ends UNAVAILABLE, with no 'unexpected error' in the log."""
    from grpc._cython import cygrpc

    from mesh.handlers import wrap_handler

    async def report(requests, context):
        async for _ in requests:
            pass
        raise cygrpc._ServerStoppedError("Server already stopped.")

    class Context:
        def invocation_metadata(self):
            return ()

    handler = wrap_handler("/scoremesh.v1.Monitoring/Report", grpc.stream_unary_rpc_method_handler(report), tracing=None)

    async def requests():
        yield monitoring_pb2.ReportRequest()

    before = _handled("Report", "UNAVAILABLE")
    with pytest.raises(cygrpc._ServerStoppedError):
        asyncio.run(handler.stream_unary(requests(), Context()))
    assert _handled("Report", "UNAVAILABLE") == before + 1
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


class StreamingServicer(Servicer):
    """Report as monitoring has it (reads until the sender stops) and a watch that never ends."""

    async def WatchAlerts(self, request, context):
        yield monitoring_pb2.WatchAlertsResponse()
        await asyncio.Event().wait()  # no more alerts, ever


def test_open_streams_end_at_shutdown_instead_of_holding_the_grace():
    """Telemetry and watch streams stay open while their peers run: at shutdown they end at
    once with UNAVAILABLE, new ones are refused, and the grace is left to unary calls (before,
    a monitoring instance with routers reporting to it took the whole grace, 5 s, to stop)."""
    from mesh.handlers import WrappingRegistrar

    async def scenario():
        server = grpc.aio.server()
        registrar = WrappingRegistrar(server)
        monitoring_pb2_grpc.add_MonitoringServicer_to_server(StreamingServicer(), registrar)
        address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
        await server.start()
        before = _handled("Report", "UNAVAILABLE")
        async with grpc.aio.insecure_channel(address) as channel:
            stub = monitoring_pb2_grpc.MonitoringStub(channel)
            sender_stops = asyncio.Event()

            async def batches():
                yield monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord()])
                await sender_stops.wait()  # a router that keeps its stream open

            report = asyncio.ensure_future(stub.Report(batches(), timeout=30))
            watch = stub.WatchAlerts(monitoring_pb2.WatchAlertsRequest(), timeout=30)
            await watch.read()  # both streams are open on the server now
            for _ in range(100):  # the Report handler may not have started yet
                if len(registrar.streams) == 2:
                    break
                await asyncio.sleep(0.01)
            assert registrar.streams.end_all() == 2
            started = asyncio.get_running_loop().time()
            with pytest.raises(grpc.aio.AioRpcError) as report_end:
                await report
            with pytest.raises(grpc.aio.AioRpcError) as watch_end:
                await watch.read()
            with pytest.raises(grpc.aio.AioRpcError) as refused:  # a sender reopening before the server stops
                await stub.Report(batches(), timeout=5)
            await server.stop(5.0)
            took = asyncio.get_running_loop().time() - started
            sender_stops.set()
        assert report_end.value.code() == watch_end.value.code() == refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in report_end.value.details()
        assert took < 2.0, took
        assert _handled("Report", "UNAVAILABLE") == before + 2

    asyncio.run(scenario())
