"""scoremesh.v1 request messages <-> the raw data model. Pure functions, round-trip tested."""

from __future__ import annotations

import numpy as np

from scoremesh.v1 import common_pb2, features_pb2
from mesh.errors import InvalidArgument
from services.features.raw import CandidateColumns, Context

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
    user = context.user
    return Context(
        data_type=data_type_name(data_type),
        user_id=user.user_id,
        age=user.age,
        gender=user.gender,
        location=user.location,
        device_type=user.device_type,
        hour=context.hour,
        day_of_week=context.day_of_week,
        page_type=context.page_type,
    )


def context_to_proto(context: Context) -> tuple[int, common_pb2.RequestContext]:
    return data_type_value(context.data_type), common_pb2.RequestContext(
        user=common_pb2.User(
            user_id=context.user_id,
            age=context.age,
            gender=context.gender,
            location=context.location,
            device_type=context.device_type,
        ),
        hour=context.hour,
        day_of_week=context.day_of_week,
        page_type=context.page_type,
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


def matrix_to_proto(schema_name: str, schema_version: str, matrix: np.ndarray) -> features_pb2.ExtractResponse:
    rows, cols = matrix.shape
    response = features_pb2.ExtractResponse(schema_name=schema_name, schema_version=schema_version, rows=rows, cols=cols)
    response.values.extend(matrix.astype(np.float32).ravel())
    return response


def matrix_from_proto(response: features_pb2.ExtractResponse) -> np.ndarray:
    values = np.asarray(response.values, dtype=np.float32)
    if values.size != response.rows * response.cols:
        raise ValueError(f"feature matrix: {values.size} values for {response.rows}x{response.cols}")
    return values.reshape(response.rows, response.cols)
