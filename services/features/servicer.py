"""`scoremesh.v1.FeatureService`: protobuf in, protobuf out; the work is in extraction.py."""

from __future__ import annotations

from mesh.admin_auth import check_bearer
from mesh.client import remaining_timeout
from mesh.handlers import header
from scoremesh.v1 import features_pb2, features_pb2_grpc
from services.features import converters
from services.features.extraction import FeatureExtractor

# Leave this share of the caller's remaining deadline for the rest of the request: the store
# lookup gets at most the rest.
STORE_BUDGET_SHARE = 0.5


class FeatureServicer(features_pb2_grpc.FeatureServiceServicer):
    def __init__(self, extractor: FeatureExtractor, admin_token: str | None = None) -> None:
        self.extractor = extractor
        self.admin_token = admin_token

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

    async def ClearCache(self, request, context):
        check_bearer(header(context, "authorization"), self.admin_token, "cache clears")
        return features_pb2.ClearCacheResponse(entries_dropped=self.extractor.enricher.clear_cache())
