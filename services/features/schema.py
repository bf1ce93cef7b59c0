"""A versioned feature schema and its vectorized transforms.

Output columns, in schema order: a numeric feature gives one column; a categorical feature one
column per vocabulary entry plus an out-of-vocabulary column (`name=<oov>`); a cyclical feature
`name_sin` and `name_cos`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from services.features.raw import RawBatch

SCHEMA_DIR = Path(__file__).parent / "schemas"
OOV = "<oov>"
_NUMERIC_TRANSFORMS = ("identity", "standardize", "log1p_standardize")


class SchemaError(ValueError):
    pass


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str
    source: str
    transform: str = "identity"
    mean: float = 0.0
    std: float = 1.0
    clip: tuple[float, float] | None = None
    vocabulary: tuple[Any, ...] = ()
    period: float = 0.0

    @property
    def columns(self) -> list[str]:
        if self.kind == "numeric":
            return [self.name]
        if self.kind == "categorical":
            return [f"{self.name}={v}" for v in self.vocabulary] + [f"{self.name}={OOV}"]
        return [f"{self.name}_sin", f"{self.name}_cos"]

    def apply(self, values: np.ndarray) -> np.ndarray:
        """[n] raw values -> [n, len(columns)] float64."""
        if self.kind == "numeric":
            x = values.astype(np.float64)
            if self.transform == "log1p_standardize":
                x = np.log1p(np.maximum(x, 0.0))
            if self.transform in ("standardize", "log1p_standardize"):
                x = (x - self.mean) / (self.std + 1e-8)
            if self.clip is not None:
                x = np.clip(x, *self.clip)
            return x[:, None]
        if self.kind == "categorical":
            # Map each distinct value once, then broadcast: no per-row Python work.
            distinct, inverse = np.unique(values.astype(str), return_inverse=True)
            lookup = {str(v): i for i, v in enumerate(self.vocabulary)}
            oov = len(self.vocabulary)
            codes = np.array([lookup.get(v, oov) for v in distinct], dtype=np.int64)[inverse]
            out = np.zeros((len(values), oov + 1))
            out[np.arange(len(values)), codes] = 1.0
            return out
        angle = 2.0 * np.pi * values.astype(np.float64) / self.period
        return np.stack([np.sin(angle), np.cos(angle)], axis=1)


@dataclass(frozen=True)
class FeatureSchema:
    name: str
    version: str
    features: tuple[Feature, ...]

    @property
    def column_names(self) -> list[str]:
        return [c for f in self.features for c in f.columns]

    @property
    def dim(self) -> int:
        return len(self.column_names)

    def transform(self, batch: RawBatch) -> np.ndarray:
        """[len(batch), dim] float32, the model input."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [f.apply(batch.column(f.source)) for f in self.features]
        return np.concatenate(parts, axis=1).astype(np.float32)

    @classmethod
    def from_dict(cls, document: dict[str, Any], origin: str = "<schema>") -> "FeatureSchema":
        try:
            name, version, raw_features = document["name"], str(document["version"]), document["features"]
        except (KeyError, TypeError) as missing:
            raise SchemaError(f"{origin}: missing field {missing}") from None
        features = []
        for i, spec in enumerate(raw_features):
            where = f"{origin}: features[{i}]"
            kind = spec.get("kind")
            if kind not in ("numeric", "categorical", "cyclical"):
                raise SchemaError(f"{where}.kind: must be numeric, categorical or cyclical (got {kind!r})")
            if spec.get("source") not in RawBatch.__dataclass_fields__:
                raise SchemaError(f"{where}.source: unknown raw field {spec.get('source')!r}")
            if kind == "numeric" and spec.get("transform", "identity") not in _NUMERIC_TRANSFORMS:
                raise SchemaError(f"{where}.transform: must be one of {_NUMERIC_TRANSFORMS}")
            if kind == "cyclical" and not spec.get("period"):
                raise SchemaError(f"{where}.period: required for cyclical features")
            features.append(
                Feature(
                    name=spec["name"],
                    kind=kind,
                    source=spec["source"],
                    transform=spec.get("transform", "identity"),
                    mean=float(spec.get("mean", 0.0)),
                    std=float(spec.get("std", 1.0)),
                    clip=tuple(spec["clip"]) if spec.get("clip") else None,
                    vocabulary=tuple(spec.get("vocabulary", ())),
                    period=float(spec.get("period", 0.0)),
                )
            )
        return cls(name=name, version=version, features=tuple(features))


def load_schema(name: str = "ads", version: str = "1", directory: Path = SCHEMA_DIR) -> FeatureSchema:
    path = directory / f"{name}-{version}.yaml"
    if not path.is_file():
        raise SchemaError(f"unknown feature schema {name} version {version} (no {path})")
    return FeatureSchema.from_dict(yaml.safe_load(path.read_text()), origin=str(path))
