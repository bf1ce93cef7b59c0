"""One Score request end to end: route, pick the model version, extract, infer, post-process,
report. No gRPC here: the features and inference calls are injected (`extract`, `infer`), so this
is tested with plain functions and served with real gRPC clients (clients.py).

Validation happens once: the router checks what it owns (request id, candidate count, data
type for routing) and relays the request to the features service, which validates the request
model (domain.request) and whose verdict on the caller's fields is passed on as is.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domain.errors import InvalidArgument, MeshError, ModelError, UpstreamError, quote
from domain.inference_protocol import NON_FINITE_OUTPUT, SCHEMA_MISMATCH
from domain.request import MAX_STRING_LENGTH, CandidateColumns, Context, validate_candidate_count, validate_context
from services.router import postprocess
from services.router.model_catalog import ModelCatalog, ModelChoice
from services.router.routing import Route, choose_route
from services.router.telemetry_buffer import TelemetryBuffer


@dataclass(frozen=True)
class ScoreRequest:
    request_id: str
    context: Context
    candidates: CandidateColumns
    wire: Any = None
    """The message this request was decoded from, relayed as is to the features service (one
    conversion per hop); None when built in code."""


@dataclass(frozen=True)
class Features:
    payload: bytes
    """rows x cols little-endian float32, row-major, as the features service sent it."""
    rows: int
    cols: int
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


@dataclass
class ScoreResult:
    """Per candidate, as columns (row i is candidate i of the request): no object per candidate
    on the hot path; the converter writes the response in one pass."""

    request_id: str
    route: Route
    model_name: str
    model_version: str
    schema_version: str
    ad_ids: list[str]
    member_names: list[str]
    score: np.ndarray
    member_scores: np.ndarray
    confidence: np.ndarray
    bid: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)
    features_degraded: bool = False

    def __len__(self) -> int:
        return len(self.ad_ids)


# extract(request, schema_version, timeout_s)
Extract = Callable[[ScoreRequest, str, float], Awaitable[Features]]
# infer(model choice, request_id, features, timeout_s)
Infer = Callable[[ModelChoice, str, Features, float], Awaitable[Inference]]


class ScoringPipeline:
    def __init__(self, catalog: ModelCatalog, extract: Extract, infer: Infer, telemetry: TelemetryBuffer, max_candidates: int = 1000) -> None:
        self.catalog = catalog
        self.extract = extract
        self.infer = infer
        self.telemetry = telemetry
        self.max_candidates = max_candidates

    def explain(self, context: Context) -> Route:
        """The route a request with this context takes (ExplainRoute); the context is checked
        here, since no features service sees it."""
        validate_context(context)
        return choose_route(context)

    async def score(self, request: ScoreRequest, timeout: float) -> ScoreResult:
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        if len(request.request_id) > MAX_STRING_LENGTH:
            raise InvalidArgument(f"request_id: at most {MAX_STRING_LENGTH} characters (got {quote(request.request_id)})")
        validate_candidate_count(len(request.candidates), self.max_candidates)
        route = choose_route(request.context)
        timings: dict[str, float] = {}
        model_version = ""
        try:
            choice = await self.catalog.choose(route.model)
            t = time.perf_counter()
            features = await self.extract(request, choice.schema_version, deadline - time.monotonic())
            timings["features"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            try:
                inference = await self.infer(choice, request.request_id, features, deadline - time.monotonic())
            except UpstreamError as error:
                if error.reason == SCHEMA_MISMATCH or error.status == "NOT_FOUND":
                    self.catalog.invalidate(route.model)  # a replica no longer serves that version
                raise
            finally:
                timings["inference"] = (time.perf_counter() - t) * 1000
            model_version = inference.model_version
            result = self._assemble(request, route, features, inference)
        except MeshError as error:
            self._report(request, route.model, model_version, error.status, started, timings, [])
            raise
        result.timings_ms = timings
        self._report(request, route.model, model_version, "OK", started, timings, result.score)
        return result

    @staticmethod
    def _assemble(request: ScoreRequest, route: Route, features: Features, inference: Inference) -> ScoreResult:
        for name in ("score", "member_scores", "confidence"):
            if not np.isfinite(getattr(inference, name)).all():
                raise ModelError(
                    f"model {inference.model_name} v{inference.model_version} answered non-finite {name}; the result is withheld",
                    reason=NON_FINITE_OUTPUT, info={"model": inference.model_name, "version": inference.model_version},
                )
        candidates = request.candidates
        bid = postprocess.bids(
            request.context,
            inference.score,
            np.asarray(candidates.bid_amount, dtype=np.float64),
            np.asarray(candidates.quality_score, dtype=np.float64),
        )
        return ScoreResult(
            request.request_id, route, inference.model_name, inference.model_version, features.schema_version,
            list(candidates.ad_id), inference.member_names, inference.score, inference.member_scores, inference.confidence, bid,
            features_degraded=features.degraded,
        )

    def _report(self, request: ScoreRequest, model: str, version: str, status: str, started: float, timings: dict, scores: list) -> None:
        self.telemetry.offer(
            {
                "request_id": request.request_id,
                "model_name": model,
                "model_version": version,
                "status": status,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "features_ms": timings.get("features", 0.0),
                "inference_ms": timings.get("inference", 0.0),
                "candidates": len(request.candidates),
                "scores": scores,
                "timestamp": time.time(),
            }
        )
