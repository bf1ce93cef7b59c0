"""What recovery does about an alert: classify the failure (shared/REFERENCE.md's order, plus
the version and drift classes monitoring now raises), pick the configured action, and keep it
from flapping — one action at a time per (failure type, target), a cooldown after each, and
giving up after repeated failures until the alert resolves. No gRPC here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FAILURE_TYPES = ("version_regression", "instance_outlier", "high_latency", "high_error_rate", "memory_exhaustion", "cpu_exhaustion",
                 "drift", "connection_failure", "timeout_failure", "unknown")
ALERT_ACTIONS = ("none", "rollback_version", "scale_up", "switch_model", "clear_cache", "eject_instance")
"""Actions an alert can set off. Restarts follow failed health checks (recoverer.py), not alerts:
an alert names a model or a version, and restarting every replica of a model is never the fix."""

DEFAULT_POLICIES = {failure: "none" for failure in FAILURE_TYPES} | {
    "version_regression": "rollback_version", "high_latency": "scale_up", "cpu_exhaustion": "scale_up",
    "high_error_rate": "switch_model", "drift": "clear_cache", "instance_outlier": "eject_instance"}
"""Drift clears the features service's cache of online-store lookups: entity features cached
before a store refresh are one cause of inputs that look shifted, and dropping them is cheap
(the next lookups read the store)."""


@dataclass(frozen=True)
class Alert:
    """What recovery reads of a monitoring incident."""

    rule: str
    target: str
    signal: str
    value: float
    message: str
    severity: str = "high"
    status: str = "open"


def classify(alert: Alert, latency_limit_ms: float = 10_000.0) -> str:
    """The failure type, in shared/REFERENCE.md's order (latency over the limit, error rate over
    0.1, memory over 0.9, CPU over 0.9, "connection" / "timeout" in the message), with a version
    compared against its model's production version first: that one has a precise fix."""
    signal, value, message = alert.signal, alert.value, alert.message.lower()
    if signal.startswith("version_"):
        return "version_regression"
    if signal.startswith("instance_"):
        return "instance_outlier"
    if signal.endswith("_ms") and value > latency_limit_ms:
        return "high_latency"
    if signal == "error_rate" and value > 0.1:
        return "high_error_rate"
    if signal.startswith("memory") and value > 0.9:
        return "memory_exhaustion"
    if signal.startswith("cpu") and value > 0.9:
        return "cpu_exhaustion"
    if "drift" in signal:
        return "drift"
    if "connection" in message:
        return "connection_failure"
    if "timeout" in message:
        return "timeout_failure"
    return "unknown"


@dataclass
class _KeyState:
    busy: bool = False
    last_done: float = float("-inf")
    failures: int = 0


@dataclass
class Gate:
    """When an action on (failure type, target) may run."""

    cooldown_s: float = 300.0
    give_up_after: int = 3
    clock: object = time.monotonic
    _keys: dict[tuple[str, str], _KeyState] = field(default_factory=dict)

    def may_start(self, key: tuple[str, str]) -> tuple[bool, str]:
        state = self._keys.setdefault(key, _KeyState())
        if state.busy:
            return False, "an action on it is running"
        if state.failures >= self.give_up_after:
            return False, f"gave up after {state.failures} failed actions (until its alert resolves)"
        if self.clock() - state.last_done < self.cooldown_s:
            return False, "cooling down"
        state.busy = True
        return True, ""

    def done(self, key: tuple[str, str], succeeded: bool) -> None:
        state = self._keys.setdefault(key, _KeyState())
        state.busy, state.last_done = False, self.clock()
        state.failures = 0 if succeeded else state.failures + 1

    def resolved(self, key: tuple[str, str]) -> None:
        """The alert resolved: a later one starts afresh (the cooldown still holds)."""
        state = self._keys.get(key)
        if state is not None:
            state.failures = 0
