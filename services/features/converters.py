"""scoremesh.v1 request messages <-> the raw data model. Pure functions, round-trip tested."""

from __future__ import annotations

import numpy as np

from scoremesh.v1 import common_pb2, features_pb2
from mesh.errors import InvalidArgument
from services.features.raw import CandidateColumns, Context
from services.features.schema import FeatureSchema

_DATA_TYPE_NAMES = {
    common_pb2.DATA_TYPE_SEARCH: "search",
    common_pb2.DATA_TYPE_DISPLAY: "display",
    common_pb2.DATA_TYPE_CONVERSION: "conversion",
}
_DATA_TYPE_VALUES = {v: k for k, v in _DATA_TYPE_NAMES.items()}


def data_type_name(value: int) -> str:
    if value not in _DATA_TYPE_NAMES:
        label = common_pb2.DataType.Name(value) if value in common_pb2.DataType.values() else str(value)
        raise InvalidArgument(
            f"data_type: must be DATA_TYPE_SEARCH, DATA_TYPE_DISPLAY or DATA_TYPE_CONVERSION (got {label})"
        )
    return _DATA_TYPE_NAMES[value]


def data_type_value(name: str) -> int:
    return _DATA_TYPE_VALUES[name]


def context_from_proto(data_type: int, context: common_pb2.RequestContext) -> Context:
    """Unset optional fields become None (missing), never 0."""
    user = context.user
    return Context(
        data_type=data_type_name(data_type),
        user_id=user.user_id,
        age=user.age if user.HasField("age") else None,
        gender=user.gender,
        location=user.location,
        device_type=user.device_type,
        hour=context.hour if context.HasField("hour") else None,
        day_of_week=context.day_of_week if context.HasField("day_of_week") else None,
        page_type=context.page_type,
    )


def context_to_proto(context: Context) -> tuple[int, common_pb2.RequestContext]:
    def present(**fields):
        return {k: int(v) for k, v in fields.items() if v is not None}

    return data_type_value(context.data_type), common_pb2.RequestContext(
        user=common_pb2.User(
            user_id=context.user_id,
            gender=context.gender,
            location=context.location,
            device_type=context.device_type,
            **present(age=context.age),
        ),
        page_type=context.page_type,
        **present(hour=context.hour, day_of_week=context.day_of_week),
    )


def candidates_from_proto(candidates) -> CandidateColumns:
    return CandidateColumns(
        ad_id=[c.ad_id for c in candidates],
        category=[c.category for c in candidates],
        bid_amount=[c.bid_amount for c in candidates],
        quality_score=[c.quality_score for c in candidates],
    )


def candidates_to_proto(columns: CandidateColumns) -> list[common_pb2.Candidate]:
    return [
        common_pb2.Candidate(ad_id=a, category=c, bid_amount=b, quality_score=q)
        for a, c, b, q in zip(columns.ad_id, columns.category, columns.bid_amount, columns.quality_score)
    ]


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
