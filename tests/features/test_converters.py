from __future__ import annotations

import numpy as np
import pytest

from mesh.errors import InvalidArgument
from scoremesh.v1 import common_pb2
from services.features import converters
from services.features.raw import CandidateColumns, Context


def test_context_round_trip():
    context = Context("conversion", "u9", 41, "m", "ASIA", "tablet", 23, 6, "social")
    data_type, proto = converters.context_to_proto(context)
    assert data_type == common_pb2.DATA_TYPE_CONVERSION
    assert converters.context_from_proto(data_type, proto) == context


def test_candidates_round_trip():
    columns = CandidateColumns(["a", "b"], ["food", "travel"], [1.5, 0.25], [0.1, 0.9])
    assert converters.candidates_from_proto(converters.candidates_to_proto(columns)) == columns


def test_matrix_round_trip_is_exact():
    matrix = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    response = converters.matrix_to_proto("ads", "1", matrix)
    assert (response.rows, response.cols, response.schema_version) == (3, 5, "1")
    np.testing.assert_array_equal(converters.matrix_from_proto(response), matrix)


def test_unknown_data_type_names_the_field():
    with pytest.raises(InvalidArgument, match=r"data_type: must be .* \(got DATA_TYPE_UNSPECIFIED\)"):
        converters.data_type_name(0)
    with pytest.raises(InvalidArgument, match=r"\(got 9\)"):
        converters.data_type_name(9)
