"""Start the recovery service: `python -m services.recovery --instance-id recovery-1`."""

from __future__ import annotations

import asyncio
import logging
import time

from domain.errors import MeshError
from mesh.admin_auth import admin_token
from mesh.discovery import Instance, InstanceState
from mesh.health_probe import HealthProber
from mesh.runtime import Service, ServiceRuntime, service_main
from scoremesh.v1 import recovery_pb2_grpc, router_pb2, router_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc
from services.recovery.audit import AuditLog
from services.recovery.clients import AlertSubscriptions, FeatureCaches, InferenceReplicas
from services.recovery.policies import Gate
from services.recovery.recoverer import Recoverer
from services.recovery.ejections import Ejections
from services.recovery.promotion import PromotionGate, PromotionPolicy
from services.recovery.responder import AlertResponder, EjectionControl, RoutingControl
from services.recovery.rollbacks import Rollbacks
from services.recovery.route_switch import Switches
from services.recovery.servicer import RecoveryServicer
from services.recovery.settings import RecoverySettings

log = logging.getLogger(__name__)


async def setup(runtime: ServiceRuntime, settings: RecoverySettings) -> None:
    prober = HealthProber(runtime.channels)
    runtime.on_stop(prober.close)
    supervisor = runtime.client("supervisor", supervisor_pb2_grpc.SupervisorStub, "scoremesh.v1.Supervisor")
    token = admin_token(settings.admin_token, settings.state_dir)
    credentials = (("authorization", f"Bearer {token}"),) if token else ()

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
        if settings.restarts_by == "orchestrator":
            log.info("%s unhealthy (%s): its restart is the orchestrator's; watching it come back", instance.instance_id, reason)
            return
        await supervisor.call(
            "RestartInstance",
            supervisor_pb2.RestartInstanceRequest(instance_id=instance.instance_id, reason=reason),
            timeout=10.0, attempts=1, hedge=False,  # a restart is not an idempotent read
            metadata=credentials,
        )

    async def lookup(instance_id: str) -> InstanceState | None:
        states = await asyncio.to_thread(runtime.registry.list_all)
        return next((s for s in states if s.instance.instance_id == instance_id), None)

    audit = AuditLog(settings.state_dir / "audit" / "recovery.sqlite")
    rollbacks = Rollbacks(settings.state_dir / "audit" / "recovery.sqlite")

    async def add_replica(service: str, reason: str) -> str:
        try:
            response = await supervisor.call(
                "AddReplica", supervisor_pb2.AddReplicaRequest(service=service, reason=reason[:500], max_replicas=settings.max_local_replicas),
                timeout=10.0, attempts=1, hedge=False, metadata=credentials,
            )
        except MeshError as error:
            return f"failed: {error.status}: {error.message[:300]}"
        instance_id = response.process.instance_id
        until = time.monotonic() + settings.recovery_timeout_s
        while time.monotonic() < until:  # verified: registered and passing its health check
            state = await lookup(instance_id)
            if state is not None and (await probe(state))[0] and state.healthy:
                return f"succeeded: {instance_id} serving"
            await asyncio.sleep(0.5)
        return f"failed: {instance_id} not healthy {settings.recovery_timeout_s:.0f}s after its start"

    replicas = InferenceReplicas(runtime.registry, runtime.channels, token)
    caches = FeatureCaches(runtime.registry, runtime.channels, token)
    router = runtime.client("router", router_pb2_grpc.RouterStub, "scoremesh.v1.Router")

    async def get_routing() -> tuple[str, str]:
        response = await router.call("GetRoutingConfig", router_pb2.GetRoutingConfigRequest(), timeout=10.0)
        return response.version, response.yaml

    async def apply_routing(document: str) -> str:
        # Any router will do: it writes the state file (or Consul KV) every router follows.
        response = await router.call("ApplyRoutingConfig", router_pb2.ApplyRoutingConfigRequest(yaml=document), timeout=10.0,
                                     attempts=1, hedge=False, metadata=credentials)
        return response.version

    switches = Switches(settings.state_dir / "audit" / "recovery.sqlite")
    ejections = Ejections(settings.state_dir / "audit" / "recovery.sqlite")

    async def resolved_as(service: str, instance_id: str, present: bool) -> bool:
        """Verified as balancers see it: the instance (not) in the service's resolution, polled
        up to recovery_timeout_s."""
        until = time.monotonic() + settings.recovery_timeout_s
        while time.monotonic() < until:
            resolved = {i.instance_id for i in await asyncio.to_thread(runtime.registry.resolve, service)}
            if (instance_id in resolved) == present:
                return True
            await asyncio.sleep(0.2)
        return False

    async def eject(instance_id: str, reason: str) -> str:
        states = await asyncio.to_thread(runtime.registry.list_all)
        state = next((s for s in states if s.instance.instance_id == instance_id), None)
        if state is None:
            return f"failed: {instance_id} is not registered"
        service = state.instance.service
        if not [s for s in states if s.instance.service == service and s.healthy and s.instance.instance_id != instance_id]:
            return f"not run: {instance_id} is the last serving replica of {service}"
        await asyncio.to_thread(runtime.registry.set_maintenance, state.instance, f"ejected by recovery: {reason}")
        if await resolved_as(service, instance_id, present=False):
            return f"succeeded: {instance_id} out of {service}'s resolution"
        return f"failed: {instance_id} still resolved {settings.recovery_timeout_s:.0f}s later"

    async def readmit(instance_id: str) -> str:
        states = await asyncio.to_thread(runtime.registry.list_all)
        state = next((s for s in states if s.instance.instance_id == instance_id), None)
        if state is None:
            return f"succeeded: {instance_id} is gone (nothing to readmit)"
        service = state.instance.service
        await asyncio.to_thread(runtime.registry.set_maintenance, state.instance, None)
        if await resolved_as(service, instance_id, present=True):
            return f"succeeded: {instance_id} back in {service}'s resolution"
        return f"failed: {instance_id} not resolved {settings.recovery_timeout_s:.0f}s after maintenance ended (unhealthy?)"

    responder = AlertResponder(
        settings.alert_policies, Gate(settings.action_cooldown_s, settings.give_up_after), audit, rollbacks, replicas.control(),
        attempts=settings.restart_attempts, backoff_s=settings.restart_backoff_s, verify_timeout_s=settings.recovery_timeout_s,
        latency_limit_ms=settings.latency_limit_ms,
        add_replica=None if settings.restarts_by == "orchestrator" else add_replica,
        routing=RoutingControl(get_routing, apply_routing), switches=switches, clear_cache=caches.clear,
        ejection=EjectionControl(eject, readmit), ejections=ejections, eject_s=settings.eject_s,
        promotion=PromotionGate(settings.model_repository, PromotionPolicy(
            settings.promotion_min_auc, settings.promotion_max_log_loss, settings.promotion_max_calibration_error,
            settings.promotion_max_p99_ms, settings.promotion_margin), replicas.probe),
    )
    alerts = AlertSubscriptions(runtime.registry, runtime.channels, responder.on_alert)

    async def close_audit() -> None:
        await alerts.close()
        await replicas.close()
        await caches.close()
        audit.close()
        rollbacks.close()
        switches.close()
        ejections.close()

    runtime.on_stop(close_audit)
    recoverer = Recoverer(
        probe, restart, lookup,
        audit,
        attempts=settings.restart_attempts,
        backoff_s=settings.restart_backoff_s,
        recovery_timeout_s=settings.recovery_timeout_s,
    )
    runtime.add_servicer(recovery_pb2_grpc.add_RecoveryServicer_to_server, RecoveryServicer(recoverer, responder, token), "scoremesh.v1.Recovery")

    async def watch() -> None:
        while True:
            try:
                await recoverer.observe(await asyncio.to_thread(runtime.registry.list_all))
            except Exception:
                log.exception("recovery watch round failed")
            await asyncio.sleep(settings.probe_interval_s)

    async def follow_alerts() -> None:
        while True:
            try:
                await alerts.refresh()
            except Exception:
                log.exception("alert subscription round failed")
            await asyncio.sleep(settings.probe_interval_s)

    async def reconcile() -> None:
        while True:
            await asyncio.sleep(settings.reconcile_interval_s)
            try:
                await responder.reconcile()
                await responder.readmit_expired()
            except Exception:
                log.exception("rollback reconciliation failed")

    runtime.spawn(watch(), "watch")
    runtime.spawn(reconcile(), "reconcile-rollbacks")
    if settings.watch_alerts:
        runtime.spawn(follow_alerts(), "follow-alerts")
    return None


SERVICE = Service("recovery", RecoverySettings, setup)


def main(argv: list[str] | None = None) -> None:
    service_main(SERVICE, argv)
