"""One Score request end to end: validate, route, extract, infer, post-process, report.

No gRPC here: the features and inference calls are injected (`extract`, `infer`), so this is
tested with plain functions and served with real gRPC clients (app.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from mesh.errors import MeshError
from services.features.raw import CandidateColumns, Context, validate
from services.router import postprocess
from services.router.routing import Route, choose_route
from services.router.telemetry_buffer import TelemetryBuffer


@dataclass(frozen=True)
class Features:
    matrix: np.ndarray
    schema_version: str


@dataclass(frozen=True)
class Inference:
    model_name: str
    model_version: str
    member_names: list[str]
    score: np.ndarray
    member_scores: np.ndarray
    confidence: np.ndarray


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


Extract = Callable[[str, Context, CandidateColumns, float], Awaitable[Features]]
Infer = Callable[[str, str, np.ndarray, float], Awaitable[Inference]]


class ScoringPipeline:
    def __init__(self, extract: Extract, infer: Infer, telemetry: TelemetryBuffer, max_candidates: int = 1000) -> None:
        self.extract = extract
        self.infer = infer
        self.telemetry = telemetry
        self.max_candidates = max_candidates

    async def score(self, request_id: str, context: Context, candidates: CandidateColumns, timeout: float) -> ScoreResult:
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        validate(context, candidates, self.max_candidates)
        route = choose_route(context)
        timings: dict[str, float] = {}
        model_version = ""
        try:
            t = time.perf_counter()
            features = await self.extract(request_id, context, candidates, deadline - time.monotonic())
            timings["features"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            inference = await self.infer(route.model, request_id, features.matrix, deadline - time.monotonic())
            timings["inference"] = (time.perf_counter() - t) * 1000
            model_version = inference.model_version
            result = self._assemble(request_id, route, context, candidates, features, inference)
        except MeshError as error:
            self._report(request_id, route.model, model_version, error.status, started, timings, len(candidates.bid_amount), [])
            raise
        result.timings_ms = timings
        self._report(request_id, route.model, model_version, "OK", started, timings, len(candidates.bid_amount), [c.score for c in result.candidates])
        return result

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
        return ScoreResult(request_id, route, inference.model_name, inference.model_version, features.schema_version, scored)

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
