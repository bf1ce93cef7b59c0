"""Recovery decisions with injected probes and restarts (no processes, no gRPC)."""

from __future__ import annotations

import asyncio


from mesh.discovery import Instance, InstanceState
from services.recovery.audit import AuditEntry, AuditLog
from services.recovery.recoverer import Recoverer

WORKER = Instance("inference", "inference-1", "127.0.0.1:1", pid=100)
SUPERVISOR = Instance("supervisor", "supervisor", "127.0.0.1:2", pid=1)


class World:
    """Probes answer from `health`; a restart gives the instance a new pid that is healthy."""

    def __init__(self, restart_works: bool = True) -> None:
        self.health = {"inference-1": True}
        self.restarts: list[tuple[str, str]] = []
        self.current = WORKER
        self.restart_works = restart_works

    async def probe(self, state):
        ok = self.health.get(state.instance.instance_id, True) and state.instance.pid == self.current.pid
        return ok, "" if ok else "health check: UNAVAILABLE"

    async def restart(self, instance, reason):
        self.restarts.append((instance.instance_id, reason))
        if self.restart_works:
            self.current = Instance(instance.service, instance.instance_id, "127.0.0.1:3", pid=self.current.pid + 1)
            self.health[instance.instance_id] = True

    async def lookup(self, instance_id):
        return InstanceState(self.current, True)


def make(tmp_path, world, attempts=3):
    return Recoverer(world.probe, world.restart, world.lookup, AuditLog(tmp_path / "audit.sqlite"), attempts=attempts, backoff_s=0.01, recovery_timeout_s=0.2, poll_s=0.01)


def test_three_failures_trigger_one_restart_that_succeeds(tmp_path):
    world = World()

    async def scenario():
        recoverer = make(tmp_path, world)
        states = [InstanceState(WORKER, True), InstanceState(SUPERVISOR, True)]
        world.health["inference-1"] = False
        for _ in range(2):
            await recoverer.observe(states)
        assert world.restarts == [] and recoverer.tracked["inference-1"].failures == 2
        await recoverer.observe(states)
        assert "inference-1" in recoverer.recovering
        await recoverer.observe(states)  # no second recovery while one runs
        await asyncio.gather(*recoverer.recovering.values())
        return recoverer

    recoverer = asyncio.run(scenario())
    assert len(world.restarts) == 1
    assert world.restarts[0][1] == "3 consecutive failed health checks: health check: UNAVAILABLE"
    (entry,) = recoverer.audit.entries()
    assert (entry.action, entry.instance_id, entry.outcome) == ("restart_service", "inference-1", "succeeded")
    assert recoverer.tracked["inference-1"].healthy and "supervisor" not in recoverer.tracked


def test_one_success_resets_the_failure_count(tmp_path):
    world = World()

    async def scenario():
        recoverer = make(tmp_path, world)
        states = [InstanceState(WORKER, True)]
        for healthy in (False, False, True, False, False):
            world.health["inference-1"] = healthy
            await recoverer.observe(states)
        return recoverer

    recoverer = asyncio.run(scenario())
    assert world.restarts == [] and recoverer.tracked["inference-1"].failures == 2


def test_failed_restarts_are_retried_then_given_up_and_audited(tmp_path):
    world = World(restart_works=False)

    async def scenario():
        recoverer = make(tmp_path, world, attempts=2)
        world.health["inference-1"] = False
        task = recoverer.start_recovery(WORKER, "test")
        return recoverer, await task

    recoverer, last = asyncio.run(scenario())
    assert len(world.restarts) == 2
    outcomes = [e.outcome for e in recoverer.audit.entries()]
    assert len(outcomes) == 2 and all(o.startswith("failed: not healthy") for o in outcomes)
    assert recoverer.audit.entries()[1].reason == "test (retry 1)" and last.outcome == outcomes[-1]


def test_the_audit_log_survives_a_restart_and_tells_its_listeners(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    heard = []
    log.listeners.append(heard.append)
    first = AuditEntry("1", 1.0, "restart_service", "s", "i", "r", "succeeded", 2.5, "health_check")
    second = AuditEntry("2", 2.0, "restart_service", "s", "i", "r", "dry run: would restart_service i", 0.0, "manual", True)
    log.append(first)
    log.append(second)
    assert heard == [first, second]
    log.close()
    again = AuditLog(tmp_path / "audit.sqlite")
    assert again.entries() == [first, second] and again.entries(1) == [second] and again.entries(0) == []
    assert AuditLog(tmp_path / "none.sqlite").entries() == []


def test_a_dry_run_trigger_audits_and_does_nothing(tmp_path):
    async def scenario():
        world = World()
        recoverer = make(tmp_path, world)
        await recoverer.observe([InstanceState(WORKER, True)])
        entry = await recoverer.trigger("restart_service", "inference-1", "check the runbook", dry_run=True)
        return world, recoverer, entry

    world, recoverer, entry = asyncio.run(scenario())
    assert entry.dry_run and entry.trigger == "manual" and entry.outcome.startswith("dry run: would restart_service inference-1")
    assert world.restarts == [] and recoverer.audit.entries() == [entry]


def test_a_process_the_registry_knows_is_gone_is_restarted_after_one_probe(tmp_path):
    world = World()

    async def scenario():
        recoverer = make(tmp_path, world)
        world.health["inference-1"] = False
        await recoverer.observe([InstanceState(WORKER, False, reason="pid 100 is not running", process_gone=True)])
        await asyncio.gather(*recoverer.recovering.values())

    asyncio.run(scenario())
    assert world.restarts == [("inference-1", "process gone: health check: UNAVAILABLE")]
