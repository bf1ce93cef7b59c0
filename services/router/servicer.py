"""`scoremesh.v1.Router`: protobuf in, protobuf out; the work is in scoring.py."""

from __future__ import annotations

from mesh.client import remaining_timeout
from mesh.telemetry import current_trace_id
from scoremesh.v1 import router_pb2_grpc
from services.router import converters
from services.router.scoring import ScoringPipeline


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, pipeline: ScoringPipeline, default_timeout_s: float) -> None:
        self.pipeline = pipeline
        self.default_timeout_s = default_timeout_s

    async def Score(self, request, context):
        timeout = remaining_timeout(context, self.default_timeout_s)
        result = await self.pipeline.score(converters.score_request_from_proto(request), timeout)
        return converters.score_response(result, current_trace_id())

    async def ExplainRoute(self, request, context):
        return converters.explain_response(self.pipeline.explain(converters.explain_request_from_proto(request)))
