"""Common scoremesh.v1 messages <-> the domain request model: exact round trips."""

from __future__ import annotations

import pytest

from domain.errors import InvalidArgument
from scoremesh.v1 import common_pb2
from mesh import common_messages as converters
from domain.request import CandidateColumns, Context


def test_context_round_trip():
    context = Context("conversion", "u9", 41, "m", "ASIA", "tablet", 23, 6, "social")
    data_type, proto = converters.context_to_proto(context)
    assert data_type == common_pb2.DATA_TYPE_CONVERSION
    assert converters.context_from_proto(data_type, proto) == context


def test_unset_optional_fields_are_missing_not_zero():
    context = Context("search", "u1", None, "", "", "", None, None, "")
    data_type, proto = converters.context_to_proto(context)
    assert not proto.user.HasField("age") and not proto.HasField("hour")
    assert converters.context_from_proto(data_type, proto) == context
    proto.hour = 0  # explicitly midnight, not missing
    assert converters.context_from_proto(data_type, proto).hour == 0


def test_candidates_round_trip():
    columns = CandidateColumns(["a", "b"], ["food", "travel"], [1.5, 0.25], [0.1, 0.9])
    assert converters.candidates_from_proto(converters.candidates_to_proto(columns)) == columns


def test_unknown_data_type_names_the_field():
    with pytest.raises(InvalidArgument, match=r"data_type: must be .* \(got DATA_TYPE_UNSPECIFIED\)"):
        converters.data_type_name(0)
    with pytest.raises(InvalidArgument, match=r"\(got 9\)"):
        converters.data_type_name(9)
