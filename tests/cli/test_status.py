"""`scoremesh status`: healthy only when the supervisor serves and every instance it planned is
registered and SERVING (in-process gRPC servers on loopback, a real local registry)."""

from __future__ import annotations

import asyncio
import os

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cli.status import collect_status
from cli.supervisor import ProcessSpec, Supervisor, SupervisorServicer
from mesh.config import MeshSettings
from mesh.discovery import Instance, LocalRegistry
from scoremesh.v1 import supervisor_pb2_grpc


async def _server(supervisor: Supervisor | None = None):
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if supervisor is not None:
        supervisor_pb2_grpc.add_SupervisorServicer_to_server(SupervisorServicer(supervisor, None), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, servicer, f"127.0.0.1:{port}"


def test_healthy_only_when_every_planned_instance_is_registered_and_serving(tmp_path):
    settings = MeshSettings(state_dir=tmp_path)
    plan = [ProcessSpec("features", "features-1"), ProcessSpec("inference", "inference-1")]

    async def scenario():
        registry = LocalRegistry(settings.registry_dir)
        servers = [await _server(Supervisor(plan, tmp_path / "logs", {})), await _server(), await _server()]
        (_, _, supervisor_address), (_, _, features_address), (_, inference_health, inference_address) = servers

        def register(service, instance_id, address):
            instance = Instance(service, instance_id, address, pid=os.getpid())
            registry.register(instance)
            registry.set_serving(instance, True)

        try:
            register("supervisor", "supervisor", supervisor_address)
            register("features", "features-1", features_address)
            partial = await collect_status(settings)
            register("inference", "inference-1", inference_address)
            complete = await collect_status(settings)
            await inference_health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
            not_serving = await collect_status(settings)
        finally:
            for server, _, _ in servers:
                await server.stop(0)
        return partial, complete, not_serving

    partial, complete, not_serving = asyncio.run(scenario())
    assert partial.running and not partial.healthy
    missing = next(i for i in partial.instances if i.id == "inference-1")
    assert (missing.status, missing.healthy, missing.address) == ("NOT_REGISTERED", False, "")
    assert complete.healthy and [i.status for i in complete.instances] == ["SERVING"] * 3
    assert not not_serving.healthy and next(i for i in not_serving.instances if i.id == "inference-1").status == "NOT_SERVING"
    assert complete.to_dict()["instances"][0] == {
        "service": "features", "id": "features-1", "address": complete.instances[0].address, "metrics": "",
        "healthy": True, "status": "SERVING", "planned": True, "workers": 1,
    }


def test_without_a_supervisor_nothing_is_healthy(tmp_path):
    status = asyncio.run(collect_status(MeshSettings(state_dir=tmp_path)))
    assert (status.running, status.healthy, status.instances) == (False, False, [])
