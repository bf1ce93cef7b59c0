"""Extract: validate a raw request and build its feature matrix. No gRPC here."""

from __future__ import annotations

import numpy as np

from services.features.raw import CandidateColumns, Context, RawBatch, validate
from services.features.schema import FeatureSchema


class FeatureExtractor:
    def __init__(self, schema: FeatureSchema, max_candidates: int = 1000) -> None:
        self.schema = schema
        self.max_candidates = max_candidates

    def extract(self, context: Context, candidates: CandidateColumns) -> np.ndarray:
        validate(context, candidates, self.max_candidates)
        return self.schema.transform(RawBatch.from_request(context, candidates))
