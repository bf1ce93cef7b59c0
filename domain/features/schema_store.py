"""Fitted schema versions on disk: `<dir>/<name>/<version>.yaml`, shared by training (writes),
the features service (serves every version) and the inference service (checks that a model's
schema version exists)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from domain.features.schema import FeatureSchema, SchemaError


class SchemaStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, name: str, version: str) -> Path:
        if not name.isidentifier() or not str(version).isdigit():
            raise SchemaError(f"schema {name!r} version {version!r}: names are identifiers, versions integers")
        return self.directory / name / f"{version}.yaml"

    def versions(self, name: str) -> list[str]:
        folder = self.directory / name
        if not folder.is_dir():
            return []
        return sorted((p.stem for p in folder.glob("*.yaml") if p.stem.isdigit()), key=int)

    def load(self, name: str, version: str = "") -> FeatureSchema:
        """A fitted version (empty: the newest)."""
        if not version:
            versions = self.versions(name)
            if not versions:
                raise SchemaError(f"no fitted versions of feature schema {name} in {self.directory} (run `scoremesh train`)")
            version = versions[-1]
        path = self._path(name, version)
        if not path.is_file():
            raise SchemaError(f"unknown feature schema {name} version {version} (no {path})")
        schema = FeatureSchema.from_dict(yaml.safe_load(path.read_text()), origin=str(path))
        if schema.version != str(version):
            raise SchemaError(f"{path}: says version {schema.version!r}")
        return schema

    def save(self, fitted: FeatureSchema) -> FeatureSchema:
        """Store a fitted schema as the next version, or return the newest version when it is
        identical (refitting on the same data must not multiply versions)."""
        versions = self.versions(fitted.name)
        if versions:
            newest = self.load(fitted.name, versions[-1])
            if FeatureSchema(newest.name, "", newest.features).to_dict() == FeatureSchema(fitted.name, "", fitted.features).to_dict():
                return newest
        version = str(int(versions[-1]) + 1 if versions else 1)
        schema = FeatureSchema(fitted.name, version, fitted.features)
        path = self._path(schema.name, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as out:
            out.write(schema.to_yaml())
        os.replace(tmp, path)
        return schema
