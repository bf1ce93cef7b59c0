"""`scoremesh.v1.FeatureService`: protobuf in, protobuf out; the work is in extraction.py."""

from __future__ import annotations

from mesh.client import remaining_timeout
from scoremesh.v1 import features_pb2_grpc
from services.features import converters
from services.features.extraction import FeatureExtractor

# Leave this share of the caller's remaining deadline for the rest of the request: the store
# lookup gets at most the rest.
STORE_BUDGET_SHARE = 0.5


class FeatureServicer(features_pb2_grpc.FeatureServiceServicer):
    def __init__(self, extractor: FeatureExtractor) -> None:
        self.extractor = extractor

    async def Extract(self, request, context):
        budget = remaining_timeout(context, 10.0) * STORE_BUDGET_SHARE
        request_context, candidates = converters.extract_request_from_proto(request)
        result = await self.extractor.extract(request_context, candidates, request.schema_version, budget)
        return converters.matrix_to_proto(
            result.schema.name, result.schema.version, result.matrix, result.lookups.degraded, result.lookups.reason,
            typed=request.typed_values,
        )

    async def GetSchema(self, request, context):
        schema = self.extractor.schemas.get(request.schema_version)
        return converters.schema_to_proto(schema, self.extractor.schemas.versions())
