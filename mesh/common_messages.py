"""scoremesh.v1 common messages (DataType, RequestContext, Candidate) <-> the domain request
model. Pure functions, round-trip tested; shared here because the router and the features
service both speak these messages and services never import each other."""

from __future__ import annotations

from collections.abc import Iterable

from domain.errors import InvalidArgument
from domain.request import CandidateColumns, Context
from scoremesh.v1 import common_pb2

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


def candidates_from_proto(candidates: Iterable[common_pb2.Candidate]) -> CandidateColumns:
    ad_id, category, bid_amount, quality_score = [], [], [], []
    for c in candidates:  # one pass over the repeated field
        ad_id.append(c.ad_id)
        category.append(c.category)
        bid_amount.append(c.bid_amount)
        quality_score.append(c.quality_score)
    return CandidateColumns(ad_id=ad_id, category=category, bid_amount=bid_amount, quality_score=quality_score)


def candidates_to_proto(columns: CandidateColumns) -> list[common_pb2.Candidate]:
    return [
        common_pb2.Candidate(ad_id=a, category=c, bid_amount=b, quality_score=q)
        for a, c, b, q in zip(columns.ad_id, columns.category, columns.bid_amount, columns.quality_score)
    ]
