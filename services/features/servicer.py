"""`scoremesh.v1.FeatureService`: protobuf in, protobuf out; the work is in extraction.py."""

from __future__ import annotations

from scoremesh.v1 import features_pb2, features_pb2_grpc
from services.features import converters
from services.features.extraction import FeatureExtractor


class FeatureServicer(features_pb2_grpc.FeatureServiceServicer):
    def __init__(self, extractor: FeatureExtractor) -> None:
        self.extractor = extractor

    async def Extract(self, request, context):
        matrix = self.extractor.extract(
            converters.context_from_proto(request.data_type, request.context),
            converters.candidates_from_proto(request.candidates),
        )
        schema = self.extractor.schema
        return converters.matrix_to_proto(schema.name, schema.version, matrix)

    async def GetSchema(self, request, context):
        schema = self.extractor.schema
        return features_pb2.GetSchemaResponse(
            schema_name=schema.name, schema_version=schema.version, column_names=schema.column_names
        )
