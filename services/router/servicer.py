"""`scoremesh.v1.Router`: protobuf in, protobuf out; the work is in scoring.py."""

from __future__ import annotations

import uuid

from mesh.client import remaining_timeout
from mesh.telemetry import current_trace_id
from scoremesh.v1 import router_pb2_grpc
from services.features.converters import candidates_from_proto, context_from_proto
from services.features.raw import validate_context
from services.router import converters
from services.router.routing import choose_route
from services.router.scoring import ScoringPipeline


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, pipeline: ScoringPipeline, default_timeout_s: float) -> None:
        self.pipeline = pipeline
        self.default_timeout_s = default_timeout_s

    async def Score(self, request, context):
        timeout = remaining_timeout(context, self.default_timeout_s)
        result = await self.pipeline.score(
            request.request_id or uuid.uuid4().hex,
            context_from_proto(request.data_type, request.context),
            candidates_from_proto(request.candidates),
            timeout,
        )
        return converters.score_response(result, current_trace_id())

    async def ExplainRoute(self, request, context):
        request_context = context_from_proto(request.data_type, request.context)
        validate_context(request_context)
        return converters.explain_response(choose_route(request_context))
