"""Feature schemas: a specification (YAML in schemas/), fitted on training data into a versioned
`FeatureSchema`, whose vectorized `transform` is the one code path from raw rows to model input
for training and serving alike.

Output columns, in schema order:
- numeric: `name` (bucketize: one column per bucket, `name[<b0]`, `name[b0,b1)`, ..., `name[>=bk]`)
- categorical: `name=value` per vocabulary entry plus `name=<oov>`; hashed: `name#0` ... `name#k-1`
- cross: `name#0` ... `name#k-1` (hash of the joined source values)
- cyclical: `name_sin`, `name_cos`
- plus `name_missing` (1.0 when the value was missing) for features whose policy asks for it.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from domain.errors import InvalidArgument
from domain.features.raw import CATEGORICAL_FIELDS, NUMERIC_FIELDS, RawBatch

SPEC_DIR = Path(__file__).parent / "schemas"
OOV = "<oov>"
KINDS = ("numeric", "categorical", "cross", "cyclical")
NUMERIC_TRANSFORMS = ("identity", "standardize", "log1p_standardize", "bucketize")
SOURCES = set(CATEGORICAL_FIELDS) | set(NUMERIC_FIELDS)
# Where each raw field sits in a Score/Extract request, for error messages.
REQUEST_PATHS = {
    "age": "context.user.age", "hour": "context.hour", "day_of_week": "context.day_of_week",
    "bid_amount": "candidates[{i}].bid_amount", "quality_score": "candidates[{i}].quality_score",
}


class SchemaError(ValueError):
    pass


def _strings(values: np.ndarray) -> np.ndarray:
    """Categorical values as strings: whole floats as integers ("3"), missing as ""."""
    if values.dtype.kind == "f":
        out = np.full(values.shape, "", dtype=object)
        ok = np.isfinite(values)
        out[ok] = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in values[ok]]
        return out
    return np.where(values == None, "", values).astype(str).astype(object)  # noqa: E711


def _hash_buckets(values: np.ndarray, buckets: int, salt: str) -> np.ndarray:
    """Stable hashing trick: crc32(salt|value) mod k, computed once per distinct value."""
    distinct, inverse = np.unique(values.astype(str), return_inverse=True)
    codes = np.array([zlib.crc32(f"{salt}|{v}".encode()) % buckets for v in distinct], dtype=np.int64)
    return codes[inverse]


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(codes), width))
    out[np.arange(len(codes)), codes] = 1.0
    return out


@dataclass
class Feature:
    """One feature: its specification and, once fitted, its statistics."""

    name: str
    kind: str
    source: str = ""
    sources: tuple[str, ...] = ()
    transform: str = "identity"
    clip: tuple[float, float] | None = None
    range: tuple[float, float] | None = None
    missing_default: Any = None  # None: no default (numeric missing = error, category -> OOV)
    missing_indicator: bool = False
    vocabulary: tuple[str, ...] | None = None
    fit_vocabulary: dict[str, int] | None = None  # {min_count, max_size}
    hash_buckets: int = 0
    boundaries: tuple[float, ...] | None = None
    quantiles: int = 0
    period: float = 0.0
    mean: float | None = None
    std: float | None = None

    # ---------------------------------------------------------------- spec & serialization
    @classmethod
    def from_dict(cls, spec: dict[str, Any], where: str) -> "Feature":
        kind = spec.get("kind")
        if kind not in KINDS:
            raise SchemaError(f"{where}.kind: must be one of {', '.join(KINDS)} (got {kind!r})")
        if not spec.get("name"):
            raise SchemaError(f"{where}.name: required")
        sources = tuple(spec.get("sources", ()))
        source = spec.get("source", "")
        for s in (sources if kind == "cross" else (source,)):
            if s not in SOURCES:
                raise SchemaError(f"{where}.source: unknown raw field {s!r}")
        if kind == "cross" and (len(sources) < 2 or not spec.get("hash_buckets")):
            raise SchemaError(f"{where}: a cross needs two or more sources and hash_buckets")
        transform = spec.get("transform", "identity")
        if kind == "numeric" and transform not in NUMERIC_TRANSFORMS:
            raise SchemaError(f"{where}.transform: must be one of {', '.join(NUMERIC_TRANSFORMS)} (got {transform!r})")
        if transform == "bucketize" and not (spec.get("boundaries") or spec.get("quantiles")):
            raise SchemaError(f"{where}: bucketize needs boundaries or quantiles")
        if kind == "cyclical" and not spec.get("period"):
            raise SchemaError(f"{where}.period: required for cyclical features")
        if kind == "categorical" and not (spec.get("vocabulary") is not None or spec.get("fit") or spec.get("hash_buckets")):
            raise SchemaError(f"{where}: a categorical feature needs vocabulary, fit or hash_buckets")
        missing = spec.get("missing") or {}
        return cls(
            name=spec["name"], kind=kind, source=source, sources=sources, transform=transform,
            clip=tuple(spec["clip"]) if spec.get("clip") else None,
            range=tuple(spec["range"]) if spec.get("range") else None,
            missing_default=missing.get("default"), missing_indicator=bool(missing.get("indicator", False)),
            vocabulary=tuple(str(v) for v in spec["vocabulary"]) if spec.get("vocabulary") is not None else None,
            fit_vocabulary=spec.get("fit"), hash_buckets=int(spec.get("hash_buckets", 0)),
            boundaries=tuple(float(b) for b in spec["boundaries"]) if spec.get("boundaries") else None,
            quantiles=int(spec.get("quantiles", 0)), period=float(spec.get("period", 0.0)),
            mean=spec.get("mean"), std=spec.get("std"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "cross":
            out["sources"] = list(self.sources)
        else:
            out["source"] = self.source
        if self.kind == "numeric":
            out["transform"] = self.transform
        optional = {
            "clip": list(self.clip) if self.clip else None, "range": list(self.range) if self.range else None,
            "vocabulary": list(self.vocabulary) if self.vocabulary is not None else None,
            "hash_buckets": self.hash_buckets or None,
            "boundaries": list(self.boundaries) if self.boundaries else None,
            "period": self.period or None, "mean": self.mean, "std": self.std,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.missing_default is not None or self.missing_indicator:
            out["missing"] = {"default": self.missing_default, "indicator": self.missing_indicator}
        return out

    # ---------------------------------------------------------------- fitting
    def fitted(self, batch: RawBatch) -> "Feature":
        out = copy.deepcopy(self)
        out.fit_vocabulary, out.quantiles = None, 0
        if self.kind == "numeric":
            raw = batch.column(self.source).astype(np.float64)
            present = raw[np.isfinite(raw)]
            if present.size == 0:
                raise SchemaError(f"feature {self.name}: no values to fit on")
            if self.missing_default == "mean":
                out.missing_default = round(float(present.mean()), 6)
            values = np.log1p(np.maximum(present, 0.0)) if self.transform == "log1p_standardize" else present
            if self.transform in ("standardize", "log1p_standardize"):
                out.mean, out.std = float(values.mean()), float(values.std())
            if self.transform == "bucketize" and self.boundaries is None:
                qs = np.quantile(present, np.arange(1, self.quantiles) / self.quantiles)
                out.boundaries = tuple(float(q) for q in np.unique(qs))
        elif self.kind == "categorical" and self.vocabulary is None and self.fit_vocabulary:
            values = _strings(batch.column(self.source))
            values = values[values != ""]
            distinct, counts = np.unique(values.astype(str), return_counts=True)
            keep = counts >= int(self.fit_vocabulary.get("min_count", 1))
            ranked = sorted(zip(distinct[keep], counts[keep]), key=lambda vc: (-vc[1], vc[0]))
            out.vocabulary = tuple(str(v) for v, _ in ranked[: int(self.fit_vocabulary.get("max_size", 1000))])
        return out

    # ---------------------------------------------------------------- output
    @property
    def columns(self) -> list[str]:
        if self.kind == "numeric":
            if self.transform == "bucketize":
                b = self.boundaries or ()
                names = [f"{self.name}[<{b[0]:g}]"] + [f"{self.name}[{lo:g},{hi:g})" for lo, hi in zip(b, b[1:])] + [f"{self.name}[>={b[-1]:g}]"]
            else:
                names = [self.name]
        elif self.kind == "categorical" and not self.hash_buckets:
            names = [f"{self.name}={v}" for v in self.vocabulary or ()] + [f"{self.name}={OOV}"]
        elif self.kind in ("categorical", "cross"):
            names = [f"{self.name}#{i}" for i in range(self.hash_buckets)]
        else:
            names = [f"{self.name}_sin", f"{self.name}_cos"]
        return names + ([f"{self.name}_missing"] if self.missing_indicator else [])

    def _numeric(self, batch: RawBatch) -> tuple[np.ndarray, np.ndarray]:
        raw = batch.column(self.source).astype(np.float64)
        missing = ~np.isfinite(raw)
        if missing.any() and self.missing_default is not None:
            raw = np.where(missing, float(self.missing_default), raw)
        return raw, missing

    def apply(self, batch: RawBatch) -> np.ndarray:
        """[n, len(columns)] float64."""
        if self.kind in ("numeric", "cyclical"):
            x, missing = self._numeric(batch)
            if self.kind == "cyclical":
                angle = 2.0 * np.pi * x / self.period
                out = np.stack([np.sin(angle), np.cos(angle)], axis=1)
            elif self.transform == "bucketize":
                out = _one_hot(np.searchsorted(np.asarray(self.boundaries), x, side="right"), len(self.boundaries) + 1)
            else:
                if self.transform == "log1p_standardize":
                    x = np.log1p(np.maximum(x, 0.0))
                if self.transform in ("standardize", "log1p_standardize"):
                    x = (x - self.mean) / (self.std + 1e-8)
                if self.clip is not None:
                    x = np.clip(x, *self.clip)
                out = x[:, None]
        else:
            if self.kind == "cross":
                parts = [_strings(batch.column(s)) for s in self.sources]
                values = parts[0].astype(str)
                for part in parts[1:]:
                    values = np.char.add(np.char.add(values, "\x1f"), part.astype(str))
                missing = np.zeros(len(batch), dtype=bool)
                out = _one_hot(_hash_buckets(values, self.hash_buckets, self.name), self.hash_buckets)
            else:
                values = _strings(batch.column(self.source))
                missing = values == ""
                if missing.any() and self.missing_default is not None:
                    values = np.where(missing, str(self.missing_default), values)
                if self.hash_buckets:
                    out = _one_hot(_hash_buckets(values, self.hash_buckets, self.name), self.hash_buckets)
                else:
                    # Map each distinct value once, then broadcast: no per-row Python work.
                    distinct, inverse = np.unique(values.astype(str), return_inverse=True)
                    lookup = {v: i for i, v in enumerate(self.vocabulary or ())}
                    oov = len(lookup)
                    codes = np.array([lookup.get(v, oov) for v in distinct], dtype=np.int64)[inverse]
                    out = _one_hot(codes, oov + 1)
        if self.missing_indicator:
            out = np.concatenate([out, missing[:, None].astype(np.float64)], axis=1)
        return out


@dataclass
class FeatureSchema:
    name: str
    version: str  # "" for an unfitted specification
    features: list[Feature]

    @property
    def fitted(self) -> bool:
        return bool(self.version)

    @property
    def column_names(self) -> list[str]:
        return [c for f in self.features for c in f.columns]

    @property
    def dim(self) -> int:
        return len(self.column_names)

    def fit(self, batch: RawBatch, version: str) -> "FeatureSchema":
        """Statistics and vocabularies from training data; the result is version `version`."""
        return FeatureSchema(self.name, str(version), [f.fitted(batch) for f in self.features])

    def validate(self, batch: RawBatch) -> None:
        """Declared ranges, and missing values where the schema has no policy for them."""
        for feature in self.features:
            if feature.kind not in ("numeric", "cyclical") or feature.source not in REQUEST_PATHS:
                continue
            values = batch.column(feature.source).astype(np.float64)
            path = REQUEST_PATHS[feature.source]
            missing = np.isnan(values)
            if missing.any() and feature.missing_default is None:
                i = int(np.argmax(missing))
                raise InvalidArgument(f"{path.format(i=i)}: required by feature {feature.name} (no missing-value policy)")
            if feature.range is not None:
                low, high = feature.range
                bad = ~missing & ((values < low) | (values > high) | ~np.isfinite(values))
                if bad.any():
                    i = int(np.argmax(bad))
                    raise InvalidArgument(f"{path.format(i=i)}: out of the declared range [{low:g}, {high:g}] (got {values[i]:g})")

    def transform(self, batch: RawBatch) -> np.ndarray:
        """[len(batch), dim] float32, the model input. Only fitted schemas transform."""
        if not self.fitted:
            raise SchemaError(f"schema {self.name} is a specification; fit it first (scoremesh train)")
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([f.apply(batch) for f in self.features], axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "features": [f.to_dict() for f in self.features]}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, document: dict[str, Any], origin: str = "<schema>") -> "FeatureSchema":
        if not isinstance(document, dict):
            raise SchemaError(f"{origin}: the top level must be a mapping")
        for key in ("name", "features"):
            if key not in document:
                raise SchemaError(f"{origin}: missing field '{key}'")
        features = [Feature.from_dict(spec, f"{origin}: features[{i}]") for i, spec in enumerate(document["features"])]
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise SchemaError(f"{origin}: feature names must be unique")
        schema = cls(str(document["name"]), str(document.get("version", "") or ""), features)
        if schema.fitted:
            for i, f in enumerate(features):
                if f.transform in ("standardize", "log1p_standardize") and (f.mean is None or f.std is None):
                    raise SchemaError(f"{origin}: features[{i}]: fitted schema lacks mean/std")
                if f.kind == "categorical" and f.vocabulary is None and not f.hash_buckets:
                    raise SchemaError(f"{origin}: features[{i}]: fitted schema lacks a vocabulary")
                if f.transform == "bucketize" and not f.boundaries:
                    raise SchemaError(f"{origin}: features[{i}]: fitted schema lacks boundaries")
        return schema


def load_spec(name: str = "ads", directory: Path = SPEC_DIR) -> FeatureSchema:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise SchemaError(f"no feature specification {path}")
    document = yaml.safe_load(path.read_text())
    if isinstance(document, dict):
        document.pop("version", None)
    return FeatureSchema.from_dict(document, origin=str(path))
