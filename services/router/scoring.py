"""One Score request end to end: validate, route, extract, infer, post-process, report.

No gRPC here: the features and inference calls are injected (`extract`, `infer`), so this is
tested with plain functions and served with real gRPC clients (app.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from mesh.errors import MeshError, UpstreamError
from services.features.raw import CandidateColumns, Context, validate
from services.router import postprocess
from services.router.routing import Route, choose_route
from services.inference.protocol import SCHEMA_MISMATCH
from services.router.telemetry_buffer import TelemetryBuffer


@dataclass(frozen=True)
class Features:
    matrix: np.ndarray
    schema_name: str
    schema_version: str
    degraded: bool = False

    @property
    def schema(self) -> str:
        return f"{self.schema_name}/{self.schema_version}"


@dataclass(frozen=True)
class Inference:
    model_name: str
    model_version: str
    member_names: list[str]
    score: np.ndarray
    member_scores: np.ndarray
    confidence: np.ndarray
    feature_schema: str = ""  # "name/version" the model was trained on


@dataclass(frozen=True)
class ScoredCandidate:
    ad_id: str
    score: float
    member_scores: list[tuple[str, float]]
    confidence: float
    bid: float
    explanation: str


@dataclass
class ScoreResult:
    request_id: str
    route: Route
    model_name: str
    model_version: str
    schema_version: str
    candidates: list[ScoredCandidate]
    timings_ms: dict[str, float] = field(default_factory=dict)
    features_degraded: bool = False


# extract(request_id, context, candidates, timeout_s, schema_version) ; "" = newest schema
Extract = Callable[[str, Context, CandidateColumns, float, str], Awaitable[Features]]
# infer(model, request_id, matrix, timeout_s, feature_schema "name/version")
Infer = Callable[[str, str, np.ndarray, float, str], Awaitable[Inference]]


class ScoringPipeline:
    def __init__(self, extract: Extract, infer: Infer, telemetry: TelemetryBuffer, max_candidates: int = 1000) -> None:
        self.extract = extract
        self.infer = infer
        self.telemetry = telemetry
        self.max_candidates = max_candidates
        # model -> the schema version it was trained on, learned from inference's answers.
        self.schema_versions: dict[str, str] = {}

    async def score(self, request_id: str, context: Context, candidates: CandidateColumns, timeout: float) -> ScoreResult:
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        validate(context, candidates, self.max_candidates)
        route = choose_route(context)
        timings: dict[str, float] = {}
        model_version = ""
        try:
            features, inference = await self._features_and_inference(request_id, route.model, context, candidates, deadline, timings)
            model_version = inference.model_version
            result = self._assemble(request_id, route, context, candidates, features, inference)
        except MeshError as error:
            self._report(request_id, route.model, model_version, error.status, started, timings, len(candidates.bid_amount), [])
            raise
        result.timings_ms = timings
        self._report(request_id, route.model, model_version, "OK", started, timings, len(candidates.bid_amount), [c.score for c in result.candidates])
        return result

    async def _features_and_inference(self, request_id, model, context, candidates, deadline, timings):
        """Build features with the schema version the model was trained on. Until the router has
        seen the model answer, it asks for the newest version; a model trained on another one
        answers FEATURE_SCHEMA_MISMATCH naming it, and the request is built again with it."""
        for attempt in range(2):
            t = time.perf_counter()
            version = self.schema_versions.get(model, "").rpartition("/")[2]
            features = await self.extract(request_id, context, candidates, deadline - time.monotonic(), version)
            timings["features"] = timings.get("features", 0.0) + (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            try:
                inference = await self.infer(model, request_id, features.matrix, deadline - time.monotonic(), features.schema)
            except UpstreamError as error:
                if error.reason != SCHEMA_MISMATCH or attempt or not error.info.get("expected"):
                    raise
                self.schema_versions[model] = error.info["expected"]
                continue
            finally:
                timings["inference"] = timings.get("inference", 0.0) + (time.perf_counter() - t) * 1000
            if inference.feature_schema:
                self.schema_versions[model] = inference.feature_schema
            return features, inference
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _assemble(request_id, route, context, candidates, features, inference) -> ScoreResult:
        bid = postprocess.bids(
            context,
            inference.score,
            np.asarray(candidates.bid_amount, dtype=np.float64),
            np.asarray(candidates.quality_score, dtype=np.float64),
        )
        scored = []
        for i, ad_id in enumerate(candidates.ad_id):
            score = float(inference.score[i])
            confidence = float(inference.confidence[i])
            scored.append(
                ScoredCandidate(
                    ad_id=ad_id,
                    score=score,
                    member_scores=[(name, float(inference.member_scores[i, k])) for k, name in enumerate(inference.member_names)],
                    confidence=confidence,
                    bid=float(bid[i]),
                    explanation=postprocess.explanation(score, confidence, inference.member_names),
                )
            )
        return ScoreResult(
            request_id, route, inference.model_name, inference.model_version, features.schema_version, scored,
            features_degraded=features.degraded,
        )

    def _report(self, request_id, model, version, status, started, timings, n, scores) -> None:
        self.telemetry.offer(
            {
                "request_id": request_id,
                "model_name": model,
                "model_version": version,
                "status": status,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "features_ms": timings.get("features", 0.0),
                "inference_ms": timings.get("inference", 0.0),
                "candidates": n,
                "scores": scores,
                "timestamp": time.time(),
            }
        )
