"""Alert rules over the monitoring signals, and incidents that survive restarts. No gRPC here.

A rule compares one signal of one target (a model, or "*" for every model seen) with a
threshold: gt, lt, eq / ne (equal within 0.001), or pct_increase (the rise in percent against
the signal's value `window_s` ago, shared/REFERENCE.md's history window, 300 s by default).
A firing rule opens an incident for (rule, target), or counts another occurrence of the open
one (deduplicated: count, first and last seen); when it has stopped firing for the rule's
keep_firing_s the incident is resolved.
Incidents live in SQLite (the embedded default), so a restart loses none.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mesh.sqlite_db import Database

OPS = ("gt", "lt", "eq", "ne", "pct_increase")
_INCIDENT_COLUMNS = "rule, target, severity, message, count, first_seen, last_seen, status, resolved_at, signal, value"
EQUAL_WITHIN = 0.001
ACTIVE_S = 3600.0


@dataclass(frozen=True)
class AlertRule:
    name: str
    signal: str
    """error_rate, availability, p50_ms, p99_ms, requests_per_second, burn_rate (fastest pair's
    long window), drifted_features."""
    op: Literal["gt", "lt", "eq", "ne", "pct_increase"]
    threshold: float
    severity: str = "high"
    target: str = "*"
    window_s: float = 300.0
    message: str = "{rule}: {signal} of {target} is {value:.4g} ({op} {threshold:g})"
    for_s: float = 0.0
    """The rule fires only once its condition has held this long (Prometheus' `for`): a single
    evaluation above the threshold, e.g. one busy moment on a shared machine, opens nothing."""
    keep_firing_s: float = 0.0
    """An incident stays open this long after the rule last fired (Prometheus' keep_firing_for):
    a value hovering at the threshold, or a target whose traffic an action stopped, does not
    resolve it at once and undo the action."""


@dataclass(frozen=True)
class Incident:
    rule: str
    target: str
    severity: str
    message: str
    count: int
    first_seen: float
    last_seen: float
    status: Literal["open", "resolved"]
    resolved_at: float = 0.0
    signal: str = ""
    """What the rule reads (error_rate, version_latency_ratio, ...): what a recovery policy classifies."""
    value: float = 0.0
    """The signal's value at the last evaluation that found the rule firing."""

    def active(self, now: float) -> bool:
        return self.status == "open" and now - self.last_seen <= ACTIVE_S


class RuleEvaluator:
    """Decides which rules fire; keeps each (rule, target)'s history for pct_increase."""

    def __init__(self, rules: list[AlertRule]) -> None:
        self.rules = rules
        self._history: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._pending: dict[tuple[str, str], float] = {}

    def firing(self, signals: dict[str, dict[str, float]], now: float) -> list[tuple[AlertRule, str, float]]:
        """signals: target -> signal -> value. (rule, target, value) of every rule that fires."""
        fired = []
        for rule in self.rules:
            targets = signals if rule.target == "*" else {rule.target: signals.get(rule.target, {})}
            for target, values in targets.items():
                value = values.get(rule.signal)
                key = (rule.name, target)
                if value is None or not self._fires(rule, target, value, now):
                    self._pending.pop(key, None)
                    continue
                since = self._pending.setdefault(key, now)
                if now - since >= rule.for_s:
                    fired.append((rule, target, value))
        for key in [k for k in self._pending if k[1] not in signals]:  # a target gone quiet is no longer pending
            del self._pending[key]
        return fired

    def _fires(self, rule: AlertRule, target: str, value: float, now: float) -> bool:
        if rule.op == "gt":
            return value > rule.threshold
        if rule.op == "lt":
            return value < rule.threshold
        if rule.op == "eq":
            return abs(value - rule.threshold) < EQUAL_WITHIN
        if rule.op == "ne":
            return abs(value - rule.threshold) >= EQUAL_WITHIN
        history = self._history.setdefault((rule.name, target), deque())
        history.append((now, value))
        while len(history) > 1 and history[1][0] <= now - rule.window_s:
            history.popleft()  # keep the newest point at least window_s old as the reference
        then, before = history[0]
        if now - then < rule.window_s or before <= 0:
            return False  # no value window_s ago yet (or nothing to grow from)
        return (value - before) / before * 100.0 > rule.threshold


class IncidentStore:
    """Incidents in SQLite; one open incident per (rule, target)."""

    def __init__(self, path: Path) -> None:
        self._database = Database(
            path,
            "CREATE TABLE IF NOT EXISTS incidents (id INTEGER PRIMARY KEY, rule TEXT, target TEXT, severity TEXT, message TEXT,"
            " count INTEGER, first_seen REAL, last_seen REAL, status TEXT, resolved_at REAL)",
            "CREATE INDEX IF NOT EXISTS open_incidents ON incidents (rule, target, status)",
        )
        self._db, self._lock = self._database.connection, self._database.lock
        with self._lock, self._db:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(incidents)")}
            for column, kind in (("signal", "TEXT DEFAULT ''"), ("value", "REAL DEFAULT 0")):
                if column not in columns:  # a store written before these columns existed
                    self._db.execute(f"ALTER TABLE incidents ADD COLUMN {column} {kind}")

    def record(self, rule: AlertRule, target: str, value: float, now: float, detail: str = "") -> tuple[Incident, bool]:
        """Open an incident or count one more occurrence; (incident, newly opened). `detail`
        (e.g. which features drifted) follows the rule's message."""
        message = rule.message.format(rule=rule.name, signal=rule.signal, target=target, value=value, op=rule.op, threshold=rule.threshold)
        if detail:
            message = f"{message}: {detail}"[:1000]
        with self._lock, self._db:
            row = self._db.execute("SELECT id FROM incidents WHERE rule=? AND target=? AND status='open'", (rule.name, target)).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO incidents (rule, target, severity, message, count, first_seen, last_seen, status, resolved_at, signal, value)"
                    " VALUES (?, ?, ?, ?, 1, ?, ?, 'open', 0, ?, ?)", (rule.name, target, rule.severity, message, now, now, rule.signal, value))
                opened = True
            else:
                self._db.execute("UPDATE incidents SET count=count+1, last_seen=?, message=?, value=? WHERE id=?", (now, message, value, row[0]))
                opened = False
        return self.latest(rule.name, target), opened

    def resolve(self, rule: str, target: str, now: float) -> Incident | None:
        with self._lock, self._db:
            changed = self._db.execute("UPDATE incidents SET status='resolved', resolved_at=? WHERE rule=? AND target=? AND status='open'",
                                       (now, rule, target)).rowcount
        return self.latest(rule, target) if changed else None

    def spans(self, signal_prefix: str, since: float) -> list[tuple[str, float, float]]:
        """(target, opened, resolved or inf) of the incidents on signals starting with
        `signal_prefix` that were open at some time since `since`."""
        with self._lock:
            rows = self._db.execute("SELECT target, first_seen, status, resolved_at FROM incidents WHERE substr(signal, 1, ?) = ?"
                                    " AND (status='open' OR resolved_at >= ?)", (len(signal_prefix), signal_prefix, since)).fetchall()
        return [(target, opened, math.inf if status == "open" else resolved) for target, opened, status, resolved in rows]

    def open_keys(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._db.execute("SELECT rule, target FROM incidents WHERE status='open'").fetchall())

    def list(self, include_resolved: bool = True, limit: int = 1000) -> list[Incident]:
        query = f"SELECT {_INCIDENT_COLUMNS} FROM incidents"
        if not include_resolved:
            query += " WHERE status='open'"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Incident(*row) for row in rows]

    def latest(self, rule: str, target: str) -> Incident:
        """The newest incident of (rule, target): the open one when there is one."""
        with self._lock:
            row = self._db.execute(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE rule=? AND target=? ORDER BY id DESC LIMIT 1",
                                   (rule, target)).fetchone()
        return Incident(*row)

    def close(self) -> None:
        self._db.close()


class Alerting:
    """One evaluation round: rules against signals, incidents opened, counted and resolved;
    returns the incidents that changed (for WatchAlerts)."""

    def __init__(self, evaluator: RuleEvaluator, store: IncidentStore, clock=time.time) -> None:
        self.evaluator = evaluator
        self.store = store
        self.clock = clock
        self._keep = {rule.name: rule.keep_firing_s for rule in evaluator.rules}

    def evaluate(self, signals: dict[str, dict[str, float]], details: dict[str, dict[str, str]] | None = None) -> list[Incident]:
        """`details`: target -> signal -> what the value stands for (named in the message)."""
        now = self.clock()
        changed = []
        fired = self.evaluator.firing(signals, now)
        still = set()
        for rule, target, value in fired:
            incident, _ = self.store.record(rule, target, value, now, (details or {}).get(target, {}).get(rule.signal, ""))
            still.add((rule.name, target))
            changed.append(incident)
        for rule_name, target in self.store.open_keys() - still:
            keep = self._keep.get(rule_name, 0.0)
            if keep and now - self.store.latest(rule_name, target).last_seen < keep:
                continue
            resolved = self.store.resolve(rule_name, target, now)
            if resolved is not None:
                changed.append(resolved)
        return changed
