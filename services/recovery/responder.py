"""Alerts in, verified actions out. Monitoring's incidents (WatchAlerts) are classified
(policies.py), mapped to the configured action, gated against flapping (one gate for every
action), verified, and audited: roll a model version back (held back on every inference replica;
rollbacks persist and are applied again to replicas that serve the version again), switch a
model's routes to their fallback and back, eject an outlier replica and readmit it, clear the
features cache, add a replica. No gRPC here: the calls to other services are injected."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.errors import FailedPrecondition, InvalidArgument, MeshError, NotFound, quote
from services.recovery.audit import AuditEntry, AuditLog
from services.recovery.policies import Alert, Gate, classify
from services.recovery.promotion import PromotionGate
from services.recovery.rollbacks import RolledBack, Rollbacks, parse_version_target
from services.recovery.ejections import Ejection, Ejections
from services.recovery.route_switch import Switches, back, to_fallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionControl:
    """The inference replicas' repository calls, per replica."""

    hold: Callable[[str, str, str], Awaitable[list[str]]]
    """(model, version, reason) -> problems (one per replica that refused); holds it back everywhere."""
    serving: Callable[[str, str], Awaitable[list[str]]]
    """(model, version) -> the replicas that still serve it (READY)."""
    release: Callable[[str], Awaitable[list[str]]]
    """(model) -> problems; loads the model again on every replica, lifting its holds."""
    alternatives: Callable[[str, str], Awaitable[list[str]]]
    """(model, version) -> the model's other versions that some replica serves, or would serve
    once this one is held back (its version policy loads the ones before it)."""


@dataclass(frozen=True)
class RoutingControl:
    """The routers' configuration (Router/GetRoutingConfig and ApplyRoutingConfig)."""

    get: Callable[[], Awaitable[tuple[str, str]]]
    """() -> (version, YAML document)."""
    apply: Callable[[str], Awaitable[str]]
    """(YAML document) -> the version now in effect."""


AddReplica = Callable[[str, str], Awaitable[str]]
"""(service, reason) -> the verified outcome ("succeeded: ...", "failed: ...", "not run: ...")."""
ClearCache = Callable[[str], Awaitable[str]]
"""(reason) -> the outcome on every features instance."""


@dataclass(frozen=True)
class EjectionControl:
    """The registry's maintenance mode for one instance (registry.set_maintenance)."""

    eject: Callable[[str, str], Awaitable[str]]
    """(instance id, reason) -> the verified outcome; refuses to eject the last serving replica."""
    readmit: Callable[[str], Awaitable[str]]
    """(instance id) -> the outcome."""


def last_version(model: str, version: str) -> str:
    return f"v{version} is the last version of {model} that could serve; rolled back, {model} would answer nothing"


class AlertResponder:
    def __init__(self, policies: dict[str, str], gate: Gate, audit: AuditLog, rollbacks: Rollbacks, versions: VersionControl,
                 attempts: int = 3, backoff_s: float = 5.0, verify_timeout_s: float = 30.0, poll_s: float = 0.5,
                 latency_limit_ms: float = 10_000.0, add_replica: AddReplica | None = None,
                 routing: RoutingControl | None = None, switches: Switches | None = None,
                 clear_cache: ClearCache | None = None, ejection: EjectionControl | None = None,
                 ejections: Ejections | None = None, eject_s: float = 120.0, promotion: PromotionGate | None = None) -> None:
        self.policies, self.gate, self.audit, self.rollbacks, self.versions = policies, gate, audit, rollbacks, versions
        self.add_replica, self.routing, self.switches, self.clear_cache_on = add_replica, routing, switches, clear_cache
        self.ejection, self.ejections, self.eject_s = ejection, ejections, eject_s
        self.promotion = promotion
        self.attempts, self.backoff_s, self.verify_timeout_s, self.poll_s = attempts, backoff_s, verify_timeout_s, poll_s
        self.latency_limit_ms = latency_limit_ms
        self.running: set[asyncio.Task] = set()
        self.firing: dict[tuple[str, str], set[str]] = {}
        """(failure type, target) -> the rules open on it (undo waits for the last to resolve)."""

    def on_alert(self, alert: Alert) -> asyncio.Task | None:
        """Decide at once; run the action in the background (the alert stream keeps flowing)."""
        failure = classify(alert, self.latency_limit_ms)
        key = (failure, alert.target)
        action = self.policies.get(failure, "none")
        trigger = f"alert:{alert.rule}"
        if alert.status != "open":
            firing = self.firing.get(key, set())
            firing.discard(alert.rule)
            if firing:  # another rule still says the same of this target: nothing to undo yet
                return None
            self.firing.pop(key, None)
            self.gate.resolved(key)
            return self._undo(action, alert.target, f"{alert.rule} resolved", trigger)
        self.firing.setdefault(key, set()).add(alert.rule)
        run = self._action(action, alert.target, f"{alert.rule} ({failure}): {alert.message}", trigger)
        if run is None:
            return None
        allowed, why = self.gate.may_start(key)
        if not allowed:
            log.debug("alert %s on %s: %s not started: %s", alert.rule, alert.target, action, why)
            return None
        return self._spawn(self._gated(key, run()), f"{action}-{alert.target}")

    def _action(self, action: str, target: str, reason: str, trigger: str) -> Callable[[], Awaitable[AuditEntry]] | None:
        """What `action` would do for an open alert on `target`; None when there is nothing to do
        (no action, a target it cannot act on, or done already: an open alert is re-sent every
        evaluation round)."""
        if action == "switch_model":
            if self.switches is not None and self.switches.of(target):
                return None
            return lambda: self.switch_model(target, reason, trigger)
        if action == "eject_instance":
            instance_id = target.removeprefix("instance:")
            if instance_id == target or (self.ejections is not None and self.ejections.get(instance_id) is not None):
                return None
            return lambda: self.eject(instance_id, reason, trigger)
        if action == "clear_cache":
            return lambda: self.clear_cache(reason, trigger)
        if action == "scale_up":  # alerts name models; every model is served by the inference service
            return lambda: self.scale_up("inference", reason, trigger)
        if action == "rollback_version":
            try:
                model, version = parse_version_target(target)
            except ValueError as error:
                log.warning("cannot roll back %s: %s", target, error)
                return None
            if self.rollbacks.get(model, version) is not None:
                return None
            return lambda: self._rollback_with_retries(model, version, reason, trigger)
        return None

    def _undo(self, action: str, target: str, reason: str, trigger: str) -> asyncio.Task | None:
        """The alert resolved: switch routes back, readmit an ejected replica."""
        if action == "switch_model" and self.switches is not None and self.switches.of(target):
            return self._spawn(self.switch_back(target, reason, trigger), f"switch-back-{target}")
        instance_id = target.removeprefix("instance:")
        if action == "eject_instance" and self.ejections is not None and self.ejections.get(instance_id) is not None:
            return self._spawn(self.readmit(instance_id, reason, trigger), f"readmit-{instance_id}")
        return None

    def _spawn(self, coroutine, name: str) -> asyncio.Task:
        task = asyncio.create_task(coroutine, name=name)
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return task

    async def _gated(self, key: tuple[str, str], action: Awaitable[AuditEntry]) -> AuditEntry:
        """Run one action the gate let start, and tell the gate how it ended."""
        entry = None
        try:
            entry = await action
        finally:
            self.gate.done(key, entry is not None and not entry.outcome.startswith("failed"))
        return entry

    async def switch_model(self, model: str, reason: str, trigger: str) -> AuditEntry:
        """Every route of `model` that has a fallback answers with the fallback first; verified
        by reading the configuration back; remembered, to switch back when the alert resolves."""
        started = time.monotonic()
        if self.routing is None or self.switches is None:
            outcome = "not run: no router to reconfigure"
        else:
            try:
                _, document = await self.routing.get()
                changed, switches = to_fallback(document, model)
                if not switches:
                    outcome = f"not run: no route of {model} names a fallback"
                else:
                    applied = await self.routing.apply(changed)
                    version, _ = await self.routing.get()
                    if version != applied:
                        outcome = f"failed: routing version {version} in effect, not {applied}"
                    else:
                        self.switches.add(switches)
                        outcome = f"succeeded: {', '.join(f'{s.route} -> {s.fallback}' for s in switches)} (routing {applied})"
            except MeshError as error:
                outcome = f"failed: {error.status}: {error.message[:300]}"
        return self._audit("switch_model", model, reason, outcome, time.monotonic() - started, trigger, service="router")

    async def switch_back(self, model: str, reason: str, trigger: str) -> AuditEntry:
        started = time.monotonic()
        switches = self.switches.of(model)
        try:
            _, document = await self.routing.get()
            changed, restored = back(document, switches)
            if restored:
                await self.routing.apply(changed)
            self.switches.remove(switches)  # routes changed by someone else since are theirs now
            outcome = f"succeeded: {', '.join(f'{s.route} -> {s.primary}' for s in restored) or 'nothing left to switch back'}"
        except MeshError as error:
            outcome = f"failed: {error.status}: {error.message[:300]}"
        return self._audit("switch_back", model, reason, outcome, time.monotonic() - started, trigger, service="router")

    async def eject(self, instance_id: str, reason: str, trigger: str) -> AuditEntry:
        """Out of every balancer's resolution (registry maintenance) for at most `eject_s`;
        verified by resolving the service again; readmitted when the alert resolves."""
        started = time.monotonic()
        if self.ejection is None or self.ejections is None:
            outcome = "not run: no registry to eject from"
        else:
            outcome = await self.ejection.eject(instance_id, reason[:200])
            if outcome.startswith("succeeded"):
                self.ejections.add(Ejection(instance_id, reason, time.time() + self.eject_s))
        return self._audit("eject_instance", instance_id, reason, outcome, time.monotonic() - started, trigger)

    async def readmit(self, instance_id: str, reason: str, trigger: str) -> AuditEntry:
        started = time.monotonic()
        outcome = await self.ejection.readmit(instance_id)
        self.ejections.remove(instance_id)
        return self._audit("readmit_instance", instance_id, reason, outcome, time.monotonic() - started, trigger)

    async def readmit_expired(self, now: float | None = None) -> list[AuditEntry]:
        """Ejections past their time end whatever the alert says (part of the reconcile loop)."""
        now = time.time() if now is None else now
        if self.ejections is None:
            return []
        return [await self.readmit(e.instance_id, f"ejection ended after {self.eject_s:.0f}s", "reconcile")
                for e in self.ejections.all() if e.until <= now]

    async def clear_cache(self, reason: str, trigger: str) -> AuditEntry:
        started = time.monotonic()
        outcome = await self.clear_cache_on(reason) if self.clear_cache_on is not None else "not run: no features service to clear"
        return self._audit("clear_cache", "features", reason, outcome, time.monotonic() - started, trigger, service="features")

    async def scale_up(self, service: str, reason: str, trigger: str) -> AuditEntry:
        """One more replica (bounded; verified healthy), or nothing where replicas are the
        orchestrator's; audited either way."""
        started = time.monotonic()
        if self.add_replica is None:
            outcome = "not run: replicas are the orchestrator's here (e.g. the Kubernetes HPA)"
        else:
            outcome = await self.add_replica(service, reason)
        return self._audit("scale_up", service, reason, outcome, time.monotonic() - started, trigger, service=service)

    async def _rollback_with_retries(self, model: str, version: str, reason: str, trigger: str) -> AuditEntry:
        # A slow or shifted version still answers; holding back a model's last version that could
        # serve answers nothing (the comparison that flagged it may be with one gone since).
        # Recovery/Trigger checks the same before its own rollback.
        if not await self.versions.alternatives(model, version):
            return self._audit("rollback_version", f"{model}:{version}", reason, f"not run: {last_version(model, version)}", 0.0, trigger)
        entry = None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            entry = await self.rollback(model, version, reason if attempt == 0 else f"{reason} (retry {attempt})", trigger)
            if entry.outcome.startswith("succeeded"):
                break
        return entry

    async def rollback(self, model: str, version: str, reason: str, trigger: str) -> AuditEntry:
        """Hold the version back on every replica, record the rollback (so it sticks), and
        verify that no replica serves it; audited whatever the outcome."""
        started = time.monotonic()
        self.rollbacks.add(RolledBack(model, version, reason, time.time()))
        problems = await self.versions.hold(model, version, f"rolled back by recovery: {reason}"[:200])
        outcome = await self._verify_out(model, version, problems)
        return self._audit("rollback_version", f"{model}:{version}", reason, outcome, time.monotonic() - started, trigger)

    async def _verify_out(self, model: str, version: str, problems: list[str]) -> str:
        until = time.monotonic() + self.verify_timeout_s
        while True:
            still = await self.versions.serving(model, version)
            if not still:
                note = f" ({'; '.join(problems)})" if problems else ""
                return f"succeeded: no replica serves {model} v{version}{note}"
            if time.monotonic() >= until:
                return f"failed: still served by {', '.join(still)} {self.verify_timeout_s:.0f}s later{'; ' + '; '.join(problems) if problems else ''}"
            await asyncio.sleep(self.poll_s)

    async def reconcile(self) -> list[AuditEntry]:
        """Apply every recorded rollback again where a replica serves the version (it restarted,
        or a new replica came up); audited."""
        entries = []
        for rolled in self.rollbacks.all():
            still = await self.versions.serving(rolled.model, rolled.version)
            if still:
                started = time.monotonic()
                problems = await self.versions.hold(rolled.model, rolled.version, f"rolled back by recovery: {rolled.reason}"[:200])
                outcome = await self._verify_out(rolled.model, rolled.version, problems)
                entries.append(self._audit("rollback_version", rolled.target, f"reapplied on {', '.join(still)}: {rolled.reason}",
                                           outcome, time.monotonic() - started, "reconcile"))
        return entries

    async def trigger(self, action: str, target: str, reason: str, dry_run: bool = False) -> AuditEntry:
        """Recovery/Trigger for version actions — rollback_version or release_version of
        `model:version` —, scale_up of a service, switch_model / switch_back of a model."""
        if action in ("promote_version", "rollback_promotion"):
            return await self._promotion(action, target, reason, dry_run)
        if action == "clear_cache":
            if dry_run:
                return self._audit(action, "features", reason, "dry run: would clear the features cache", 0.0, "manual", dry_run=True,
                                   service="features")
            return await self.clear_cache(reason, "manual")
        if action == "scale_up":
            if dry_run:
                return self._audit(action, target, reason, f"dry run: would add a replica of {target}", 0.0, "manual", dry_run=True)
            return await self.scale_up(target, reason, "manual")
        if action in ("switch_model", "switch_back"):
            switched = self.switches is not None and bool(self.switches.of(target))
            if action == "switch_back" and not switched:
                raise NotFound(f"target: no route of {quote(target)} is switched to its fallback")
            if action == "switch_model" and switched:
                raise FailedPrecondition(f"target: the routes of {quote(target)} are switched already")
            if dry_run:
                return self._audit(action, target, reason, f"dry run: would {action} {target}", 0.0, "manual", dry_run=True, service="router")
            return await (self.switch_model if action == "switch_model" else self.switch_back)(target, reason, "manual")
        try:
            model, version = parse_version_target(target)
        except ValueError as error:
            raise InvalidArgument(f"target: {error}") from None
        rolled = self.rollbacks.get(model, version)
        if action == "release_version" and rolled is None:
            raise NotFound(f"target: {quote(target)} is not rolled back")
        if action == "rollback_version" and rolled is not None:
            raise FailedPrecondition(f"target: {quote(target)} is rolled back already")
        if action == "rollback_version" and not await self.versions.alternatives(model, version):
            raise FailedPrecondition(f"target: {last_version(model, version)} (RepositoryModelUnload takes a model out)")
        if dry_run:
            return self._audit(action, target, reason, f"dry run: would {action} {target}", 0.0, "manual", dry_run=True)
        if action == "rollback_version":
            return await self.rollback(model, version, reason, "manual")
        started = time.monotonic()
        self.rollbacks.remove(model, version)
        problems = await self.versions.release(model)
        outcome = f"failed: {'; '.join(problems)}" if problems else f"succeeded: {model} loaded again on every replica"
        return self._audit(action, target, reason, outcome, time.monotonic() - started, "manual")

    async def _promotion(self, action: str, target: str, reason: str, dry_run: bool) -> AuditEntry:
        """promote_version of `model:version` through the gate, or rollback_promotion of a model."""
        if self.promotion is None:
            raise FailedPrecondition("action: no model repository to keep stages in (promotion is not run here)")
        started = time.monotonic()
        if action == "promote_version":
            try:
                model, version = parse_version_target(target)
            except ValueError as error:
                raise InvalidArgument(f"target: {error}") from None
            outcome = await self.promotion.promote(model, version, reason, dry_run)
        else:
            if not target or ":" in target or "/" in target:
                raise InvalidArgument(f"target: a model's name (got {quote(target)})")
            outcome = await self.promotion.rollback(target, reason, dry_run)
        return self._audit(action, target, reason, outcome, time.monotonic() - started, "manual", dry_run=dry_run)

    def _audit(self, action: str, target: str, reason: str, outcome: str, duration_s: float, trigger: str,
               dry_run: bool = False, service: str = "inference") -> AuditEntry:
        entry = AuditEntry(uuid.uuid4().hex[:12], time.time(), action, service, target, reason, outcome, duration_s, trigger, dry_run)
        self.audit.append(entry)
        log.info("%s %s: %s", action, target, outcome)
        return entry
