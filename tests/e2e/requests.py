"""Realistic requests for tests that drive the running mesh."""

from __future__ import annotations

from mesh.common_messages import candidates_to_proto, context_to_proto
from scoremesh.v1 import router_pb2
from training.synthetic import sample_request


def score_request(n: int, data_type: str = "search", seed: int = 0) -> router_pb2.ScoreRequest:
    context, candidates = sample_request(n, data_type, seed=seed)
    dt, proto_context = context_to_proto(context)
    return router_pb2.ScoreRequest(request_id=f"test-{seed}", data_type=dt, context=proto_context, candidates=candidates_to_proto(candidates))
