"""Feedback: outcomes (clicks, conversions) joined to what was scored, within a bounded join
window; late, unknown, duplicate and other-label outcomes counted, never errors; every join kept
in SQLite so quality survives a restart. No gRPC here.

What was scored is kept per request (the router reports each Score once, with its candidates'
ad ids and every member's score), newest last, for `join_window_s` and at most `capacity`
requests: memory is bounded by both, whatever the traffic. Requests that fell out are
remembered by id a while longer, so an outcome for one of them is counted late, not unknown.
"""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from domain.models.repository import CONFIG_FILE
from mesh.sqlite_db import Database

LABELS = ("click", "conversion", "engagement")


@dataclass(frozen=True)
class Scored:
    """One Score as the router reported it."""

    model: str
    version: str
    route: str
    arm: str
    timestamp: float
    ad_ids: tuple[str, ...]
    scores: np.ndarray
    member_names: tuple[str, ...]
    member_scores: np.ndarray
    """[candidates, members]."""


@dataclass(frozen=True)
class Outcome:
    request_id: str
    ad_id: str
    label: str
    positive: bool
    timestamp: float


@dataclass(frozen=True)
class Joined:
    """An outcome with what was scored for it."""

    request_id: str
    ad_id: str
    label: str
    positive: bool
    outcome_at: float
    model: str
    version: str
    route: str
    arm: str
    scored_at: float
    score: float
    member_names: tuple[str, ...]
    member_scores: tuple[float, ...]


class ScoredRequests:
    """request_id -> Scored, oldest first, bounded by age and count."""

    def __init__(self, join_window_s: float = 600.0, capacity: int = 200_000) -> None:
        self.join_window_s, self.capacity = join_window_s, capacity
        self._live: OrderedDict[str, Scored] = OrderedDict()
        self._expired: OrderedDict[str, None] = OrderedDict()

    def add(self, request_id: str, scored: Scored, now: float | None = None) -> None:
        if not request_id or not scored.ad_ids:
            return
        self._live[request_id] = scored
        self._live.move_to_end(request_id)
        self._evict(time.time() if now is None else now)

    def _evict(self, now: float) -> None:
        while self._live:
            request_id, oldest = next(iter(self._live.items()))
            if len(self._live) <= self.capacity and oldest.timestamp >= now - self.join_window_s:
                break
            self._live.popitem(last=False)
            self._expired[request_id] = None
        while len(self._expired) > self.capacity:
            self._expired.popitem(last=False)

    def get(self, request_id: str, now: float) -> tuple[Scored | None, bool]:
        """(what was scored, or None; whether the request was known but its window passed)."""
        self._evict(now)
        scored = self._live.get(request_id)
        if scored is not None and scored.timestamp < now - self.join_window_s:
            return None, True
        return scored, scored is None and request_id in self._expired

    def __len__(self) -> int:
        return len(self._live)


class JoinStore:
    """Joined outcomes in SQLite, one row each; (request_id, ad_id, label) is unique."""

    def __init__(self, path: Path) -> None:
        self._database = Database(
            path,
            "CREATE TABLE IF NOT EXISTS joins (request_id TEXT, ad_id TEXT, label TEXT, positive INTEGER, outcome_at REAL,"
            " model TEXT, version TEXT, route TEXT, arm TEXT, scored_at REAL, score REAL, members TEXT,"
            " PRIMARY KEY (request_id, ad_id, label))",
            "CREATE INDEX IF NOT EXISTS joins_by_time ON joins (outcome_at)",
        )
        self._db, self._lock = self._database.connection, self._database.lock

    def add(self, joined: list[Joined]) -> list[bool]:
        """Insert each; False for one joined before (a duplicate)."""
        added = []
        with self._lock, self._db:
            for j in joined:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO joins VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (j.request_id, j.ad_id, j.label, int(j.positive), j.outcome_at, j.model, j.version, j.route, j.arm,
                     j.scored_at, j.score, json.dumps(dict(zip(j.member_names, j.member_scores)))))
                added.append(cursor.rowcount > 0)
        return added

    def since(self, timestamp: float) -> list[Joined]:
        """Every join with an outcome at or after `timestamp`, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM joins WHERE outcome_at >= ? ORDER BY outcome_at", (timestamp,)).fetchall()
        joined = []
        for request_id, ad_id, label, positive, outcome_at, model, version, route, arm, scored_at, score, members in rows:
            members = json.loads(members)
            joined.append(Joined(request_id, ad_id, label, bool(positive), outcome_at, model, version, route, arm, scored_at, score,
                                 tuple(members), tuple(members.values())))
        return joined

    def prune(self, before: float) -> int:
        with self._lock, self._db:
            return self._db.execute("DELETE FROM joins WHERE outcome_at < ?", (before,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


class FeedbackJoiner:
    """Joins outcomes to Scores; `label_of(model, version)` says which label a model version was
    trained on (an outcome of another label is not its outcome)."""

    def __init__(self, scored: ScoredRequests, store: JoinStore, label_of) -> None:
        self.scored, self.store, self.label_of = scored, store, label_of
        self.counts: Counter[str] = Counter()

    def join(self, outcomes: list[Outcome], now: float | None = None) -> tuple[list[Joined], Counter[str]]:
        """(the new joins, and how each outcome ended: joined, late, unknown, duplicate, other_label)."""
        candidates, counts = self.match(outcomes, now)
        return self.settle(candidates, self.store.add(candidates) if candidates else [], counts)

    def match(self, outcomes: list[Outcome], now: float | None = None) -> tuple[list[Joined], Counter[str]]:
        """The outcomes that meet a Score and its model's label, and the count of those that did
        not; in memory only (call it where the Scores are added: no lock)."""
        now = time.time() if now is None else now
        counts: Counter[str] = Counter()
        candidates: list[Joined] = []
        for outcome in outcomes:
            scored, late = self.scored.get(outcome.request_id, now)
            if scored is None:
                counts["late" if late else "unknown"] += 1
                continue
            try:
                index = scored.ad_ids.index(outcome.ad_id)
            except ValueError:
                counts["unknown"] += 1
                continue
            if self.label_of(scored.model, scored.version) != outcome.label:
                counts["other_label"] += 1
                continue
            members = scored.member_scores[index] if len(scored.member_scores) else ()
            candidates.append(Joined(outcome.request_id, outcome.ad_id, outcome.label, outcome.positive, outcome.timestamp or now,
                                     scored.model, scored.version, scored.route, scored.arm, scored.timestamp,
                                     float(scored.scores[index]), scored.member_names, tuple(float(v) for v in members)))
        return candidates, counts

    def settle(self, candidates: list[Joined], added: list[bool], counts: Counter[str]) -> tuple[list[Joined], Counter[str]]:
        """After the store took `candidates` (`added`: False for a duplicate): the new joins."""
        joined = [j for j, new in zip(candidates, added) if new]
        counts["joined"] += len(joined)
        counts["duplicate"] += len(candidates) - len(joined)
        self.counts.update(counts)
        return joined, counts


class ModelLabels:
    """The label each model version was trained on, read once from its config in the model
    repository ("" for a version not there)."""

    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, model: str, version: str) -> str:
        key = (model, version)
        if key not in self._cache:
            path = self.repository / model / version / CONFIG_FILE
            try:
                label = str((yaml.safe_load(path.read_text()) or {}).get("label", ""))
            except (OSError, yaml.YAMLError):
                return ""  # not cached: the version may be published later
            self._cache[key] = label
        return self._cache[key]
