"""What `scoremesh status` reports: every instance the registry knows, its health, and every
instance the supervisor planned that has not registered. The mesh is healthy only when the
supervisor serves and every planned instance is registered and SERVING."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

import grpc

from mesh.config import MeshSettings
from mesh.discovery import InstanceState, open_registry
from mesh import tls
from mesh.health_probe import HealthProber
from scoremesh.v1 import supervisor_pb2, supervisor_pb2_grpc

NOT_REGISTERED = "NOT_REGISTERED"
EJECTED = "ejected"
"""How the registry words an instance in maintenance (mesh.discovery: `ejected: <reason>`)."""


@dataclass(frozen=True)
class InstanceStatus:
    service: str
    id: str
    address: str
    metrics: str
    healthy: bool
    status: str
    planned: bool
    workers: int = 1


@dataclass(frozen=True)
class MeshStatus:
    running: bool
    """A supervisor is registered and serving."""
    healthy: bool
    instances: list[InstanceStatus]

    def to_dict(self) -> dict:
        return {"running": self.running, "healthy": self.healthy, "instances": [asdict(i) for i in self.instances]}


async def planned_instances(address: str, timeout: float = 2.0, channels: tls.Channels = tls.PLAINTEXT) -> list[tuple[str, str]] | None:
    """(service, instance id) of every process the supervisor at `address` runs; None if it
    does not answer."""
    async with channels.aio(address) as channel:
        try:
            response = await supervisor_pb2_grpc.SupervisorStub(channel).ListProcesses(supervisor_pb2.ListProcessesRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return None
    return [(p.service, p.instance_id) for p in response.processes if not p.spare]  # a spare is not an instance yet


async def collect_status(settings: MeshSettings) -> MeshStatus:
    registry = open_registry(settings)
    channels = tls.Channels(tls.for_cli(settings))
    prober = HealthProber(channels)
    try:
        states: list[InstanceState] = await asyncio.to_thread(registry.list_all)
        states.sort(key=lambda s: (s.instance.service, s.instance.instance_id))
        probes = await asyncio.gather(
            *(prober.check(s.instance.address, timeout=1.0) if s.healthy else _constant(s.reason) for s in states)
        )
    finally:
        await prober.close()
        registry.close()
    supervisor = next((s for s, status in zip(states, probes) if s.instance.service == "supervisor" and status == "SERVING"), None)
    planned = await planned_instances(supervisor.instance.address, channels=channels) if supervisor else None
    planned_ids = {instance_id for _, instance_id in planned or ()}
    instances = [
        InstanceStatus(s.instance.service, s.instance.instance_id, s.instance.address, s.instance.metrics_url,
                       status == "SERVING", status, s.instance.instance_id in planned_ids or s.instance.service == "supervisor",
                       s.instance.workers)
        for s, status in zip(states, probes)
    ]
    registered = {i.id for i in instances}
    instances += [
        InstanceStatus(service, instance_id, "", "", False, NOT_REGISTERED, True)
        for service, instance_id in planned or () if instance_id not in registered
    ]
    instances.sort(key=lambda i: (i.service, i.id))
    running = supervisor is not None and planned is not None
    # A replica recovery ejected is alive and deliberately out of rotation (never the last of its
    # service): the mesh can still score.
    healthy = running and all(i.healthy or i.status.startswith(EJECTED) for i in instances if i.planned)
    return MeshStatus(running, healthy, instances)


async def _constant(value: str) -> str:
    return value
