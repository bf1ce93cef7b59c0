"""FeatureService messages <-> the domain: exact round trips."""

from __future__ import annotations

import numpy as np
import pytest

from domain.request import CandidateColumns, Context
from mesh.common_messages import candidates_to_proto, context_to_proto
from scoremesh.v1 import features_pb2
from services.features import converters


@pytest.mark.parametrize("typed", [False, True])
def test_matrix_round_trip_is_exact(typed):
    matrix = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    response = converters.matrix_to_proto("ads", "1", matrix, typed=typed)
    assert (response.rows, response.cols, response.schema_version) == (3, 5, "1")
    assert bool(response.values) == typed and bool(response.raw_values) != typed
    np.testing.assert_array_equal(converters.matrix_from_proto(response), matrix)


def test_extract_request_gives_the_domain_request():
    context = Context("display", "u3", None, "f", "EU", "desktop", 7, None, "content")
    candidates = CandidateColumns(["a1", "a2"], ["food", ""], [0.5, 2.0], [1.0, 0.0])
    data_type, proto_context = context_to_proto(context)
    request = features_pb2.ExtractRequest(data_type=data_type, context=proto_context, candidates=candidates_to_proto(candidates))
    assert converters.extract_request_from_proto(request) == (context, candidates)
