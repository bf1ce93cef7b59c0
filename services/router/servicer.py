"""`scoremesh.v1.Router`: protobuf in, protobuf out; the work is in scoring.py and admin.py."""

from __future__ import annotations

from mesh.client import remaining_timeout
from mesh.handlers import header
from mesh.telemetry import current_trace_id
from scoremesh.v1 import router_pb2_grpc
from services.router import converters
from services.router.admin import RoutingAdmin
from services.router.scoring import ScoringPipeline

CALLER_HEADER = "x-scoremesh-caller"


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, pipeline: ScoringPipeline, admin: RoutingAdmin, default_timeout_s: float) -> None:
        self.pipeline = pipeline
        self.admin = admin
        self.default_timeout_s = default_timeout_s

    async def Score(self, request, context):
        timeout = remaining_timeout(context, self.default_timeout_s)
        result = await self.pipeline.score(converters.score_request_from_proto(request, header(context, CALLER_HEADER)), timeout)
        return converters.score_response(result, current_trace_id())

    async def ExplainRoute(self, request, context):
        return converters.explain_response(self.pipeline.explain(converters.explain_request_from_proto(request)))

    async def GetRoutingConfig(self, request, context):
        return converters.routing_config_to_proto(*self.admin.current())

    async def ApplyRoutingConfig(self, request, context):
        return converters.applied_to_proto(self.admin.apply(request.yaml, request.dry_run, header(context, "authorization")))
