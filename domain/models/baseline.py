"""The drift baseline stored with each model version by `scoremesh train`: a reference sample of
the model's input features (as the feature schema transforms them) and of its scores on held-out
training data, plus per-feature deciles. Monitoring compares live traffic with it. Kept in
`baseline.safetensors` beside the weights; a version without one simply has no drift check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

BASELINE_FILE = "baseline.safetensors"
QUANTILES = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class Baseline:
    features: np.ndarray
    """[rows, dim] float32 reference sample of the model's inputs."""
    scores: np.ndarray
    """[rows] float32 reference sample of the ensemble's scores."""
    feature_quantiles: np.ndarray
    """[11, dim]: the 0%, 10%, ..., 100% quantiles of each feature."""


def make_baseline(features: np.ndarray, scores: np.ndarray, rows: int = 2000, seed: int = 0) -> Baseline:
    """A reference sample of at most `rows` rows (the same rows for features and scores)."""
    if len(features) != len(scores):
        raise ValueError("features and scores must have the same rows")
    chosen = np.random.default_rng(seed).permutation(len(features))[:rows]
    sample = np.ascontiguousarray(features[chosen], dtype=np.float32)
    return Baseline(sample, np.ascontiguousarray(scores[chosen], dtype=np.float32),
                    np.quantile(features, QUANTILES, axis=0).astype(np.float32))


def write_baseline(version_dir: Path, baseline: Baseline) -> None:
    save_file({"features": baseline.features, "scores": baseline.scores, "feature_quantiles": baseline.feature_quantiles},
              str(version_dir / BASELINE_FILE))


def read_baseline(version_dir: Path) -> Baseline | None:
    path = version_dir / BASELINE_FILE
    if not path.is_file():
        return None
    tensors = load_file(str(path))
    return Baseline(tensors["features"], tensors["scores"], tensors["feature_quantiles"])
