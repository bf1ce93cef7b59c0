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

import bisect
import copy
import math
import zlib
from dataclasses import dataclass
from functools import cached_property
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


def _string_list(values: np.ndarray) -> list[str]:
    """Categorical values as strings: whole floats as integers ("3"), missing (NaN, None) as "".
    Python lists: mapping a few to a few hundred short strings is several times faster row by
    row than through NumPy's fixed-width string arrays."""
    if values.dtype.kind == "f":
        return ["" if v != v or v in _INFINITE else (str(int(v)) if v.is_integer() else repr(v)) for v in values.tolist()]
    return ["" if v is None else str(v) for v in values.tolist()]


_INFINITE = (float("inf"), float("-inf"))


def _strings(values: np.ndarray) -> np.ndarray:
    return np.array(_string_list(values), dtype=object)


class _HashCodes:
    """Stable hashing trick: crc32(salt|value) mod k, memoized per value (bounded)."""

    def __init__(self, buckets: int, salt: str, capacity: int = 65_536) -> None:
        self.buckets, self.salt, self.capacity = buckets, salt, capacity
        self._memo: dict[str, int] = {}

    def __call__(self, values: list[str]) -> np.ndarray:
        return np.array([self.code(value) for value in values], dtype=np.intp)

    def code(self, value: str) -> int:
        code = self._memo.get(value)
        if code is None:
            code = zlib.crc32(f"{self.salt}|{value}".encode()) % self.buckets
            if len(self._memo) >= self.capacity:
                self._memo.clear()
            self._memo[value] = code
        return code


def _one_hot_into(out: np.ndarray, codes: np.ndarray) -> None:
    """Set out[i, codes[i]] = 1 (out is zeroed)."""
    out[np.arange(len(codes)), codes] = 1.0


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
        for derived in ("_vocabulary_index", "_hash"):  # computed from what fitting changes
            out.__dict__.pop(derived, None)
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
        raw = np.asarray(batch.column(self.source), dtype=np.float64)
        missing = ~np.isfinite(raw)
        if missing.any() and self.missing_default is not None:
            raw = np.where(missing, float(self.missing_default), raw)
        return raw, missing

    def apply(self, batch: RawBatch) -> np.ndarray:
        """[n, len(columns)] float64."""
        out = np.zeros((len(batch), len(self.columns)))
        self.write(batch, out)
        return out

    def write(self, batch: RawBatch, out: np.ndarray) -> None:
        """Fill `out` ([n, len(columns)], zeroed; float32 or float64) with this feature's
        columns. Values are computed in float64 and rounded once on assignment."""
        if self.kind in ("numeric", "cyclical"):
            x, missing = self._numeric(batch)
            if self.kind == "cyclical":
                angle = 2.0 * np.pi * x / self.period
                out[:, 0] = np.sin(angle)
                out[:, 1] = np.cos(angle)
            elif self.transform == "bucketize":
                _one_hot_into(out, np.searchsorted(np.asarray(self.boundaries), x, side="right"))
            else:
                if self.transform == "log1p_standardize":
                    x = np.log1p(np.maximum(x, 0.0))
                if self.transform in ("standardize", "log1p_standardize"):
                    x = (x - self.mean) / (self.std + 1e-8)
                if self.clip is not None:
                    x = np.clip(x, *self.clip)
                out[:, 0] = x
        else:
            if self.kind == "cross":
                parts = [_string_list(batch.column(s)) for s in self.sources]
                values = ["\x1f".join(row) for row in zip(*parts)]
                missing = None
                _one_hot_into(out, self._hash(values))
            else:
                values = _string_list(batch.column(self.source))
                missing = np.fromiter((v == "" for v in values), dtype=bool, count=len(values))
                if self.missing_default is not None and missing.any():
                    default = str(self.missing_default)
                    values = [default if v == "" else v for v in values]
                if self.hash_buckets:
                    _one_hot_into(out, self._hash(values))
                else:
                    lookup = self._vocabulary_index
                    oov = len(lookup)
                    _one_hot_into(out, np.array([lookup.get(v, oov) for v in values], dtype=np.intp))
        if self.missing_indicator:
            out[:, -1] = missing if missing is not None else 0.0

    def write_first(self, batch: RawBatch, row: np.ndarray) -> None:
        """Fill `row` ([len(columns)], zeroed) with this feature of the batch's first row: what
        `write` gives for that row, in scalar arithmetic (NumPy's per-call cost dominates one row;
        the same float64 operations in the same order, and NumPy's own functions where libm's
        could differ in the last bit)."""
        missing = False
        if self.kind in ("numeric", "cyclical"):
            x = float(batch.column(self.source)[0])
            missing = not math.isfinite(x)
            if missing and self.missing_default is not None:
                x = float(self.missing_default)
            if self.kind == "cyclical":
                angle = 2.0 * np.pi * x / self.period
                row[0] = np.sin(angle)
                row[1] = np.cos(angle)
            elif self.transform == "bucketize":
                row[bisect.bisect_right(self.boundaries, x)] = 1.0  # NaN sorts last, as searchsorted
            else:
                if self.transform == "log1p_standardize":
                    x = float(np.log1p(max(x, 0.0)))
                if self.transform in ("standardize", "log1p_standardize"):
                    x = (x - self.mean) / (self.std + 1e-8)
                if self.clip is not None:
                    x = min(max(x, self.clip[0]), self.clip[1])  # NaN stays NaN, as np.clip
                row[0] = x
        elif self.kind == "cross":
            row[self._hash.code("\x1f".join(_string_list(batch.column(s)[:1])[0] for s in self.sources))] = 1.0
        else:
            value = _string_list(batch.column(self.source)[:1])[0]
            missing = value == ""
            if missing and self.missing_default is not None:
                value = str(self.missing_default)
            if self.hash_buckets:
                row[self._hash.code(value)] = 1.0
            else:
                lookup = self._vocabulary_index
                row[lookup.get(value, len(lookup))] = 1.0
        if self.missing_indicator:
            row[-1] = missing

    @cached_property
    def _vocabulary_index(self) -> dict[str, int]:
        """Vocabulary value -> column, built on first use (a fitted feature never changes)."""
        return {v: i for i, v in enumerate(self.vocabulary or ())}

    @cached_property
    def _hash(self) -> _HashCodes:
        return _HashCodes(self.hash_buckets, self.name)


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
        return sum(self._widths)

    def fit(self, batch: RawBatch, version: str) -> "FeatureSchema":
        """Statistics and vocabularies from training data; the result is version `version`."""
        return FeatureSchema(self.name, str(version), [f.fitted(batch) for f in self.features])

    def validate(self, batch: RawBatch, shared: frozenset[str] = frozenset()) -> None:
        """Declared ranges, and missing values where the schema has no policy for them.

        `shared` names raw columns known to hold one value for every row (as in `transform`):
        their first value stands for all. A column whose values all lie in a finite declared
        range passes on one comparison (NaN and infinities compare outside it); anything else
        gets the full check, which names the first bad row."""
        for feature, bounds, finite in self._checked:
            values = batch.column(feature.source)
            if feature.source in shared and len(values):
                values = values[:1]
                value = float(values[0])  # one value: plain Python compares it faster than NumPy
                if bounds is None:
                    if feature.missing_default is not None or not math.isnan(value):
                        continue
                elif finite and bounds[0] <= value <= bounds[1]:
                    continue
            elif bounds is None:
                if feature.missing_default is not None or not np.isnan(values).any():
                    continue
            elif finite and np.logical_and(values >= bounds[0], values <= bounds[1]).all():
                continue
            self._check(feature, np.asarray(values, dtype=np.float64))

    @staticmethod
    def _check(feature: Feature, values: np.ndarray) -> None:
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

    @cached_property
    def _checked(self) -> list[tuple[Feature, tuple[float, float] | None, bool]]:
        """The features `validate` checks (numeric ones read from the request), each with its
        declared range and whether both its bounds are finite."""
        return [(f, f.range, f.range is not None and math.isfinite(f.range[0]) and math.isfinite(f.range[1]))
                for f in self.features if f.kind in ("numeric", "cyclical") and f.source in REQUEST_PATHS]

    def transform(self, batch: RawBatch, shared: frozenset[str] = frozenset()) -> np.ndarray:
        """[len(batch), dim] float32, the model input. Only fitted schemas transform.

        `shared` names raw columns known to hold one value for every row (a request's context):
        features reading only those are computed on the first row and broadcast, which gives
        the very same values for a fraction of the work."""
        if not self.fitted:
            raise SchemaError(f"schema {self.name} is a specification; fit it first (scoremesh train)")
        n = len(batch)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        per_row, by_request = self._plan(shared)
        if by_request:
            # The request's features once, into one row every candidate starts from; the
            # candidates' own columns are still zero there.
            row = np.zeros(self.dim, dtype=np.float32)
            for feature, start, stop in by_request:
                feature.write_first(batch, row[start:stop])
            out = np.empty((n, self.dim), dtype=np.float32)
            out[:] = row
        else:
            out = np.zeros((n, self.dim), dtype=np.float32)
        for feature, start, stop in per_row:
            feature.write(batch, out[:, start:stop])
        return out

    def _plan(self, shared: frozenset[str]) -> tuple[list, list]:
        """(features computed per row, features computed once per request) with their column
        ranges, decided once per set of shared columns."""
        plans = self._plans
        plan = plans.get(shared)
        if plan is None:
            per_row, by_request, start = [], [], 0
            for feature, width in zip(self.features, self._widths):
                sources = set(feature.sources if feature.kind == "cross" else (feature.source,))
                (by_request if shared and sources <= shared else per_row).append((feature, start, start + width))
                start += width
            plan = plans[shared] = (per_row, by_request)
        return plan

    @cached_property
    def _plans(self) -> dict[frozenset[str], tuple[list, list]]:
        return {}

    @cached_property
    def _widths(self) -> list[int]:
        return [len(f.columns) for f in self.features]

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
