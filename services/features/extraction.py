"""Extract: validate a raw request, merge the online store's lookups, build its feature matrix
with the requested fitted schema version. No gRPC here."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from domain.errors import FailedPrecondition, NotFound, quote
from services.features.enrichment import Enricher, LookupStatus
from domain.features.raw import SHARED_BY_REQUEST, RawBatch
from domain.request import CandidateColumns, Context, validate
from domain.features.schema import FeatureSchema, SchemaError
from domain.features.schema_store import SchemaStore


class SchemaVersions:
    """Every fitted version of one schema, loaded on first use; new versions are seen as soon as
    training writes them (the version list is re-read at most every `refresh_s`)."""

    def __init__(self, store: SchemaStore, name: str, refresh_s: float = 2.0) -> None:
        self.store = store
        self.name = name
        self.refresh_s = refresh_s
        self._loaded: dict[str, FeatureSchema] = {}
        self._versions: list[str] = []
        self._listed_at = -float("inf")

    def versions(self) -> list[str]:
        if time.monotonic() - self._listed_at > self.refresh_s:
            self._versions = self.store.versions(self.name)
            self._listed_at = time.monotonic()
        return self._versions

    def get(self, version: str = "") -> FeatureSchema:
        versions = self.versions()
        if not versions:
            raise FailedPrecondition(f"no fitted version of feature schema {self.name} yet (run `scoremesh train`)")
        version = version or versions[-1]
        if version not in self._loaded:
            if version not in versions:
                self._listed_at = -float("inf")  # maybe written a moment ago
                if version not in self.versions():
                    raise NotFound(f"schema_version: feature schema {self.name} has no version {quote(version)} (versions: {', '.join(versions)})")
            try:
                self._loaded[version] = self.store.load(self.name, version)
            except SchemaError as error:
                raise FailedPrecondition(str(error)) from None
        return self._loaded[version]


@dataclass(frozen=True)
class Extraction:
    matrix: np.ndarray
    schema: FeatureSchema
    lookups: LookupStatus


class FeatureExtractor:
    def __init__(self, schemas: SchemaVersions, enricher: Enricher, max_candidates: int = 1000) -> None:
        self.schemas = schemas
        self.enricher = enricher
        self.max_candidates = max_candidates

    async def extract(self, context: Context, candidates: CandidateColumns, version: str = "", budget_s: float | None = None) -> Extraction:
        validate(context, candidates, self.max_candidates)
        schema = self.schemas.get(version)
        batch = RawBatch.from_request(context, candidates)
        schema.validate(batch, shared=SHARED_BY_REQUEST)
        batch, lookups = await self.enricher.enrich(batch, budget_s)
        return Extraction(schema.transform(batch, shared=SHARED_BY_REQUEST), schema, lookups)
