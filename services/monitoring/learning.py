"""Online ensemble weighting in the mesh: per model version, a learner over the member scores of
its joined outcomes (domain.models.online_weights); every `interval_s`, with enough new outcomes
and weights that moved, a new weights version beside the model version in the repository, which
every inference replica serves without a restart (domain.models.ensemble_weights). Off by
default per model; switched on and off at run time (persisted in SQLite, with who and why); a
rollback writes the trained weights again as a new version and switches learning off. No gRPC.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from domain.errors import FailedPrecondition, NotFound
from domain.models.ensemble_weights import WEIGHTED_METHODS, WeightsVersion, history, write_version
from domain.models.online_weights import LearnerSettings, OnlineWeights, log_loss_of
from domain.models.repository import CONFIG_FILE, version_dirs
from mesh.sqlite_db import Database
from services.monitoring.feedback import Joined

log = logging.getLogger(__name__)

MIN_CHANGE = 0.01
"""Weights that moved less than this (relative) since the last version are not written again."""


@dataclass(frozen=True)
class Ensemble:
    """What learning needs of a model version: its members, combination and trained weights."""

    members: tuple[str, ...]
    method: str
    trained: dict[str, float]


def read_ensemble(version_dir: Path) -> Ensemble:
    config = yaml.safe_load((version_dir / CONFIG_FILE).read_text()) or {}
    members = tuple(str(m["name"]) for m in config.get("members", ()))
    ensemble = config.get("ensemble", {}) or {}
    weights = ensemble.get("weights") or [1.0] * len(members)
    return Ensemble(members, str(ensemble.get("method", "")), {m: float(w) for m, w in zip(members, weights)})


@dataclass
class VersionLearner:
    ensemble: Ensemble
    learner: OnlineWeights
    current: WeightsVersion
    """The weights version serving (the newest written)."""
    outcomes: int = 0
    """Outcomes learned from since `current` was written."""
    learned_loss: float = 0.0
    trained_loss: float = 0.0
    """Progressive log loss sums since `current`: the learner's predictions, and the trained weights'."""
    last_written: float = 0.0


class SwitchStore:
    """Which models learn, with who switched them and why (SQLite)."""

    def __init__(self, path: Path) -> None:
        self._database = Database(
            path,
            "CREATE TABLE IF NOT EXISTS weighting (model TEXT PRIMARY KEY, enabled INTEGER, changed_at REAL, reason TEXT)",
        )
        self._db, self._lock = self._database.connection, self._database.lock

    def set(self, model: str, enabled: bool, reason: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO weighting VALUES (?, ?, ?, ?)", (model, int(enabled), time.time(), reason[:500]))

    def get(self, model: str) -> tuple[bool, float, str] | None:
        with self._lock:
            row = self._db.execute("SELECT enabled, changed_at, reason FROM weighting WHERE model=?", (model,)).fetchone()
        return (bool(row[0]), row[1], row[2]) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class OnlineLearning:
    def __init__(self, repository: Path, switches: SwitchStore, settings: LearnerSettings = LearnerSettings(),
                 enabled_by_default: tuple[str, ...] = (), interval_s: float = 300.0, min_outcomes: int = 500, clock=time.time) -> None:
        self.repository, self.switches, self.settings = repository, switches, settings
        self.enabled_by_default = frozenset(enabled_by_default)
        self.interval_s, self.min_outcomes, self.clock = interval_s, min_outcomes, clock
        self.learners: dict[tuple[str, str], VersionLearner] = {}

    # ------------------------------------------------------------------ switches
    def enabled(self, model: str) -> bool:
        switched = self.switches.get(model)
        return switched[0] if switched is not None else model in self.enabled_by_default

    def _versions(self, model: str) -> list[Path]:
        folder = self.repository / model
        if not folder.is_dir():
            raise NotFound(f"model_name: no model {model!r} in the repository")
        return version_dirs(folder)

    def set_enabled(self, model: str, enabled: bool, reason: str) -> None:
        versions = self._versions(model)
        if enabled and not any(read_ensemble(v).method in WEIGHTED_METHODS for v in versions):
            raise FailedPrecondition(f"model_name: {model} combines its members by {read_ensemble(versions[-1]).method}, "
                                     f"which has no weights to learn (only {', '.join(WEIGHTED_METHODS)})")
        self.switches.set(model, enabled, reason)
        if not enabled:
            for key in [k for k in self.learners if k[0] == model]:
                del self.learners[key]
        log.warning("online weighting of %s switched %s: %s", model, "on" if enabled else "off", reason)

    def rollback(self, model: str, reason: str) -> list[WeightsVersion]:
        """Learning off, and every version serving learned weights back on its trained ones."""
        self.switches.set(model, False, f"rollback: {reason}")
        written = []
        for version_dir in self._versions(model):
            ensemble = read_ensemble(version_dir)
            if ensemble.method not in WEIGHTED_METHODS:
                continue
            past = history(version_dir, ensemble.members)
            if past and past[-1].weights != ensemble.trained:
                written.append(write_version(version_dir, ensemble.trained, "rollback", reason, ensemble.members))
        for key in [k for k in self.learners if k[0] == model]:
            del self.learners[key]
        log.warning("ensemble weights of %s rolled back to the trained ones: %s", model, reason)
        return written

    # ------------------------------------------------------------------ learning
    def _learner(self, model: str, version: str) -> VersionLearner | None:
        key = (model, version)
        if key not in self.learners:
            version_dir = self.repository / model / version
            try:
                ensemble = read_ensemble(version_dir)
            except (OSError, yaml.YAMLError, KeyError, TypeError):
                return None
            if ensemble.method not in WEIGHTED_METHODS:
                return None
            past = history(version_dir, ensemble.members)
            current = past[-1] if past else WeightsVersion(0, ensemble.trained)
            # Start from what serves (a restart, or learning switched on again), not from scratch.
            learner = OnlineWeights(np.array([ensemble.trained[m] for m in ensemble.members]), self.settings,
                                    start=np.array([current.weights[m] for m in ensemble.members]))
            self.learners[key] = VersionLearner(ensemble, learner, current, last_written=self.clock())
        return self.learners[key]

    def feed(self, joined: list[Joined]) -> int:
        """Learn from new joins of the models switched on; returns how many were used."""
        groups: dict[tuple[str, str], list[Joined]] = defaultdict(list)
        for j in joined:
            groups[(j.model, j.version)].append(j)
        used = 0
        for (model, version), rows in groups.items():
            if not self.enabled(model):
                continue
            state = self._learner(model, version)
            if state is None:
                continue
            members = state.ensemble.members
            usable = [j for j in rows if set(j.member_names) == set(members)]
            if not usable:
                continue
            p = np.array([[dict(zip(j.member_names, j.member_scores))[m] for m in members] for j in usable])
            y = np.array([float(j.positive) for j in usable])
            trained = np.array([state.ensemble.trained[m] for m in members])
            state.learned_loss += float(log_loss_of(np.clip(state.learner.predict(p), 1e-7, 1 - 1e-7), y).sum())
            state.trained_loss += float(log_loss_of(np.clip(p @ (trained / trained.sum()), 1e-7, 1 - 1e-7), y).sum())
            state.learner.update(p, y)
            state.outcomes += len(usable)
            used += len(usable)
        return used

    def publish_due(self) -> list[tuple[str, str, WeightsVersion]]:
        """New weights versions for the learners with enough new outcomes whose weights moved."""
        now, written = self.clock(), []
        for (model, version), state in list(self.learners.items()):
            if not self.enabled(model) or state.outcomes < self.min_outcomes or now - state.last_written < self.interval_s:
                continue
            members = state.ensemble.members
            weights = dict(zip(members, (float(w) for w in state.learner.weights)))
            moved = max(abs(weights[m] - state.current.weights[m]) / state.current.weights[m] for m in members)
            if moved < MIN_CHANGE:
                continue
            reason = (f"{state.outcomes} outcomes since weights #{state.current.number}: progressive log loss "
                      f"{state.learned_loss / state.outcomes:.5f} learned vs {state.trained_loss / state.outcomes:.5f} trained")
            version_dir = self.repository / model / version
            if not version_dir.is_dir():
                del self.learners[(model, version)]  # the version is gone
                continue
            state.current = write_version(version_dir, weights, "online_learner", reason, members)
            state.outcomes, state.learned_loss, state.trained_loss, state.last_written = 0, 0.0, 0.0, now
            log.info("%s v%s: ensemble weights #%d %s (%s)", model, version, state.current.number, weights, reason)
            written.append((model, version, state.current))
        return written

    def status(self, model: str) -> tuple[bool, list[tuple[str, WeightsVersion, int, list[WeightsVersion]]]]:
        """(switched on, and per version: the weights serving, outcomes learned since, history)."""
        out = []
        for version_dir in self._versions(model):
            ensemble = read_ensemble(version_dir)
            past = history(version_dir, ensemble.members)
            current = past[-1] if past else WeightsVersion(0, ensemble.trained)
            state = self.learners.get((model, version_dir.name))
            out.append((version_dir.name, current, state.outcomes if state else 0, past))
        return self.enabled(model), out
