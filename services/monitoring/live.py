"""What drift is judged on: the recent live inputs and scores of each model version (bounded), and
the training baselines with their feature names, read once per version from the model
repository and the feature schemas. No gRPC here."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from domain.errors import NotFound
from domain.features.schema import SchemaError
from domain.features.schema_store import SchemaStore
from domain.models.baseline import Baseline, read_baseline
from domain.models.repository import CONFIG_FILE
from services.monitoring.drift import DriftReport, detect, stratified

# One-hot columns of the routing key: live traffic is compared with the baseline rows of the same
# key values (routes send a model only some data types; see drift.stratified).
ROUTING_KEY = "data_type="


@dataclass(frozen=True)
class Sample:
    timestamp: float
    features: np.ndarray | None
    scores: np.ndarray


class LiveSamples:
    """The newest `capacity` samples per (model, version)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self.samples: dict[tuple[str, str], deque[Sample]] = {}

    def add(self, model: str, version: str, timestamp: float, features: np.ndarray | list[float] | None, scores) -> None:
        if not model or not version:
            return  # failed Scores carry neither
        row = np.asarray(features, dtype=np.float32) if features is not None and len(features) else None
        self.samples.setdefault((model, version), deque(maxlen=self.capacity)).append(Sample(timestamp, row, np.asarray(scores, dtype=np.float32)))

    def newest_version(self, model: str) -> str:
        """The version serving now: the one with the latest sample (after a rollback that is the
        older version again, not the numerically newest), the higher number on a tie."""
        versions = [(samples[-1].timestamp, len(v), v) for (m, v), samples in self.samples.items() if m == model and samples]
        if not versions:
            raise NotFound(f"model_name: no live traffic of {model!r} yet")
        return max(versions)[2]

    def window(self, model: str, version: str, window_s: float, dim: int, now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(feature rows of width `dim`, scores) of the last `window_s` seconds."""
        since = (time.time() if now is None else now) - window_s
        chosen = [s for s in self.samples.get((model, version), ()) if s.timestamp >= since]
        rows = [s.features for s in chosen if s.features is not None and s.features.shape == (dim,)]
        scores = [s.scores for s in chosen]
        return (np.stack(rows) if rows else np.zeros((0, dim), np.float32),
                np.concatenate(scores) if scores else np.zeros(0, np.float32))


@dataclass(frozen=True)
class Reference:
    baseline: Baseline
    names: list[str]


class Baselines:
    """Training baselines by (model, version), with the feature names of the schema the version
    was trained on; read once."""

    def __init__(self, repository: Path, feature_dir: Path) -> None:
        self.repository = repository
        self.schemas = SchemaStore(feature_dir)
        self._cache: dict[tuple[str, str], Reference] = {}

    def get(self, model: str, version: str) -> Reference:
        key = (model, version)
        if key not in self._cache:
            version_dir = self.repository / model / version
            baseline = read_baseline(version_dir) if version_dir.is_dir() else None
            if baseline is None:
                raise NotFound(f"model_version: {model} v{version} has no training baseline (trained before baselines were stored?)")
            config = yaml.safe_load((version_dir / CONFIG_FILE).read_text())
            schema = config.get("feature_schema") or {}
            try:
                names = self.schemas.load(schema.get("name", "ads"), str(schema.get("version", ""))).column_names
            except SchemaError:  # a schema gone from disk: columns by position still say which one drifted
                names = [f"column {j}" for j in range(baseline.features.shape[1])]
            self._cache[key] = Reference(baseline, names)
        return self._cache[key]


@dataclass(frozen=True)
class DriftResult:
    model: str
    version: str
    features: DriftReport
    scores: DriftReport


def judge(live: LiveSamples, baselines: Baselines, model: str, version: str, window_s: float, now: float | None = None) -> DriftResult:
    version = version or live.newest_version(model)
    reference = baselines.get(model, version)
    rows, scores = live.window(model, version, window_s, reference.baseline.features.shape[1], now)
    baseline = reference.baseline
    keys = [j for j, name in enumerate(reference.names) if name.startswith(ROUTING_KEY)]
    base_rows, base_scores = stratified(baseline.features, baseline.scores, rows, keys)
    edges = baseline.feature_quantiles if len(base_rows) == len(baseline.features) else None  # a subset has its own quantiles
    features = detect(base_rows, rows, reference.names, edges)
    score_report = detect(base_scores[:, None], scores[:, None], ["score"])
    return DriftResult(model, version, features, score_report)
