"""Router results -> scoremesh.v1 messages. Pure functions."""

from __future__ import annotations

from scoremesh.v1 import router_pb2
from services.router.routing import Route
from services.router.scoring import ScoreResult


def score_response(result: ScoreResult, trace_id: str) -> router_pb2.ScoreResponse:
    response = router_pb2.ScoreResponse(
        request_id=result.request_id,
        model=router_pb2.ModelRef(name=result.model_name, version=result.model_version),
        trace_id=trace_id,
        route=result.route.name,
        feature_schema_version=result.schema_version,
        features_degraded=result.features_degraded,
    )
    for c in result.candidates:
        response.candidates.append(
            router_pb2.CandidateScore(
                ad_id=c.ad_id,
                score=c.score,
                member_scores=[router_pb2.MemberScore(member=n, score=s) for n, s in c.member_scores],
                confidence=c.confidence,
                bid=c.bid,
                explanation=c.explanation,
            )
        )
    return response


def explain_response(route: Route) -> router_pb2.ExplainRouteResponse:
    return router_pb2.ExplainRouteResponse(route=route.name, model_name=route.model, reason=route.reason)
