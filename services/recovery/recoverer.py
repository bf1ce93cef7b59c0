"""Decide and run recoveries. No gRPC here: probing and restarting are injected.

Health (shared/REFERENCE.md): 3 consecutive failed probes -> unhealthy (at once when the registry
knows the process is gone), 1 success -> healthy.
An unhealthy instance gets a `restart_service` recovery: ask the supervisor to restart it, then
wait for its health check to pass (that is success). Up to `attempts` tries with backoff
`backoff_s * 2^n`. One recovery at a time per instance; every attempt goes to the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.errors import FailedPrecondition, NotFound, quote
from mesh.discovery import Instance, InstanceState
from services.recovery.audit import AuditEntry, AuditLog

log = logging.getLogger(__name__)

FAILURES_TO_UNHEALTHY = 3
ACTIONS = ("restart_service",)
IGNORED_SERVICES = ("supervisor", "recovery")

Probe = Callable[[InstanceState], Awaitable[tuple[bool, str]]]
Restart = Callable[[Instance, str], Awaitable[None]]
Lookup = Callable[[str], Awaitable[InstanceState | None]]


@dataclass
class Tracked:
    instance: Instance
    failures: int = 0
    healthy: bool = True
    last_reason: str = ""


class Recoverer:
    def __init__(
        self,
        probe: Probe,
        restart: Restart,
        lookup: Lookup,
        audit: AuditLog,
        attempts: int = 3,
        backoff_s: float = 5.0,
        recovery_timeout_s: float = 30.0,
        poll_s: float = 0.5,
    ) -> None:
        self.probe = probe
        self.restart = restart
        self.lookup = lookup
        self.audit = audit
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.recovery_timeout_s = recovery_timeout_s
        self.poll_s = poll_s
        self.tracked: dict[str, Tracked] = {}
        self.recovering: dict[str, asyncio.Task] = {}

    async def observe(self, states: list[InstanceState]) -> None:
        """Probe every watched instance once; start recoveries for those that turned unhealthy."""
        seen = set()
        for state in states:
            instance = state.instance
            if instance.service in IGNORED_SERVICES:
                continue
            seen.add(instance.instance_id)
            tracked = self.tracked.setdefault(instance.instance_id, Tracked(instance))
            tracked.instance = instance
            if instance.instance_id in self.recovering:
                continue
            ok, reason = await self.probe(state)
            if ok:
                tracked.failures, tracked.healthy, tracked.last_reason = 0, True, ""
                continue
            tracked.failures += 1
            tracked.last_reason = reason
            # A process the registry knows is gone will not answer a second probe either: no
            # need to wait for three (that alone cost 2 s of the 5 s a replica has to come back).
            if (tracked.failures >= FAILURES_TO_UNHEALTHY or state.process_gone) and tracked.healthy:
                tracked.healthy = False
                log.warning("%s unhealthy after %d failed probes: %s", instance.instance_id, tracked.failures, reason)
                why = f"process gone: {reason}" if state.process_gone else f"{tracked.failures} consecutive failed health checks: {reason}"
                self.start_recovery(instance, why)
        for gone in set(self.tracked) - seen:  # deregistered cleanly: no longer watched
            if gone not in self.recovering:
                del self.tracked[gone]

    async def trigger(self, action: str, instance_id: str, reason: str, dry_run: bool = False) -> AuditEntry:
        """Run an action by hand (Recovery/Trigger); audited like automatic ones. A dry run
        checks the request as a real one would be checked, audits what would be done, and does
        nothing."""
        tracked = self.tracked.get(instance_id)
        if tracked is None:
            raise NotFound(f"instance_id: {quote(instance_id)} is not a watched instance")
        if instance_id in self.recovering:
            raise FailedPrecondition(f"instance_id: {quote(instance_id)} is already being recovered")
        if dry_run:
            entry = AuditEntry(uuid.uuid4().hex[:12], time.time(), action, tracked.instance.service, instance_id, reason,
                               f"dry run: would {action} {instance_id} (healthy: {tracked.healthy})", 0.0, "manual", True)
            self.audit.append(entry)
            return entry
        return await self.start_recovery(tracked.instance, reason, "manual")

    def start_recovery(self, instance: Instance, reason: str, trigger: str = "health_check") -> asyncio.Task:
        task = asyncio.create_task(self._recover(instance, reason, trigger), name=f"recover-{instance.instance_id}")
        self.recovering[instance.instance_id] = task
        task.add_done_callback(lambda _: self.recovering.pop(instance.instance_id, None))
        return task

    async def _recover(self, instance: Instance, reason: str, trigger: str = "health_check") -> AuditEntry:
        entry = None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            started = time.monotonic()
            outcome = await self._restart_once(instance, reason)
            entry = AuditEntry(
                action_id=uuid.uuid4().hex[:12],
                timestamp=time.time(),
                action="restart_service",
                service=instance.service,
                instance_id=instance.instance_id,
                reason=reason if attempt == 0 else f"{reason} (retry {attempt})",
                outcome=outcome,
                duration_s=time.monotonic() - started,
                trigger=trigger,
            )
            self.audit.append(entry)
            log.info("restart_service %s: %s", instance.instance_id, outcome)
            if outcome == "succeeded":
                tracked = self.tracked.get(instance.instance_id)
                if tracked:
                    tracked.failures, tracked.healthy = 0, True
                break
        return entry

    async def _restart_once(self, instance: Instance, reason: str) -> str:
        try:
            await self.restart(instance, reason)
        except Exception as error:
            return f"failed: restart refused: {error}"
        until = time.monotonic() + self.recovery_timeout_s
        last = ""
        while time.monotonic() < until:
            await asyncio.sleep(self.poll_s)
            # The restarted process registers anew (same id, new pid and port).
            state = await self.lookup(instance.instance_id)
            if state is None or state.instance.pid == instance.pid:
                last = "not registered again yet"
                continue
            ok, last = await self.probe(state)
            if ok and state.healthy:
                return "succeeded"
        return f"failed: not healthy {self.recovery_timeout_s:.0f}s after restart ({last})"
