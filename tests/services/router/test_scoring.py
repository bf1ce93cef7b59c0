"""The router's Score flow with plain functions standing in for the features and inference calls:
routing, splits, fallback, pipeline policies and timeouts, admission, shadow traffic."""

from __future__ import annotations

import asyncio
import copy
import random
import time
from collections import Counter

import numpy as np
import pytest

from domain.errors import InvalidArgument, MeshError, ResourceExhausted, UpstreamError
from domain.request import CandidateColumns, Context
from services.router.admission import AdmissionControl
from services.router.converters import score_response
from services.router.model_catalog import ModelCatalog, ModelDescription
from services.router.routing_config import DEFAULT, parse
from services.router.routing_state import RoutingState
from services.router.rules import RuleError
from services.router.scoring import Features, Inference, ScoreRequest, ScoringPipeline
from services.router.shadow import ShadowRunner
from mesh.telemetry_buffer import TelemetryBuffer

CONTEXT = Context("conversion", "u", 30, "f", "EU", "desktop", 3, 1, "search")
CANDIDATES = CandidateColumns(["a", "b"], ["food", "travel"], [2.0, 4.0], [0.5, 1.0])
SCHEMAS = {"ctr_ensemble": "ads/5", "ctr_stacking": "ads/6", "cvr_ensemble": "ads/5", "quality_ensemble": "ads/5"}


def run(coroutine):
    return asyncio.run(coroutine)


def request(request_id="r1", context=CONTEXT, candidates=CANDIDATES, caller="") -> ScoreRequest:
    return ScoreRequest(request_id, context, candidates, caller=caller)


class Mesh:
    """Fake features and inference services; `failing` models refuse, `slow` ones take 1 s."""

    def __init__(self, versions=("1", "2")) -> None:
        self.calls: list[tuple] = []
        self.failing: set[str] = set()
        self.slow: set[str] = set()
        self.versions = versions
        self.extract_error: MeshError | None = None

    async def replicas(self):
        return ["10.0.0.1:1"]

    async def describe(self, address, model, version):
        return ModelDescription(self.versions, version or self.versions[-1], SCHEMAS[model])

    async def extract(self, req, schema_version, timeout, attempts):
        self.calls.append(("extract", schema_version, attempts))
        if self.extract_error is not None:
            raise self.extract_error
        return Features(np.zeros((2, 3), dtype="<f4").tobytes(), 2, 3, "ads", schema_version)

    async def infer(self, choice, request_id, features, timeout, attempts):
        self.calls.append(("infer", choice.model, choice.version, features.schema, attempts))
        if choice.model in self.slow:
            await asyncio.sleep(1.0)
        if choice.model in self.failing:
            raise UpstreamError("inference", "UNAVAILABLE", "no healthy instance")
        if choice.version not in self.versions:
            raise UpstreamError("inference", "UNAVAILABLE", f"model {choice.model!r} version {choice.version!r} is UNAVAILABLE: held back")
        score = 0.2 if choice.model != "ctr_stacking" else 0.3
        return Inference(choice.model, choice.version, ["m1", "m2"], np.array([score, 0.8], np.float32),
                         np.array([[0.1, 0.3], [0.7, 0.9]], np.float32), np.array([0.9, 0.85], np.float32))


def scorer(mesh: Mesh, document=None, admission=None, mirror=None, capacity=100, seed=1):
    state = RoutingState(parse(document or DEFAULT), "test")
    catalog = ModelCatalog(mesh.replicas, mesh.describe)
    buffer = TelemetryBuffer(capacity)
    return ScoringPipeline(catalog, mesh.extract, mesh.infer, buffer, state.current, admission, mirror, max_candidates=5,
                           rng=random.Random(seed)), buffer, state


async def _drain(buffer):
    return await buffer.next_batch(max_wait_s=0.01)


def test_score_routes_extracts_with_the_models_schema_infers_and_post_processes():
    mesh = Mesh()
    pipeline, buffer, state = scorer(mesh)
    result = run(pipeline.score(request(), timeout=1.0))
    assert mesh.calls == [("extract", "5", 3), ("infer", "cvr_ensemble", "2", "ads/5", None)]
    assert (result.route, result.rule, result.arm, result.config_version) == ("conversion", "conversion", "main", state.config.version)
    assert (result.model_name, result.model_version, result.schema_version, result.fallback_used) == ("cvr_ensemble", "2", "5", False)
    assert result.bid.tolist() == [round(2.0 * 0.2 * 0.5, 3), round(4.0 * 0.8 * 1.0, 3)]
    response = score_response(result, "ab" * 16)
    first = response.candidates[0]
    assert (first.ad_id, first.score, first.bid) == ("a", pytest.approx(0.2), 0.2)
    assert [(m.member, m.score) for m in first.member_scores] == [("m1", pytest.approx(0.1)), ("m2", pytest.approx(0.3))]
    assert first.explanation == "score 0.2000, confidence 0.9000, members m1, m2"
    assert (response.rule, response.split_arm, response.config_version) == ("conversion", "main", state.config.version)
    (record,) = run(_drain(buffer))
    assert record["status"] == "OK" and record["model_name"] == "cvr_ensemble" and record["candidates"] == 2


def with_route(**route):
    document = copy.deepcopy(DEFAULT)
    document["routes"]["conversion"].update(route)
    return document


def test_a_canary_gets_its_weight_within_two_points_over_10000_requests():
    split = [{"arm": "canary", "version": "2", "weight": 0.1}, {"arm": "stable", "version": "1", "weight": 0.9}]
    route = parse(with_route(split=split)).routes["conversion"]
    rng = random.Random(3)
    arms = Counter(route.arm(f"u{i}", rng).name for i in range(10_000))
    assert abs(arms["canary"] / 10_000 - 0.10) <= 0.02
    # Through the whole Score flow: the arm picks the version asked for.
    mesh = Mesh()
    pipeline, _, _ = scorer(mesh, with_route(split=split))

    async def many():
        return [await pipeline.score(request(f"r{i}"), 1.0) for i in range(300)]

    results = run(many())
    by_arm = Counter((r.arm, r.model_version) for r in results)
    assert set(by_arm) == {("canary", "2"), ("stable", "1")} and abs(by_arm[("canary", "2")] / 300 - 0.10) < 0.05


def test_sticky_arms_stay_with_their_users_across_reloads_that_do_not_touch_them():
    split = [{"arm": "a", "version": "1", "weight": 0.5}, {"arm": "b", "version": "2", "weight": 0.5}]
    before = parse(with_route(split=split, sticky=True)).routes["conversion"]
    changed = with_route(split=split, sticky=True)
    changed["routes"]["search"]["fallback"] = ""  # another route changes
    after = parse(changed).routes["conversion"]
    rng = random.Random()
    users = [f"u{i}" for i in range(1000)]
    assert [before.arm(u, rng).name for u in users] == [after.arm(u, rng).name for u in users]
    assert [before.arm(u, rng).name for u in users] == [before.arm(u, rng).name for u in users]  # every time
    assert 0.4 < sum(before.arm(u, rng).name == "a" for u in users) / 1000 < 0.6


def test_the_fallback_ensemble_is_really_called_and_the_response_says_so():
    mesh = Mesh()
    mesh.failing.add("ctr_ensemble")
    pipeline, _, _ = scorer(mesh)
    search = request(context=Context("search", "u-not-in-experiment-3", location="US", device_type="desktop"))
    assert pipeline.explain(search.context).route.name == "search"
    result = run(pipeline.score(search, 1.0))
    assert (result.model_name, result.fallback_used, result.route) == ("ctr_stacking", True, "search")
    # ctr_stacking was trained on another schema version: features were built again for it.
    assert mesh.calls == [
        ("extract", "5", 3), ("infer", "ctr_ensemble", "2", "ads/5", None),
        ("extract", "6", None), ("infer", "ctr_stacking", "2", "ads/6", None),
    ]
    assert score_response(result, "").fallback_used


def test_a_version_rolled_back_is_replaced_by_the_one_served_during_a_request_and_for_a_canary_arm():
    mesh = Mesh()
    pipeline, _, _ = scorer(mesh)
    run(pipeline.score(request(), 1.0))  # the catalog now knows v2 as the newest
    mesh.versions = ("1",)  # v2 rolled back on every replica
    mesh.calls.clear()
    result = run(pipeline.score(request(), 1.0))
    assert result.model_version == "1"
    assert mesh.calls == [("extract", "5", 3), ("infer", "cvr_ensemble", "2", "ads/5", None), ("infer", "cvr_ensemble", "1", "ads/5", None)]
    # A canary arm whose version was rolled back: its traffic goes to the version served, as a
    # rollout tool sends an aborted canary's traffic back to the stable version.
    pinned, _, _ = scorer(mesh, with_route(split=[{"arm": "canary", "version": "2", "weight": 1.0}]))
    canary = run(pinned.score(request(), 1.0))
    assert (canary.arm, canary.model_version) == ("canary", "1")


class RollingBack(Mesh):
    """Two replicas; a rollback reaches them one at a time. A call goes to the first replica the
    choice names, which answers NOT_FOUND for a version it no longer serves."""

    def __init__(self) -> None:
        super().__init__()
        self.served = {"10.0.0.1:1": ("1", "2"), "10.0.0.2:1": ("1", "2")}

    async def replicas(self):
        return list(self.served)

    async def describe(self, address, model, version):
        versions = self.served[address]
        return ModelDescription(versions, version or versions[-1], SCHEMAS[model])

    async def infer(self, choice, request_id, features, timeout, attempts):
        address = min(choice.addresses)
        self.calls.append(("replica", choice.version, address))
        if choice.version not in self.served[address]:
            raise UpstreamError("inference", "NOT_FOUND", f"model {choice.model!r} has no version {choice.version!r}")
        return await super().infer(choice, request_id, features, timeout, attempts)


def test_a_version_gone_from_one_replica_mid_rollback_is_replaced_or_asked_of_the_replica_still_serving_it():
    mesh = RollingBack()
    pipeline, _, _ = scorer(mesh)
    pinned, _, _ = scorer(mesh, with_route(split=[{"arm": "canary", "version": "2", "weight": 1.0}]))
    run(pipeline.score(request(), 1.0))
    run(pinned.score(request(), 1.0))  # both catalogs know v2 on both replicas
    mesh.served["10.0.0.1:1"] = ("1",)  # held back on the first replica only, so far
    mesh.calls.clear()
    # Unpinned: the version every replica still serves. Pinned: v2, where it is still served.
    assert run(pipeline.score(request(), 1.0)).model_version == "1"
    assert run(pinned.score(request(), 1.0)).model_version == "2"  # was NOT_FOUND to the caller
    assert [c for c in mesh.calls if c[0] == "replica"] == [
        ("replica", "2", "10.0.0.1:1"), ("replica", "1", "10.0.0.1:1"), ("replica", "2", "10.0.0.1:1"), ("replica", "2", "10.0.0.2:1")]


def test_without_a_fallback_the_failure_names_the_stage_and_keeps_its_status():
    mesh = Mesh()
    mesh.failing.add("cvr_ensemble")
    pipeline, buffer, _ = scorer(mesh)
    with pytest.raises(MeshError) as raised:
        run(pipeline.score(request(), 1.0))
    error = raised.value
    assert error.status == "UNAVAILABLE" and error.info["stage"] == "model_inference"
    assert error.message == "model_inference: inference: no healthy instance"
    (record,) = run(_drain(buffer))
    assert record["status"] == "UNAVAILABLE"
    # The error is the chosen version's, on its route and arm: monitoring compares versions by it.
    assert (record["model_name"], record["model_version"], record["route"], record["split_arm"]) == ("cvr_ensemble", "2", "conversion", "main")


def test_the_callers_bad_input_from_features_is_passed_on_as_is():
    mesh = Mesh()
    mesh.extract_error = InvalidArgument("candidates[1].bid_amount: must be a finite number (got nan)")
    pipeline, _, _ = scorer(mesh)
    with pytest.raises(MeshError) as raised:
        run(pipeline.score(request(), 1.0))
    assert raised.value.status == "INVALID_ARGUMENT" and raised.value.message == "candidates[1].bid_amount: must be a finite number (got nan)"
    assert raised.value.info["stage"] == "feature_extraction"


def test_a_soft_stage_that_cannot_run_is_listed_and_the_score_answers():
    document = copy.deepcopy(DEFAULT)
    document["pipelines"]["ads"][2]["when"] = {"field": "model_inference.confidence_mean", "op": "gt", "value": 0.99}
    mesh = Mesh()
    pipeline, _, _ = scorer(mesh, document)
    result = run(pipeline.score(request(), 1.0))
    assert result.skipped_stages == [] and result.bid.tolist() == [0.0, 0.0]  # condition false: skipped, not degraded
    document["pipelines"]["ads"][2]["when"] = {"field": "model_inference.confidence_mean", "op": "gt", "value": 0.5}
    document["pipelines"]["ads"][2]["depends_on"] = []  # now it cannot run: no scores to bid on
    with pytest.raises(RuleError, match="stage post_processing needs depends_on"):
        parse(document)
    document["pipelines"]["ads"][2]["depends_on"] = ["model_inference"]
    document["pipelines"]["ads"][1]["kind"] = "soft"  # no answer without a model: refused
    with pytest.raises(RuleError, match="model_inference is needed for any answer"):
        parse(document)


def test_stage_attempts_follow_the_error_policy():
    document = copy.deepcopy(DEFAULT)
    document["pipelines"]["ads"][0].update(on_error="fail")
    document["pipelines"]["ads"][1].update(on_error="retry", attempts=5)
    mesh = Mesh()
    pipeline, _, _ = scorer(mesh, document)
    run(pipeline.score(request(), 1.0))
    assert mesh.calls == [("extract", "5", 1), ("infer", "cvr_ensemble", "2", "ads/5", 5)]


def test_a_stage_gets_its_share_of_the_deadline_and_no_more():
    document = copy.deepcopy(DEFAULT)
    document["pipelines"]["ads"][1].update(timeout_share=0.5, on_error="fail")
    mesh = Mesh()
    mesh.slow.add("cvr_ensemble")
    pipeline, _, _ = scorer(mesh, document)
    started = time.monotonic()
    with pytest.raises(MeshError) as raised:
        run(pipeline.score(request(), timeout=0.4))
    elapsed = time.monotonic() - started
    assert raised.value.status == "DEADLINE_EXCEEDED" and raised.value.info["stage"] == "model_inference"
    assert "did not finish within its" in raised.value.message
    assert elapsed < 0.35  # half of what was left, not the whole second the model takes


def test_admission_refuses_over_the_routes_rate_with_a_retry_after():
    mesh = Mesh()
    pipeline, _, _ = scorer(mesh, with_route(admission={"rate": 5, "burst": 3}), admission=AdmissionControl(max_in_flight=100))

    async def burst():
        outcomes = []
        for i in range(6):
            try:
                await pipeline.score(request(f"r{i}"), 1.0)
                outcomes.append("ok")
            except ResourceExhausted as error:
                outcomes.append(error.retry_after_s)
        return outcomes

    outcomes = run(burst())
    assert outcomes[:3] == ["ok", "ok", "ok"] and all(isinstance(o, float) and 0 < o <= 0.2 for o in outcomes[3:])


def test_admission_caps_scores_in_flight():
    admission = AdmissionControl(max_in_flight=2)
    admission.in_flight = 2
    with pytest.raises(ResourceExhausted) as raised:
        admission.admit("v", "search", parse(DEFAULT).routes["search"].admission, "", parse(DEFAULT).per_caller)
    assert raised.value.info["limit"] == "IN_FLIGHT" and raised.value.retry_after_s > 0


def test_shadow_traffic_never_changes_the_answer_nor_waits_for_it():
    mesh = Mesh()
    mesh.slow.add("ctr_stacking")  # the shadow takes a second
    document = with_route(shadow={"ensemble": "ctr_stacking", "percent": 100})
    state = RoutingState(parse(document), "test")
    catalog = ModelCatalog(mesh.replicas, mesh.describe)
    shadow = ShadowRunner(catalog, mesh.extract, mesh.infer, timeout_s=2.0, max_running=2)
    pipeline = ScoringPipeline(catalog, mesh.extract, mesh.infer, TelemetryBuffer(100), state.current, None, shadow, 5)

    async def scenario():
        plain = await ScoringPipeline(catalog, mesh.extract, mesh.infer, TelemetryBuffer(100), RoutingState(parse(DEFAULT), "t").current,
                                      None, None, 5).score(request("p"), 1.0)
        started = time.monotonic()
        results = [await pipeline.score(request(f"r{i}"), 1.0) for i in range(4)]
        elapsed = time.monotonic() - started
        running = len(shadow.running)
        await asyncio.sleep(1.2)  # the mirrors finish on their own time
        return plain, results, elapsed, running

    plain, results, elapsed, running = run(scenario())
    assert elapsed < 0.5  # four Scores, none waited for its one-second mirror
    assert running == 2  # two mirrors out at most: the others were dropped
    for result in results:
        assert (result.model_name, result.score.tolist(), result.bid.tolist()) == (plain.model_name, plain.score.tolist(), plain.bid.tolist())
    mirrored = [c for c in mesh.calls if c[0] == "infer" and c[1] == "ctr_stacking"]
    assert len(mirrored) == 2


def test_explain_checks_the_context_and_routes():
    pipeline, _, state = scorer(Mesh())
    explanation = pipeline.explain(CONTEXT)
    assert (explanation.route.name, explanation.match.rule, explanation.config_version) == ("conversion", "conversion", state.config.version)
    with pytest.raises(InvalidArgument, match=r"context.hour: must be in \[0, 23\] \(got 30\)"):
        pipeline.explain(Context("search", hour=30))


def test_requests_the_router_refuses_never_reach_downstream():
    mesh = Mesh()
    pipeline, _, _ = scorer(mesh)
    with pytest.raises(InvalidArgument, match="candidates: at most 5"):
        run(pipeline.score(request(candidates=CandidateColumns(["a"] * 6, ["f"] * 6, [1.0] * 6, [0.5] * 6)), 1.0))
    with pytest.raises(InvalidArgument, match=r"request_id: at most 256 characters \(got 'xxxx"):
        run(pipeline.score(request(request_id="x" * 300), 1.0))
    assert mesh.calls == []


def test_full_telemetry_buffer_drops_instead_of_blocking():
    dropped = []
    buffer = TelemetryBuffer(2, on_drop=lambda: dropped.append(1))
    assert [buffer.offer({"n": i}) for i in range(4)] == [True, True, False, False]
    assert (buffer.accepted, buffer.dropped, len(dropped), len(buffer)) == (2, 2, 2, 2)
