"""Alerts to verified, audited, non-flapping actions — with replicas faked in memory (the real
processes are in tests/e2e/test_recovery_faults.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml

from domain.errors import FailedPrecondition, InvalidArgument, NotFound
from services.recovery.audit import AuditLog
from services.recovery.policies import DEFAULT_POLICIES, Alert, Gate, classify
from services.recovery.ejections import Ejections
from services.recovery.responder import AlertResponder, EjectionControl, RoutingControl, VersionControl
from services.recovery.rollbacks import Rollbacks
from services.recovery.route_switch import Switches, back, to_fallback


@pytest.mark.parametrize(("signal", "value", "message", "failure"), [
    ("version_latency_ratio", 9.0, "", "version_regression"),
    ("version_error_excess", 0.3, "", "version_regression"),
    ("p99_ms", 12_000.0, "", "high_latency"),
    ("p99_ms", 900.0, "", "unknown"),  # slow, but under the 10 s of the reference's classification
    ("error_rate", 0.2, "", "high_error_rate"),
    ("error_rate", 0.05, "connection refused", "connection_failure"),
    ("memory_used", 0.95, "", "memory_exhaustion"),
    ("cpu_used", 0.95, "", "cpu_exhaustion"),
    ("drifted_features", 2.0, "", "drift"),
    ("availability", 0.5, "upstream timeout", "timeout_failure"),
])
def test_classification_follows_the_reference_order(signal, value, message, failure):
    assert classify(Alert("r", "ctr", signal, value, message)) == failure


class Replicas:
    """Two inference replicas' repository state; `stubborn` ignores holds (a replica that keeps
    serving whatever it is told)."""

    def __init__(self) -> None:
        self.serving = {"inference-1": {("ctr", "1"), ("ctr", "2")}, "inference-2": {("ctr", "1"), ("ctr", "2")}}
        self.stubborn: set[str] = set()
        self.holds: list[tuple[str, str, str]] = []

    async def hold(self, model, version, reason):
        self.holds.append((model, version, reason))
        for replica, versions in self.serving.items():
            if replica not in self.stubborn:
                versions.discard((model, version))
        return []

    async def still_serving(self, model, version):
        return sorted(r for r, versions in self.serving.items() if (model, version) in versions)

    async def release(self, model):
        for versions in self.serving.values():
            versions.add((model, "2"))
        return []

    async def alternatives(self, model, version):
        return sorted({v for versions in self.serving.values() for m, v in versions if m == model and v != version})


SLOW = Alert("version_slow", "ctr:2", "version_latency_ratio", 9.7, "version_slow: version_latency_ratio of ctr:2 is 9.7 (gt 3)")


def responder(tmp_path, replicas, clock=None, **kwargs):
    gate = Gate(cooldown_s=60.0, give_up_after=2, clock=clock or (lambda: 0.0))
    return AlertResponder(DEFAULT_POLICIES, gate, AuditLog(tmp_path / "audit.sqlite"), Rollbacks(tmp_path / "audit.sqlite"),
                          VersionControl(replicas.hold, replicas.still_serving, replicas.release, replicas.alternatives),
                          verify_timeout_s=0.2, poll_s=0.01, backoff_s=0.01, **kwargs)


def test_a_slow_version_is_rolled_back_once_verified_and_audited(tmp_path):
    replicas = Replicas()

    async def scenario():
        r = responder(tmp_path, replicas)
        entry = await r.on_alert(SLOW)
        again = r.on_alert(SLOW)  # the incident is re-sent every evaluation round: nothing more to do
        unknown = r.on_alert(Alert("custom", "ctr", "requests_per_second", 1.0, "quiet"))  # class unknown, policy: none
        return entry, again, unknown, r.audit.entries(), [x.target for x in r.rollbacks.all()]

    entry, again, unknown, audit, rolled = asyncio.run(scenario())
    assert (entry.action, entry.instance_id, entry.trigger) == ("rollback_version", "ctr:2", "alert:version_slow")
    assert entry.outcome == "succeeded: no replica serves ctr v2"
    assert again is None and unknown is None and len(audit) == 1 and rolled == ["ctr:2"]
    assert replicas.holds == [("ctr", "2", "rolled back by recovery: version_slow (version_regression): " + SLOW.message)]


def test_the_last_version_that_could_serve_a_model_is_never_rolled_back(tmp_path):
    replicas = Replicas()

    async def scenario():
        r = responder(tmp_path, replicas)
        first = await r.on_alert(SLOW)  # v1 still serves: v2 goes
        # Should v1 be flagged in turn (monitoring judges only newer versions; any rule might), it
        # is all that is left.
        last = await r.on_alert(Alert("version_slow", "ctr:1", "version_latency_ratio", 7.4, "version_slow: ctr:1 is 7.4 (gt 3)"))
        with pytest.raises(FailedPrecondition) as refused:
            await r.trigger("rollback_version", "ctr:1", "by hand")
        return first, last, refused.value, [x.target for x in r.rollbacks.all()]

    first, last, refused, rolled = asyncio.run(scenario())
    assert first.outcome == "succeeded: no replica serves ctr v2"
    assert last.outcome == "not run: v1 is the last version of ctr that could serve; rolled back, ctr would answer nothing"
    assert str(refused).startswith("target: v1 is the last version of ctr that could serve")
    assert rolled == ["ctr:2"] and [h[:2] for h in replicas.holds] == [("ctr", "2")]
    assert replicas.serving["inference-1"] == {("ctr", "1")}


def test_a_rollback_that_does_not_take_is_retried_then_given_up_and_the_gate_holds(tmp_path):
    replicas = Replicas()
    replicas.stubborn.add("inference-2")
    now = [0.0]

    async def scenario():
        r = responder(tmp_path, replicas, clock=lambda: now[0])
        r.attempts = 2
        last = await r.on_alert(SLOW)
        r.rollbacks.remove("ctr", "2")  # as if lifted: the gate alone decides now
        now[0] = 30.0
        in_cooldown = r.on_alert(SLOW)
        now[0] = 100.0
        second = await r.on_alert(SLOW)  # out of the cooldown: one more failed action -> gave up (2 failures)
        r.rollbacks.remove("ctr", "2")
        now[0] = 200.0
        given_up = r.on_alert(SLOW)
        r.on_alert(Alert(**{**SLOW.__dict__, "status": "resolved"}))  # resolved: a new alert starts afresh
        replicas.stubborn.clear()
        now[0] = 300.0
        fresh = await r.on_alert(SLOW)
        return last, in_cooldown, second, given_up, fresh, r.audit.entries()

    last, in_cooldown, second, given_up, fresh, audit = asyncio.run(scenario())
    assert last.outcome.startswith("failed: still served by inference-2") and "(retry 1)" in last.reason
    assert in_cooldown is None and second.outcome.startswith("failed") and given_up is None
    assert fresh.outcome.startswith("succeeded")
    assert [e.outcome.split(":")[0] for e in audit] == ["failed", "failed", "failed", "failed", "succeeded"]


def test_rollbacks_persist_are_reapplied_to_a_replica_that_serves_the_version_again_and_are_lifted_by_hand(tmp_path):
    replicas = Replicas()

    async def scenario():
        r = responder(tmp_path, replicas)
        await r.on_alert(SLOW)
        r.rollbacks.close()
        restarted = responder(tmp_path, replicas)  # recovery restarted: the rollback is still recorded
        replicas.serving["inference-3"] = {("ctr", "1"), ("ctr", "2")}  # a new replica loads every version
        (reapplied,) = await restarted.reconcile()
        nothing = await restarted.reconcile()
        with pytest.raises(FailedPrecondition):
            await restarted.trigger("rollback_version", "ctr:2", "again")
        with pytest.raises(InvalidArgument, match="target: target must be model:version"):
            await restarted.trigger("release_version", "ctr", "")
        dry = await restarted.trigger("release_version", "ctr:2", "fixed", dry_run=True)
        released = await restarted.trigger("release_version", "ctr:2", "fixed")
        with pytest.raises(NotFound):
            await restarted.trigger("release_version", "ctr:2", "")
        return reapplied, nothing, dry, released, restarted.rollbacks.all()

    reapplied, nothing, dry, released, left = asyncio.run(scenario())
    assert (reapplied.trigger, reapplied.outcome) == ("reconcile", "succeeded: no replica serves ctr v2")
    assert reapplied.reason.startswith("reapplied on inference-3: version_slow")
    assert nothing == [] and dry.dry_run and dry.outcome == "dry run: would release_version ctr:2"
    assert released.outcome == "succeeded: ctr loaded again on every replica" and left == []
    assert ("ctr", "2") in replicas.serving["inference-1"]


def test_high_latency_adds_a_replica_once_per_cooldown_and_under_an_orchestrator_leaves_it_to_the_autoscaler(tmp_path):
    replicas, added = Replicas(), []

    async def add_replica(service, reason):
        added.append((service, reason))
        return "succeeded: inference-3 serving"

    slow = Alert("latency_doubled", "ctr", "p99_ms", 12_500.0, "latency_doubled: p99_ms of ctr is 1.25e+04")

    async def scenario():
        local = responder(tmp_path / "local", replicas, add_replica=add_replica)
        entry = await local.on_alert(slow)
        again = local.on_alert(slow)  # within the cooldown
        manual = await local.trigger("scale_up", "features", "by hand")
        elsewhere = await responder(tmp_path / "k8s", replicas).on_alert(slow)
        return entry, again, manual, elsewhere

    entry, again, manual, elsewhere = asyncio.run(scenario())
    assert (entry.action, entry.service, entry.outcome, entry.trigger) == ("scale_up", "inference", "succeeded: inference-3 serving",
                                                                          "alert:latency_doubled")
    assert again is None and added[0][0] == "inference" and "high_latency" in added[0][1]
    assert (manual.service, manual.trigger) == ("features", "manual")
    assert elsewhere.outcome == "not run: replicas are the orchestrator's here (e.g. the Kubernetes HPA)"


ROUTING = """default_route: search
routes:
  search: {ensemble: ctr_ensemble, fallback: ctr_stacking}
  display: {ensemble: ctr_ensemble}
  conversion: {ensemble: cvr_ensemble, fallback: ctr_ensemble}
"""


class Routers:
    """The routing document every router follows, with a version per content."""

    def __init__(self) -> None:
        self.document, self.applied = ROUTING, []

    async def get(self):
        return str(hash(self.document)), self.document

    async def apply(self, document):
        self.applied.append(document)
        self.document = document
        return str(hash(document))


def test_a_failing_model_s_routes_switch_to_their_fallback_and_back_when_the_alert_resolves(tmp_path):
    routers = Routers()
    errors = Alert("high_error_rate", "ctr_ensemble", "error_rate", 0.4, "high_error_rate: error_rate of ctr_ensemble is 0.4 (gt 0.1)")

    async def scenario():
        r = responder(tmp_path, Replicas(), routing=RoutingControl(routers.get, routers.apply), switches=Switches(tmp_path / "audit.sqlite"))
        switched = await r.on_alert(errors)
        during = yaml.safe_load(routers.document)["routes"]
        again = r.on_alert(errors)  # switched already
        restored = await r.on_alert(Alert(**{**errors.__dict__, "status": "resolved"}))
        return switched, during, again, restored

    switched, during, again, restored = asyncio.run(scenario())
    assert (switched.action, switched.service, switched.instance_id) == ("switch_model", "router", "ctr_ensemble")
    assert switched.outcome.startswith("succeeded: search -> ctr_stacking (routing ")
    assert during["search"] == {"ensemble": "ctr_stacking", "fallback": "ctr_ensemble"}
    assert during["display"] == {"ensemble": "ctr_ensemble"} and during["conversion"]["ensemble"] == "cvr_ensemble"  # no fallback / not its model
    assert again is None
    assert (restored.action, restored.outcome) == ("switch_back", "succeeded: search -> ctr_ensemble")
    assert yaml.safe_load(routers.document) == yaml.safe_load(ROUTING)


def test_switching_back_leaves_a_route_an_operator_changed_since():
    document, switches = to_fallback(ROUTING, "ctr_ensemble")
    edited = document.replace("ensemble: ctr_stacking", "ensemble: quality_ensemble")
    restored_document, restored = back(edited, switches)
    assert restored == [] and yaml.safe_load(restored_document)["routes"]["search"]["ensemble"] == "quality_ensemble"


def test_drift_clears_the_features_cache_once_per_cooldown(tmp_path):
    cleared = []

    async def clear(reason):
        cleared.append(reason)
        return "succeeded: 812 cached ids dropped on features-1"

    drift = Alert("feature_drift", "ctr_ensemble", "drifted_features", 1.0, "feature_drift: drifted_features of ctr_ensemble is 1 (gt 0): age")

    async def scenario():
        r = responder(tmp_path, Replicas(), clear_cache=clear)
        entry = await r.on_alert(drift)
        return entry, r.on_alert(drift)

    entry, again = asyncio.run(scenario())
    assert (entry.action, entry.service, entry.outcome) == ("clear_cache", "features", "succeeded: 812 cached ids dropped on features-1")
    assert again is None and len(cleared) == 1 and "age" in cleared[0]


def test_an_outlier_replica_is_ejected_then_readmitted_when_its_alert_resolves_or_its_time_is_up(tmp_path):
    calls = []

    async def eject(instance_id, reason):
        calls.append(("eject", instance_id))
        return f"succeeded: {instance_id} out of inference's resolution"

    async def readmit(instance_id):
        calls.append(("readmit", instance_id))
        return f"succeeded: {instance_id} back in inference's resolution"

    slow = Alert("instance_slow", "instance:inference-2", "instance_latency_ratio", 6.5, "instance_slow: ... is 6.5 (gt 3)")

    async def scenario():
        r = responder(tmp_path, Replicas(), ejection=EjectionControl(eject, readmit), ejections=Ejections(tmp_path / "audit.sqlite"),
                      eject_s=60.0)
        ejected = await r.on_alert(slow)
        again = r.on_alert(slow)  # out already
        readmitted = await r.on_alert(Alert(**{**slow.__dict__, "status": "resolved"}))
        r.gate = Gate(cooldown_s=0.0, give_up_after=2)
        await r.on_alert(slow)
        early = await r.readmit_expired(now=time.time() + 30)
        late = await r.readmit_expired(now=time.time() + 61)
        return ejected, again, readmitted, early, late

    ejected, again, readmitted, early, late = asyncio.run(scenario())
    assert (ejected.action, ejected.instance_id, ejected.trigger) == ("eject_instance", "inference-2", "alert:instance_slow")
    assert again is None and (readmitted.action, readmitted.outcome) == ("readmit_instance", "succeeded: inference-2 back in inference's resolution")
    assert early == [] and [(e.action, e.trigger) for e in late] == [("readmit_instance", "reconcile")]
    assert calls == [("eject", "inference-2"), ("readmit", "inference-2"), ("eject", "inference-2"), ("readmit", "inference-2")]


def test_a_replica_two_rules_found_out_stays_out_until_both_resolve(tmp_path):
    calls = []

    async def eject(instance_id, reason):
        calls.append(("eject", instance_id))
        return "succeeded"

    async def readmit(instance_id):
        calls.append(("readmit", instance_id))
        return "succeeded"

    slow = Alert("instance_slow", "instance:inference-2", "instance_latency_ratio", 3.4, "slow")
    stalls = Alert("instance_stalls", "instance:inference-2", "instance_outrun_excess", 0.7, "stalls")

    async def scenario():
        r = responder(tmp_path, Replicas(), ejection=EjectionControl(eject, readmit), ejections=Ejections(tmp_path / "audit.sqlite"))
        await r.on_alert(stalls)
        assert r.on_alert(slow) is None  # the same failure of the same replica: out already
        assert r.on_alert(Alert(**{**slow.__dict__, "status": "resolved"})) is None  # instance_stalls still open
        return await r.on_alert(Alert(**{**stalls.__dict__, "status": "resolved"}))

    readmitted = asyncio.run(scenario())
    assert (readmitted.action, readmitted.trigger) == ("readmit_instance", "alert:instance_stalls")
    assert calls == [("eject", "inference-2"), ("readmit", "inference-2")]
