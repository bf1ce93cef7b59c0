"""Start the recovery service: `python -m services.recovery --instance-id recovery-1`."""

from __future__ import annotations

import asyncio
import logging
import time

from mesh.client import ServiceClient
from mesh.config import MeshSettings
from mesh.discovery import Instance, InstanceState
from mesh.health_probe import HealthProber
from mesh.server import ServiceRuntime, service_main
from scoremesh.v1 import recovery_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc
from services.recovery.audit import AuditLog
from services.recovery.recoverer import Recoverer
from services.recovery.servicer import RecoveryServicer

log = logging.getLogger(__name__)
SERVICE_NAME = "scoremesh.v1.Recovery"


class RecoverySettings(MeshSettings):
    yaml_section = "recovery"

    probe_interval_s: float = 1.0
    """How often every instance is health-checked."""

    probe_timeout_s: float = 1.0
    """Deadline of one health check."""

    startup_grace_s: float = 60.0
    """An instance younger than this may report NOT_SERVING (warming up) without counting as failed."""

    restart_attempts: int = 3
    """Restart tries per recovery."""

    restart_backoff_s: float = 5.0
    """Backoff before retry n is this x 2^(n-1)."""

    recovery_timeout_s: float = 30.0
    """How long a restarted instance has to pass its health check."""


async def serve(instance_id: str) -> None:
    settings = RecoverySettings()
    runtime = ServiceRuntime(settings, "recovery", instance_id)
    prober = HealthProber()
    supervisor = ServiceClient(runtime.registry, "supervisor", supervisor_pb2_grpc.SupervisorStub)
    runtime.on_stop(prober.close)
    runtime.on_stop(supervisor.close)

    async def probe(state: InstanceState) -> tuple[bool, str]:
        if state.process_gone:
            return False, state.reason
        status = await prober.check(state.instance.address, settings.probe_timeout_s)
        if status == "SERVING":
            return True, ""
        started = float(state.instance.meta.get("started_at", 0) or 0)
        if status == "NOT_SERVING" and time.time() - started < settings.startup_grace_s:
            return True, "starting"
        return False, f"health check: {status}"

    async def restart(instance: Instance, reason: str) -> None:
        await prober.forget(instance.address)
        await supervisor.call(
            lambda stub: stub.RestartInstance,
            supervisor_pb2.RestartInstanceRequest(instance_id=instance.instance_id, reason=reason),
            timeout=10.0,
        )

    async def lookup(instance_id: str) -> InstanceState | None:
        states = await asyncio.to_thread(runtime.registry.list_all)
        return next((s for s in states if s.instance.instance_id == instance_id), None)

    recoverer = Recoverer(
        probe, restart, lookup,
        AuditLog(settings.state_dir / "audit" / "recovery.jsonl"),
        attempts=settings.restart_attempts,
        backoff_s=settings.restart_backoff_s,
        recovery_timeout_s=settings.recovery_timeout_s,
    )
    recovery_pb2_grpc.add_RecoveryServicer_to_server(RecoveryServicer(recoverer), runtime.server)
    runtime.add_services([SERVICE_NAME])
    await runtime.start()

    async def watch() -> None:
        while True:
            try:
                await recoverer.observe(await asyncio.to_thread(runtime.registry.list_all))
            except Exception:
                log.exception("recovery watch round failed")
            await asyncio.sleep(settings.probe_interval_s)

    runtime.spawn(watch(), "watch")
    await runtime.set_serving(True)
    await runtime.run_until_stopped()


def main(argv: list[str] | None = None) -> None:
    service_main("recovery", serve, argv)
