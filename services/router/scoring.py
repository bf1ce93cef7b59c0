"""One Score request end to end: route by the rules, admit, pick the split arm, run the route's
pipeline (feature extraction, model inference with a real fallback, post-processing), mirror
to the shadow, report. No gRPC here: the features and inference calls are injected (`extract`,
`infer`), so this is tested with plain functions and served with real gRPC clients
(clients.py).

Validation happens once: the router checks what it owns (request id, candidate count, data
type for routing) and relays the request to the features service, which validates the request
model (domain.request) and whose verdict on the caller's fields is passed on as is.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from domain.errors import InvalidArgument, MeshError, ModelError, UpstreamError, quote
from domain.inference_protocol import NON_FINITE_OUTPUT, SCHEMA_MISMATCH
from domain.request import MAX_STRING_LENGTH, CandidateColumns, Context, validate_candidate_count, validate_context
from mesh.metrics import LATENCY_BUCKETS
from services.router import pipeline, postprocess
from services.router.admission import AdmissionControl
from services.router.model_catalog import ModelCatalog, ModelChoice, VersionNotServed
from services.router.routing_config import Arm, Route, RoutingConfig, Stage
from services.router.rules import Match, RequestView
from mesh.telemetry_buffer import TelemetryBuffer

# What inference answers when the version asked for is gone (NOT_FOUND) or held back or
# unloading (UNAVAILABLE, also a replica that is down: then the catalog's fresh choice names the
# replicas left, or, unchanged, the error stands).
VERSION_GONE_STATUSES = ("NOT_FOUND", "UNAVAILABLE")
VERSION_GONE_RETRIES = 2
"""Times a Score asks the catalog again after its version went away during the call."""
VERSION_CHANGES = Counter("scoremesh_router_version_changes_total",
                          "Scores served by another version than the one chosen: it went away during the call (version_gone) "
                          "or the arm pins a version no replica serves (arm_version_not_served, e.g. a canary rolled back).",
                          ["ensemble", "reason"])
ROUTED = Counter("scoremesh_router_scores_total", "Scores by route, split arm, outcome and routing configuration version.",
                 ["route", "arm", "outcome", "config_version"])
STAGES = Histogram("scoremesh_router_stage_seconds", "Pipeline stage latency by outcome.", ["stage", "outcome"], buckets=LATENCY_BUCKETS)
FALLBACKS = Counter("scoremesh_router_fallbacks_total", "Scores answered by the route's fallback ensemble.", ["route", "ensemble", "fallback"])
# Failures of the route's own ensemble that the fallback ensemble may answer instead.
FALLBACK_STATUSES = frozenset({"UNAVAILABLE", "NOT_FOUND", "INTERNAL", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "DEADLINE_EXCEEDED"})


@dataclass(frozen=True)
class ScoreRequest:
    request_id: str
    context: Context
    candidates: CandidateColumns
    wire: Any = None
    """The message this request was decoded from, relayed as is to the features service (one
    conversion per hop); None when built in code."""
    caller: str = ""
    """Who calls (the x-scoremesh-caller metadata), for per-caller admission."""


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
    replica: str = ""
    """The inference instance the call went to first (monitoring compares replicas by it)."""
    replica_ms: float = 0.0
    """How long that replica made the router wait (mesh.client.Answer): queueing in a stalled
    replica included, which its own records never show."""
    replica_outrun: bool = False
    """A hedge to another replica answered before that replica did."""


@dataclass
class ScoreResult:
    """Per candidate, as columns (row i is candidate i of the request): no object per candidate
    on the hot path; the converter writes the response in one pass."""

    request_id: str
    route: str
    rule: str
    arm: str
    model_name: str
    model_version: str
    schema_version: str
    ad_ids: list[str]
    member_names: list[str]
    score: np.ndarray
    member_scores: np.ndarray
    confidence: np.ndarray
    bid: np.ndarray
    config_version: str = ""
    fallback_used: bool = False
    skipped_stages: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    features_degraded: bool = False

    def __len__(self) -> int:
        return len(self.ad_ids)


@dataclass(frozen=True)
class Explanation:
    match: Match
    route: Route
    arm: Arm
    config_version: str


# extract(request, schema_version, timeout_s, attempts)
Extract = Callable[[ScoreRequest, str, float, int | None], Awaitable[Features]]
# infer(model choice, request_id, features, timeout_s, attempts)
Infer = Callable[[ModelChoice, str, Features, float, int | None], Awaitable[Inference]]
# shadow(route, request, features, primary inference): mirrors off the caller's path
Mirror = Callable[[Route, ScoreRequest, Features, Inference], None]


@dataclass
class _Run:
    """What the stages of one Score share."""

    request: ScoreRequest
    route: Route
    arm: Arm
    deadline: float
    state: pipeline.PipelineRun
    choice: ModelChoice | None = None
    features: Features | None = None
    inference: Inference | None = None
    bid: np.ndarray | None = None
    fallback_used: bool = False
    timings: dict[str, float] = field(default_factory=dict)


class ScoringPipeline:
    def __init__(self, catalog: ModelCatalog, extract: Extract, infer: Infer, telemetry: TelemetryBuffer,
                 routing: Callable[[], RoutingConfig], admission: AdmissionControl | None = None, mirror: Mirror | None = None,
                 max_candidates: int = 1000, rng: random.Random | None = None,
                 span: Callable[[str], AbstractContextManager] = lambda _: contextlib.nullcontext()) -> None:
        self.catalog = catalog
        self.extract = extract
        self.infer = infer
        self.telemetry = telemetry
        self.routing = routing
        self.admission = admission or AdmissionControl()
        self.mirror = mirror
        self.max_candidates = max_candidates
        self.rng = rng or random.Random()
        self.span = span
        self._children: dict[tuple, Any] = {}

    def explain(self, context: Context, categories: tuple[str, ...] = ()) -> Explanation:
        """The route a request with this context would take, and why (ExplainRoute); the
        context is checked here, since no features service sees it."""
        validate_context(context)
        config = self.routing()
        match = config.rules.explain(RequestView(context, categories))
        route = config.routes[match.route]
        return Explanation(match, route, route.arm(context.user_id, self.rng), config.version)

    async def score(self, request: ScoreRequest, timeout: float) -> ScoreResult:
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        if len(request.request_id) > MAX_STRING_LENGTH:
            raise InvalidArgument(f"request_id: at most {MAX_STRING_LENGTH} characters (got {quote(request.request_id)})")
        validate_candidate_count(len(request.candidates), self.max_candidates)
        config = self.routing()  # one snapshot for the whole request: a reload never mixes in
        view = RequestView(request.context, request.candidates.category)
        route_name, rule = config.rules.rule_for(view)
        route = config.routes[route_name]
        self.admission.admit(config.version, route_name, route.admission, request.caller, config.per_caller)
        arm = route.arm(request.context.user_id, self.rng)
        run = _Run(request, route, arm, deadline, pipeline.PipelineRun(view))
        self.admission.in_flight += 1
        try:
            await pipeline.run(
                config.pipelines[route.pipeline],
                {"feature_extraction": lambda stage, t: self._extract(run, stage, t),
                 "model_inference": lambda stage, t: self._infer(run, stage, t),
                 "post_processing": lambda stage, t: self._post_process(run)},
                run.state, deadline, self._on_stage, self.span,
            )
            result = self._result(run, rule, config.version)
        except MeshError as error:
            self._count(route_name, arm.name, error.status, config.version)
            # The version chosen, when one was: its errors are its own (a version that fails is
            # found by comparing versions), not the model's at large.
            chosen = run.choice
            self._report(request, chosen.model if chosen else route.ensemble, chosen.version if chosen else "", error.status, started,
                         run.timings, [], route=route_name, arm=arm.name)
            raise
        finally:
            self.admission.in_flight -= 1
        self._count(route_name, arm.name, "OK", config.version)
        self._report(request, result.model_name, result.model_version, "OK", started, run.timings, result.score,
                     run.features.payload[: run.features.cols * 4] if run.features is not None else b"", route=route_name, arm=arm.name,
                     replica=run.inference, result=result)
        if self.mirror is not None and route.mirrors(self.rng):
            self.mirror(route, request, run.features, run.inference)
        return result

    # ------------------------------------------------------------------ stages
    @staticmethod
    def _attempts(stage: Stage) -> int | None:
        """retry: the stage's attempts; fail and skip: one; fallback: the client's default."""
        return {"retry": stage.attempts, "fail": 1, "skip": 1}.get(stage.on_error)

    async def _extract(self, run: _Run, stage: Stage, timeout: float) -> None:
        t = time.perf_counter()
        run.choice = await self._choose(run)
        run.features = await self.extract(run.request, run.choice.schema_version, timeout, self._attempts(stage))
        run.state.outputs["feature_extraction.degraded"] = run.features.degraded
        run.timings["features"] = (time.perf_counter() - t) * 1000

    async def _choose(self, run: _Run) -> ModelChoice:
        """The arm's version; when the arm pins one that no replica serves any more (a canary
        rolled back), the newest served instead, as a rollout tool sends an aborted canary's
        traffic back to the stable version. The response names the version that answered."""
        try:
            return await self.catalog.choose(run.route.ensemble, run.arm.version)
        except VersionNotServed:
            VERSION_CHANGES.labels(run.route.ensemble, "arm_version_not_served").inc()
            return await self.catalog.choose(run.route.ensemble)

    async def _infer(self, run: _Run, stage: Stage, timeout: float) -> None:
        t = time.perf_counter()
        deadline = time.monotonic() + timeout
        chosen = run.choice.version
        try:
            for changes in range(VERSION_GONE_RETRIES + 1):
                try:
                    run.inference = await self._call_model(run.choice, run, deadline, self._attempts(stage))
                    if run.choice.version != chosen:
                        VERSION_CHANGES.labels(run.route.ensemble, "version_gone").inc()
                    break
                except UpstreamError as error:
                    # The version chosen went away under us (rolled back, unloaded): ask the
                    # catalog again and call what it now gives — another version, or the same one
                    # on the replicas that still serve it (a rollback reaches replicas one by one).
                    if error.status not in VERSION_GONE_STATUSES or changes == VERSION_GONE_RETRIES or time.monotonic() >= deadline:
                        raise
                    self.catalog.invalidate(run.choice.model)
                    again = await self._choose(run)
                    if (again.version, again.addresses) == (run.choice.version, run.choice.addresses):
                        raise
                    if again.feature_schema != run.features.schema:
                        run.features = await self.extract(run.request, again.schema_version, deadline - time.monotonic(), None)
                    run.choice = again
        except MeshError as error:
            fallback = run.route.fallback
            if stage.on_error != "fallback" or not fallback or error.status not in FALLBACK_STATUSES or time.monotonic() >= deadline:
                raise
            choice = await self.catalog.choose(fallback)
            if choice.feature_schema != run.features.schema:  # the fallback was trained on another schema version
                run.features = await self.extract(run.request, choice.schema_version, deadline - time.monotonic(), None)
            run.inference = await self._call_model(choice, run, deadline, None)
            run.fallback_used = True
            run.state.outputs["model_inference.fallback_used"] = True
            FALLBACKS.labels(run.route.name, run.route.ensemble, fallback).inc()
        finally:
            run.timings["inference"] = (time.perf_counter() - t) * 1000
        confidence, n = run.inference.confidence, len(run.inference.confidence)
        # Ufuncs' reduce directly: ndarray.mean goes through Python-level helpers (~4 us each).
        outputs = run.state.outputs
        outputs["model_inference.confidence_mean"] = float(np.add.reduce(confidence, dtype=np.float64)) / n if n else 0.0
        outputs["model_inference.confidence_min"] = float(np.minimum.reduce(confidence)) if n else 0.0
        outputs["model_inference.score_mean"] = float(np.add.reduce(run.inference.score, dtype=np.float64)) / n if n else 0.0

    async def _call_model(self, choice: ModelChoice, run: _Run, deadline: float, attempts: int | None) -> Inference:
        try:
            inference = await self.infer(choice, run.request.request_id, run.features, deadline - time.monotonic(), attempts)
        except UpstreamError as error:
            if error.reason == SCHEMA_MISMATCH or error.status == "NOT_FOUND":
                self.catalog.invalidate(choice.model)  # a replica no longer serves that version
            raise
        for name in ("score", "member_scores", "confidence"):
            if not np.isfinite(getattr(inference, name)).all():
                raise ModelError(
                    f"model {inference.model_name} v{inference.model_version} answered non-finite {name}; the result is withheld",
                    reason=NON_FINITE_OUTPUT, info={"model": inference.model_name, "version": inference.model_version},
                )
        return inference

    async def _post_process(self, run: _Run) -> None:
        candidates = run.request.candidates
        run.bid = postprocess.bids(
            run.request.context, run.inference.score,
            np.asarray(candidates.bid_amount, dtype=np.float64), np.asarray(candidates.quality_score, dtype=np.float64),
        )

    def _on_stage(self, stage: str, outcome: str, seconds: float) -> None:
        child = self._children.get((stage, outcome))
        if child is None:
            child = self._children[(stage, outcome)] = STAGES.labels(stage, outcome)
        child.observe(seconds)

    def _count(self, *labels: str) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = ROUTED.labels(*labels)  # label children bound once
        child.inc()

    def _result(self, run: _Run, rule: str, config_version: str) -> ScoreResult:
        inference, features = run.inference, run.features
        bid = run.bid if run.bid is not None else np.zeros(len(run.request.candidates))
        return ScoreResult(
            run.request.request_id, run.route.name, rule, run.arm.name, inference.model_name, inference.model_version,
            features.schema_version, list(run.request.candidates.ad_id), inference.member_names, inference.score,
            inference.member_scores, inference.confidence, bid, config_version, run.fallback_used, list(run.state.skipped),
            run.timings, features.degraded,
        )

    def _report(self, request: ScoreRequest, model: str, version: str, status: str, started: float, timings: dict, scores,
                first_row: bytes = b"", route: str = "", arm: str = "", replica: Inference | None = None,
                result: ScoreResult | None = None) -> None:
        """Telemetry off the hot path; with the first candidate's input row (raw float32 bytes,
        decoded only when the batch is sent) for drift."""
        self.telemetry.offer(
            {
                "request_id": request.request_id,
                "model_name": model,
                "model_version": version,
                "status": status,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "features_ms": timings.get("features", 0.0),
                "inference_ms": timings.get("inference", 0.0),
                "inference_instance_id": replica.replica if replica is not None else "",
                "inference_attempt_ms": replica.replica_ms if replica is not None else 0.0,
                "inference_outrun": replica.replica_outrun if replica is not None else False,
                # What feedback is joined to (converted off the hot path, with the rest). Tuples
                # of strings, which the garbage collector stops tracking: a buffer of 10,000
                # records (monitoring down) must not make every collection slower.
                "ad_ids": tuple(result.ad_ids) if result is not None else (),
                "member_names": tuple(result.member_names) if result is not None else (),
                "member_scores": result.member_scores if result is not None else (),
                "candidates": len(request.candidates),
                "scores": scores,
                "timestamp": time.time(),
                "features": first_row,
                "route": route,
                "split_arm": arm,
                "service": "router",
            }
        )
