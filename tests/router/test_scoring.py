"""The router's pipeline with plain functions standing in for the features and inference calls."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mesh.errors import InvalidArgument, UpstreamError
from services.features.raw import CandidateColumns, Context
from services.router.scoring import Features, Inference, ScoringPipeline
from services.router.telemetry_buffer import TelemetryBuffer

CONTEXT = Context("conversion", "u", 30, "f", "EU", "desktop", 3, 1, "search")
CANDIDATES = CandidateColumns(["a", "b"], ["food", "travel"], [2.0, 4.0], [0.5, 1.0])


def run(coroutine):
    return asyncio.run(coroutine)


def pipeline(calls, fail_inference=False, capacity=10, trained_on="ads/7"):
    async def extract(request_id, context, candidates, timeout, schema_version):
        calls.append(("extract", request_id, len(candidates.ad_id), schema_version))
        return Features(np.zeros((2, 3), dtype=np.float32), "ads", schema_version or "7")

    async def infer(model, request_id, matrix, timeout, feature_schema):
        calls.append(("infer", model, matrix.shape, feature_schema))
        if fail_inference:
            raise UpstreamError("inference", "UNAVAILABLE", "no healthy instance")
        if feature_schema != trained_on:
            raise UpstreamError("inference", "FAILED_PRECONDITION", "mismatch", "FEATURE_SCHEMA_MISMATCH", {"expected": trained_on, "got": feature_schema})
        return Inference(model, "4", ["m1", "m2"], np.array([0.2, 0.8], np.float32), np.array([[0.1, 0.3], [0.7, 0.9]], np.float32), np.array([0.9, 0.85], np.float32), trained_on)

    buffer = TelemetryBuffer(capacity)
    return ScoringPipeline(extract, infer, buffer, max_candidates=5), buffer


def test_score_routes_extracts_infers_and_posts_processes():
    calls = []
    scorer, buffer = pipeline(calls)
    result = run(scorer.score("r1", CONTEXT, CANDIDATES, timeout=1.0))
    assert calls == [("extract", "r1", 2, ""), ("infer", "cvr_ensemble", (2, 3), "ads/7")]
    assert (result.model_name, result.model_version, result.route.name, result.schema_version) == ("cvr_ensemble", "4", "conversion", "7")
    first, second = result.candidates
    assert first.member_scores == [("m1", pytest.approx(0.1)), ("m2", pytest.approx(0.3))]
    assert first.bid == round(2.0 * 0.2 * 0.5, 3) and second.bid == round(4.0 * 0.8 * 1.0, 3)
    (record,) = run(_drain(buffer))
    assert record["status"] == "OK" and record["model_name"] == "cvr_ensemble" and record["candidates"] == 2


async def _drain(buffer):
    return await buffer.next_batch(max_wait_s=0.01)


def test_a_degraded_feature_store_is_reported_in_the_response():
    from services.router.converters import score_response

    calls = []
    scorer, _ = pipeline(calls)
    original = scorer.extract

    async def degraded(*args):
        features = await original(*args)
        return Features(features.matrix, features.schema_name, features.schema_version, degraded=True)

    scorer.extract = degraded
    result = run(scorer.score("r1", CONTEXT, CANDIDATES, timeout=1.0))
    assert result.features_degraded and score_response(result, "ab" * 16).features_degraded


def test_a_model_trained_on_an_older_schema_gets_features_in_that_schema():
    calls = []
    scorer, _ = pipeline(calls, trained_on="ads/5")
    result = run(scorer.score("r1", CONTEXT, CANDIDATES, timeout=1.0))
    assert result.schema_version == "5"
    assert calls == [
        ("extract", "r1", 2, ""), ("infer", "cvr_ensemble", (2, 3), "ads/7"),  # newest: refused
        ("extract", "r1", 2, "5"), ("infer", "cvr_ensemble", (2, 3), "ads/5"),  # the model's own
    ]
    calls.clear()
    run(scorer.score("r2", CONTEXT, CANDIDATES, timeout=1.0))
    assert calls == [("extract", "r2", 2, "5"), ("infer", "cvr_ensemble", (2, 3), "ads/5")]  # remembered


def test_invalid_request_never_reaches_downstream():
    calls = []
    scorer, _ = pipeline(calls)
    with pytest.raises(InvalidArgument, match="candidates: at most 5"):
        run(scorer.score("r", CONTEXT, CandidateColumns(["a"] * 6, ["f"] * 6, [1.0] * 6, [0.5] * 6), 1.0))
    assert calls == []


def test_downstream_failure_keeps_its_status_and_is_reported():
    scorer, buffer = pipeline([], fail_inference=True)
    with pytest.raises(UpstreamError) as raised:
        run(scorer.score("r", CONTEXT, CANDIDATES, 1.0))
    assert raised.value.status == "UNAVAILABLE" and "inference" in raised.value.message
    (record,) = run(_drain(buffer))
    assert record["status"] == "UNAVAILABLE"


def test_full_telemetry_buffer_drops_instead_of_blocking():
    dropped = []
    buffer = TelemetryBuffer(2, on_drop=lambda: dropped.append(1))
    assert [buffer.offer({"n": i}) for i in range(4)] == [True, True, False, False]
    assert (buffer.accepted, buffer.dropped, len(dropped), len(buffer)) == (2, 2, 2, 2)
