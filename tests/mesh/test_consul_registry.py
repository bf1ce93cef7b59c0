"""The Consul discovery backend, against the Consul API test double and, when a `consul` binary is
on PATH, against a real `consul agent -dev` (the same tests)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from concurrent import futures

import consul
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import grpc
from mesh.discovery import Instance
from mesh.discovery.consul import ConsulRegistry
from tests.mesh.consul_double import ConsulDouble


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _RealAgent:
    def __init__(self, binary: str) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [binary, "agent", "-dev", "-bind=127.0.0.1", "-client=127.0.0.1", f"-http-port={self.port}",
             f"-dns-port={_free_port()}", f"-grpc-port={_free_port()}", f"-serf-lan-port={_free_port()}",
             f"-serf-wan-port={_free_port()}", f"-server-port={_free_port()}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = consul.Consul(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.status.leader():
                    return
            except Exception:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("consul agent -dev did not elect a leader")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(params=["double", "agent"])
def consul_port(request):
    if request.param == "double":
        double = ConsulDouble().start()
        yield double.port
        double.stop()
        return
    binary = shutil.which("consul")
    if binary is None:
        pytest.skip("no `consul` binary on PATH: the real-agent run of these tests is skipped (the double ran)")
    agent = _RealAgent(binary)
    yield agent.port
    agent.stop()


class HealthServer:
    """A real gRPC server with grpc.health.v1, as every ScoreMesh instance has."""

    def __init__(self) -> None:
        self.servicer = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.set(True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self.servicer.set("", status)

    def stop(self) -> None:
        self.server.stop(0)


def _until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture()
def servers():
    started: list[HealthServer] = []

    def make() -> HealthServer:
        started.append(HealthServer())
        return started[-1]

    yield make
    for server in started:
        server.stop()


def _instance(server: HealthServer, n: int) -> Instance:
    return Instance("inference", f"inference-{n}", server.address, f"http://127.0.0.1:9{n}/metrics", pid=4000 + n)


def test_register_resolve_passing_only_and_deregister(consul_port, servers):
    registry = ConsulRegistry(port=consul_port, check_interval="200ms")
    server = servers()
    instance = _instance(server, 1)
    registry.register(instance)
    # Consul starts checks critical: not resolvable until the gRPC check has passed once.
    assert _until(lambda: registry.resolve("inference")) == [instance]
    (state,) = registry.list_all()
    assert state.healthy and state.instance == instance

    server.set(False)  # NOT_SERVING -> the gRPC check goes critical -> out of resolution
    _until(lambda: registry.resolve("inference") == [])
    (state,) = registry.list_all()
    assert not state.healthy and "critical" in state.reason

    server.set(True)
    _until(lambda: registry.resolve("inference") == [instance])
    registry.deregister(instance.instance_id)
    _until(lambda: registry.list_all() == [])


def test_maintenance_mode_ejects_an_instance_and_readmits_it(consul_port, servers):
    registry = ConsulRegistry(port=consul_port, check_interval="200ms")
    one, two = (_instance(servers(), n) for n in (1, 2))
    for instance in (one, two):
        registry.register(instance)
    _until(lambda: len(registry.resolve("inference")) == 2)
    registry.set_maintenance(one, "instance_slow: 4.2x its peers")
    assert _until(lambda: registry.resolve("inference") == [two])
    state = next(s for s in registry.list_all() if s.instance.instance_id == one.instance_id)
    assert (state.healthy, state.reason) == (False, "ejected: instance_slow: 4.2x its peers")  # as the local registry words it
    registry.set_maintenance(one, None)
    assert _until(lambda: len(registry.resolve("inference")) == 2)
    for instance in (one, two):
        registry.deregister(instance.instance_id)


def test_watch_follows_changes_with_blocking_queries(consul_port, servers):
    registry = ConsulRegistry(port=consul_port, check_interval="200ms", watch_wait="2s")
    first, second = servers(), servers()
    registry.register(_instance(first, 1))
    _until(lambda: registry.resolve("inference"))
    client = consul.Consul(host="127.0.0.1", port=consul_port)
    index, _ = client.health.service("inference", passing=True)

    # A blocking query returns as soon as something changes, well before its wait.
    result = {}

    def blocked_query():
        started = time.monotonic()
        result["index"], result["nodes"] = client.health.service("inference", passing=True, index=index, wait="10s")
        result["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=blocked_query)
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()  # still blocked: nothing changed yet
    registry.register(_instance(second, 2))
    waiter.join(15)
    assert int(result["index"]) > int(index) and result["seconds"] < 10

    registry.watch("inference")
    _until(lambda: [i.instance_id for i in registry.resolve("inference")] == ["inference-1", "inference-2"])
    registry.deregister("inference-1")
    _until(lambda: [i.instance_id for i in registry.resolve("inference")] == ["inference-2"])
    registry.close()


def test_dead_instance_is_deregistered_after_staying_critical(consul_port, servers):
    registry = ConsulRegistry(port=consul_port, check_interval="200ms", deregister_after="1s")
    server = servers()
    registry.register(_instance(server, 1))
    _until(lambda: registry.resolve("inference"))
    server.stop()  # the process is gone: its check goes critical, then Consul removes it
    _until(lambda: registry.resolve("inference") == [])
    # Real agents reap critical services on a ~30 s cycle; the double does it at once.
    _until(lambda: registry.list_all() == [], timeout=90)


def test_ttl_check_semantics(consul_port):
    client = consul.Consul(host="127.0.0.1", port=consul_port)
    client.agent.service.register("batch", service_id="batch-1", address="127.0.0.1", port=1, tags=["scoremesh"], check=consul.Check.ttl("1s"))
    registry = ConsulRegistry(port=consul_port)
    assert registry.resolve("batch") == []  # critical until the first pass
    client.agent.check.ttl_pass("service:batch-1")
    assert [i.instance_id for i in registry.resolve("batch")] == ["batch-1"]
    _until(lambda: registry.resolve("batch") == [], timeout=10)  # no pass within the TTL
    client.agent.service.deregister("batch-1")


def test_the_acl_token_is_sent_with_every_request_and_required():
    """SCOREMESH_CONSUL_TOKEN reaches the agent on every call; an agent that requires a token
    refuses a registry without one (py-consul raises ACLPermissionDenied on 403)."""
    from mesh.config import MeshSettings
    from mesh.discovery import consul_client, open_registry

    double = ConsulDouble(token="s3cret-acl").start()
    server = HealthServer()
    try:
        secured = open_registry(MeshSettings(discovery="consul", consul_port=double.port, consul_token="s3cret-acl"))
        secured.register(_instance(server, 1))
        assert _until(lambda: secured.resolve("inference"))[0].instance_id == "inference-1"
        assert set(double.tokens_seen) == {"s3cret-acl"}
        anonymous = open_registry(MeshSettings(discovery="consul", consul_port=double.port))
        with pytest.raises(consul.ACLPermissionDenied):
            anonymous.register(_instance(server, 2))
        wrong = consul_client(MeshSettings(discovery="consul", consul_port=double.port, consul_token="guess"))
        with pytest.raises(consul.ACLPermissionDenied):
            wrong.kv.get("scoremesh/routing")
        assert [i.instance_id for i in secured.resolve("inference")] == ["inference-1"]  # the refused changed nothing
        secured.close()
    finally:
        server.stop()
        double.stop()


def test_a_mesh_on_tls_registers_checks_the_agent_runs_over_tls(tmp_path):
    """With mesh TLS the gRPC check asks for TLS: an agent with a certificate of the mesh's CA
    sees the instance pass; without one it stays critical, so it is never resolved."""
    from mesh import tls
    from mesh.certificates import make_mesh_certificates
    from mesh.discovery.consul import ConsulRegistry

    issued = make_mesh_certificates(tmp_path, ["inference-1", "consul-agent"])
    server = grpc.server(futures.ThreadPoolExecutor(2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    own = tls.load(issued["inference-1"].ca, issued["inference-1"].cert, issued["inference-1"].key)
    port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(own))
    server.start()
    agent_tls = tls.load(issued["consul-agent"].ca, issued["consul-agent"].cert, issued["consul-agent"].key)
    with_tls, without_tls = ConsulDouble(grpc_tls=agent_tls).start(), ConsulDouble().start()
    try:
        instance = Instance("inference", "inference-1", f"127.0.0.1:{port}", "", pid=1)
        for double in (with_tls, without_tls):
            ConsulRegistry(port=double.port, check_interval="100ms", grpc_tls=True).register(instance)
        assert _until(lambda: ConsulRegistry(port=with_tls.port).resolve("inference"))
        time.sleep(0.5)
        assert ConsulRegistry(port=without_tls.port).resolve("inference") == []
    finally:
        with_tls.stop()
        without_tls.stop()
        server.stop(0)
