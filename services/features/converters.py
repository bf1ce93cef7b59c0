"""scoremesh.v1 FeatureService messages <-> the domain (request model, feature matrices,
schemas). Pure functions, round-trip tested."""

from __future__ import annotations

import numpy as np

from domain.features.schema import FeatureSchema
from domain.request import CandidateColumns, Context
from mesh.common_messages import candidates_from_proto, context_from_proto
from scoremesh.v1 import features_pb2

def extract_request_from_proto(request: features_pb2.ExtractRequest) -> tuple[Context, CandidateColumns]:
    return context_from_proto(request.data_type, request.context), candidates_from_proto(request.candidates)


def matrix_to_proto(
    schema_name: str, schema_version: str, matrix: np.ndarray, store_degraded: bool = False, store_status: str = "",
    typed: bool = False,
) -> features_pb2.ExtractResponse:
    rows, cols = matrix.shape
    response = features_pb2.ExtractResponse(
        schema_name=schema_name, schema_version=schema_version, rows=rows, cols=cols,
        store_degraded=store_degraded, store_status=store_status,
    )
    if typed:
        response.values.extend(matrix.astype(np.float32).ravel().tolist())
    else:
        response.raw_values = np.ascontiguousarray(matrix, dtype="<f4").tobytes()
    return response


def schema_to_proto(schema: FeatureSchema, versions: list[str]) -> features_pb2.GetSchemaResponse:
    response = features_pb2.GetSchemaResponse(
        schema_name=schema.name, schema_version=schema.version, column_names=schema.column_names,
        versions=versions, schema_yaml=schema.to_yaml(),
    )
    first = 0
    for feature in schema.features:
        width = len(feature.columns)
        response.features.add(
            name=feature.name, kind=feature.kind,
            sources=list(feature.sources) if feature.kind == "cross" else [feature.source],
            first_column=first, column_count=width,
        )
        first += width
    return response


def matrix_from_proto(response: features_pb2.ExtractResponse) -> np.ndarray:
    if response.raw_values:
        values = np.frombuffer(response.raw_values, dtype="<f4")
    else:
        values = np.asarray(response.values, dtype=np.float32)
    if values.size != response.rows * response.cols:
        raise ValueError(f"feature matrix: {values.size} values for {response.rows}x{response.cols}")
    return values.reshape(response.rows, response.cols)
