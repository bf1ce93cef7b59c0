"""scoremesh.v1 Router messages <-> the router's domain types. Pure functions."""

from __future__ import annotations

import uuid

import numpy as np

from domain.request import CandidateColumns, Context
from mesh.common_messages import candidates_from_proto, candidates_to_proto, context_from_proto, context_to_proto
from scoremesh.v1 import monitoring_pb2, router_pb2
from services.router import postprocess
from services.router.admin import Applied
from services.router.routing_config import RoutingConfig
from services.router.scoring import Explanation, ScoreRequest, ScoreResult


def score_request_from_proto(request: router_pb2.ScoreRequest, caller: str = "") -> ScoreRequest:
    """The request as the domain sees it; it keeps the message, which is relayed downstream."""
    return ScoreRequest(
        request_id=request.request_id or uuid.uuid4().hex,
        context=context_from_proto(request.data_type, request.context),
        candidates=candidates_from_proto(request.candidates),
        wire=request,
        caller=caller[:128],
    )


def score_request_to_proto(request_id: str, context: Context, candidates: CandidateColumns) -> router_pb2.ScoreRequest:
    """For callers holding domain values (the CLI, tests)."""
    data_type, proto_context = context_to_proto(context)
    return router_pb2.ScoreRequest(request_id=request_id, data_type=data_type, context=proto_context, candidates=candidates_to_proto(candidates))


def score_response(result: ScoreResult, trace_id: str) -> router_pb2.ScoreResponse:
    response = router_pb2.ScoreResponse(
        request_id=result.request_id,
        model=router_pb2.ModelRef(name=result.model_name, version=result.model_version),
        trace_id=trace_id,
        route=result.route,
        feature_schema_version=result.schema_version,
        features_degraded=result.features_degraded,
        rule=result.rule,
        split_arm=result.arm,
        fallback_used=result.fallback_used,
        config_version=result.config_version,
        skipped_stages=result.skipped_stages,
    )
    members = result.member_names
    used = postprocess.members_used(members)
    add = response.candidates.add  # in place: no intermediate message per candidate
    for ad_id, score, confidence, bid, member_scores in zip(
        result.ad_ids, result.score.tolist(), result.confidence.tolist(), result.bid.tolist(), result.member_scores.tolist()
    ):
        candidate = add(ad_id=ad_id, score=score, confidence=confidence, bid=bid, explanation=postprocess.explanation(score, confidence, used))
        add_member = candidate.member_scores.add
        for member, value in zip(members, member_scores):
            add_member(member=member, score=value)
    return response


def explain_request_from_proto(request: router_pb2.ExplainRouteRequest) -> Context:
    return context_from_proto(request.data_type, request.context)


def explain_response(explanation: Explanation) -> router_pb2.ExplainRouteResponse:
    match, route = explanation.match, explanation.route
    reason = f"rule {match.rule} matched" if match.rule else f"no rule matched: the default route {route.name}"
    return router_pb2.ExplainRouteResponse(
        route=route.name, model_name=route.ensemble, reason=reason, rule=match.rule,
        evaluations=[router_pb2.RuleEvaluation(rule=e.rule, matched=e.matched, failed_condition=e.failed) for e in match.evaluations],
        split_arm=explanation.arm.name, model_version=explanation.arm.version, fallback_model=route.fallback,
        config_version=explanation.config_version,
    )


def routing_config_to_proto(config: RoutingConfig, source: str) -> router_pb2.GetRoutingConfigResponse:
    return router_pb2.GetRoutingConfigResponse(version=config.version, yaml=config.to_yaml(), source=source)


def applied_to_proto(applied: Applied) -> router_pb2.ApplyRoutingConfigResponse:
    config = applied.config
    return router_pb2.ApplyRoutingConfigResponse(version=config.version, applied=applied.applied, rules=len(config.rules.rules),
                                                 routes=len(config.routes))


def telemetry_to_proto(batch: list[dict]) -> monitoring_pb2.ReportRequest:
    """The records; each input row goes as the float32 bytes it came in (`features_raw`)."""
    return monitoring_pb2.ReportRequest(
        records=[monitoring_pb2.TelemetryRecord(**{**r, "scores": np.asarray(r["scores"], dtype=np.float64).tolist(),
                                                   "member_scores": np.asarray(r.get("member_scores", ()), dtype=np.float64).ravel().tolist(),
                                                   "features": (), "features_raw": r.get("features", b"")}) for r in batch]
    )
