"""The router's pipeline with plain functions standing in for the features and inference calls."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from domain.errors import InvalidArgument, ModelError, UpstreamError
from domain.request import CandidateColumns, Context
from services.router.converters import score_response
from services.router.model_catalog import ModelCatalog, ModelDescription
from services.router.scoring import Features, Inference, ScoreRequest, ScoringPipeline
from services.router.telemetry_buffer import TelemetryBuffer

CONTEXT = Context("conversion", "u", 30, "f", "EU", "desktop", 3, 1, "search")
CANDIDATES = CandidateColumns(["a", "b"], ["food", "travel"], [2.0, 4.0], [0.5, 1.0])


def run(coroutine):
    return asyncio.run(coroutine)


def request(request_id="r1", context=CONTEXT, candidates=CANDIDATES) -> ScoreRequest:
    return ScoreRequest(request_id, context, candidates)


def pipeline(calls, fail_inference=None, capacity=10, trained_on="ads/7", scores=(0.2, 0.8)):
    async def replicas():
        return ["10.0.0.1:1"]

    async def describe(address, model, version):
        calls.append(("describe", model, version))
        return ModelDescription(("4",), "4", trained_on)

    async def extract(req, schema_version, timeout):
        calls.append(("extract", req.request_id, len(req.candidates), schema_version))
        return Features(np.zeros((2, 3), dtype="<f4").tobytes(), 2, 3, "ads", schema_version)

    async def infer(choice, request_id, features, timeout):
        calls.append(("infer", choice.model, choice.version, features.schema, sorted(choice.addresses)))
        if fail_inference:
            raise fail_inference
        return Inference(choice.model, choice.version, ["m1", "m2"], np.array(scores, np.float32),
                         np.array([[0.1, 0.3], [0.7, 0.9]], np.float32), np.array([0.9, 0.85], np.float32))

    buffer = TelemetryBuffer(capacity)
    catalog = ModelCatalog(replicas, describe)
    return ScoringPipeline(catalog, extract, infer, buffer, max_candidates=5), buffer


async def _drain(buffer):
    return await buffer.next_batch(max_wait_s=0.01)


def test_score_routes_extracts_with_the_models_schema_infers_and_post_processes():
    calls = []
    scorer, buffer = pipeline(calls, trained_on="ads/5")
    result = run(scorer.score(request(), timeout=1.0))
    assert calls == [
        ("describe", "cvr_ensemble", ""),  # ModelMetadata: versions served and their feature schema
        ("extract", "r1", 2, "5"),  # the schema version the model was trained on, never a failed call first
        ("infer", "cvr_ensemble", "4", "ads/5", ["10.0.0.1:1"]),
    ]
    assert (result.model_name, result.model_version, result.route.name, result.schema_version) == ("cvr_ensemble", "4", "conversion", "5")
    assert result.ad_ids == ["a", "b"] and result.member_names == ["m1", "m2"]
    assert result.member_scores[0].tolist() == [pytest.approx(0.1), pytest.approx(0.3)]
    assert result.bid.tolist() == [round(2.0 * 0.2 * 0.5, 3), round(4.0 * 0.8 * 1.0, 3)]
    response = score_response(result, "ab" * 16)
    first = response.candidates[0]
    assert (first.ad_id, first.score, first.bid) == ("a", pytest.approx(0.2), 0.2)
    assert [(m.member, m.score) for m in first.member_scores] == [("m1", pytest.approx(0.1)), ("m2", pytest.approx(0.3))]
    assert first.explanation == "score 0.2000, confidence 0.9000, members m1, m2"
    (record,) = run(_drain(buffer))
    assert record["status"] == "OK" and record["model_name"] == "cvr_ensemble" and record["candidates"] == 2


def test_the_catalog_is_asked_once_and_reused():
    calls = []
    scorer, _ = pipeline(calls)

    async def twice():
        await scorer.score(request("r1"), timeout=1.0)
        await scorer.score(request("r2"), timeout=1.0)

    run(twice())
    assert [c for c in calls if c[0] == "describe"] == [("describe", "cvr_ensemble", "")]


def test_a_degraded_feature_store_is_reported_in_the_response():
    calls = []
    scorer, _ = pipeline(calls)
    original = scorer.extract

    async def degraded(*args):
        features = await original(*args)
        return Features(features.payload, features.rows, features.cols, features.schema_name, features.schema_version, degraded=True)

    scorer.extract = degraded
    result = run(scorer.score(request(), timeout=1.0))
    assert result.features_degraded and score_response(result, "ab" * 16).features_degraded


def test_requests_the_router_refuses_never_reach_downstream():
    calls = []
    scorer, _ = pipeline(calls)
    with pytest.raises(InvalidArgument, match="candidates: at most 5"):
        run(scorer.score(request(candidates=CandidateColumns(["a"] * 6, ["f"] * 6, [1.0] * 6, [0.5] * 6)), 1.0))
    with pytest.raises(InvalidArgument, match=r"request_id: at most 256 characters \(got 'xxxx"):
        run(scorer.score(request(request_id="x" * 300), 1.0))
    assert calls == []


def test_downstream_failure_keeps_its_status_and_is_reported():
    scorer, buffer = pipeline([], fail_inference=UpstreamError("inference", "UNAVAILABLE", "no healthy instance"))
    with pytest.raises(UpstreamError) as raised:
        run(scorer.score(request(), 1.0))
    assert raised.value.status == "UNAVAILABLE" and "inference" in raised.value.message
    (record,) = run(_drain(buffer))
    assert record["status"] == "UNAVAILABLE"


def test_a_version_a_replica_no_longer_serves_makes_the_catalog_look_again():
    calls = []
    scorer, _ = pipeline(calls, fail_inference=UpstreamError("inference", "NOT_FOUND", "no ready version '4'"))

    async def twice():
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await scorer.score(request(), 1.0)

    run(twice())
    assert [c for c in calls if c[0] == "describe"] == [("describe", "cvr_ensemble", "")] * 2


def test_non_finite_scores_are_an_error_of_the_model_never_a_result():
    scorer, buffer = pipeline([], scores=(0.2, float("nan")))
    with pytest.raises(ModelError) as raised:
        run(scorer.score(request(), 1.0))
    assert raised.value.status == "INTERNAL" and raised.value.reason == "NON_FINITE_OUTPUT"
    assert "cvr_ensemble v4 answered non-finite score" in raised.value.message
    (record,) = run(_drain(buffer))
    assert record["status"] == "INTERNAL"


def test_explain_checks_the_context_and_routes():
    scorer, _ = pipeline([])
    assert scorer.explain(CONTEXT).model == "cvr_ensemble"
    with pytest.raises(InvalidArgument, match=r"context.hour: must be in \[0, 23\] \(got 30\)"):
        scorer.explain(Context("search", hour=30))


def test_full_telemetry_buffer_drops_instead_of_blocking():
    dropped = []
    buffer = TelemetryBuffer(2, on_drop=lambda: dropped.append(1))
    assert [buffer.offer({"n": i}) for i in range(4)] == [True, True, False, False]
    assert (buffer.accepted, buffer.dropped, len(dropped), len(buffer)) == (2, 2, 2, 2)
