"""Feedback end to end on the running mesh: `scoremesh simulate` scores synthetic traffic through
the router and sends the outcomes the ground truth draws; monitoring joins each to what was
scored and reports the models' quality. Bounded: a few hundred Scores."""

from __future__ import annotations

import asyncio
import re
import time

import grpc
import pytest

from cli.simulate import simulate
from mesh.config import MeshSettings
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc, router_pb2_grpc
from tests.e2e.mesh_process import scoremesh
from tests.e2e.requests import score_request

pytestmark = pytest.mark.mesh


def quality(mesh, model: str, **filters) -> monitoring_pb2.GetQualityResponse:
    with grpc.insecure_channel(mesh.address("monitoring")) as channel:
        return monitoring_pb2_grpc.MonitoringStub(channel).GetQuality(
            monitoring_pb2.GetQualityRequest(model_name=model, window_seconds=3600, **filters), timeout=10)


def test_simulated_outcomes_are_joined_to_their_scores_and_judge_the_models(mesh):
    settings = MeshSettings(state_dir=mesh.state_dir)
    before = {m: quality(mesh, m).labelled for m in ("ctr_ensemble", "ctr_stacking", "cvr_ensemble", "quality_ensemble")}
    tally = asyncio.run(simulate(settings, requests=300, candidates=5, concurrency=4, seed=41, shift_after=None, progress=lambda _: None))
    scored = tally.scores["OK"]
    assert scored == 300, tally.scores
    # Each Score: an outcome per distinct ad and label; those of the label its model was trained on join.
    assert 0.95 * 5 * scored <= tally.candidates <= 5 * scored
    assert dict(tally.feedback) == {"joined": tally.candidates, "late": 0, "unknown": 0, "duplicate": 0, "other_label": 2 * tally.candidates}
    added = sum(quality(mesh, m).labelled - before[m] for m in before)
    assert added == tally.candidates and {name.split(" v")[0] for name in tally.models} <= set(before)
    ctr = quality(mesh, "ctr_ensemble")
    # Trained on the same world: ranked well above chance, and calibrated to its click rate.
    assert ctr.auc > 0.65 and abs(ctr.mean_score - ctr.positive_rate) < 0.08 and ctr.log_loss < 0.69, ctr
    assert quality(mesh, "ctr_ensemble", split_arm="no-such-arm").labelled == 0

    # The same requests and outcomes again: every outcome is a duplicate of a join made already.
    again = asyncio.run(simulate(settings, requests=30, candidates=5, concurrency=2, seed=41, shift_after=None, progress=lambda _: None))
    assert again.feedback["joined"] == 0 and again.feedback["duplicate"] == again.candidates > 0


def test_the_simulate_command_reports_scores_outcomes_and_quality(mesh):
    result = scoremesh("simulate", "--requests", "20", "--concurrency", "2", "--seed", "42", state_dir=mesh.state_dir, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Scores: {'OK': 20}" in result.stdout
    assert re.search(r"ctr_ensemble\s+\d+ labelled\s+rate [\d.]+\s+mean score [\d.]+\s+AUC [\d.]+", result.stdout), result.stdout


def test_bad_feedback_gets_a_client_error_naming_the_field(mesh):
    with grpc.insecure_channel(mesh.address("monitoring")) as channel:
        stub = monitoring_pb2_grpc.MonitoringStub(channel)
        for outcome, message in ((monitoring_pb2.Outcome(request_id="r", ad_id="a", label="like"), "outcomes[0].label: must be one of"),
                                 (monitoring_pb2.Outcome(ad_id="a", label="click"), "outcomes[0].request_id: 1 to 256 characters"),
                                 (monitoring_pb2.Outcome(request_id="r", ad_id="a", label="click", timestamp=float("nan")),
                                  "outcomes[0].timestamp: must be a finite number")):
            with pytest.raises(grpc.RpcError) as error:
                stub.Feedback(iter([monitoring_pb2.FeedbackRequest(outcomes=[outcome])]), timeout=5)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.value.details()
        with pytest.raises(grpc.RpcError) as error:
            stub.GetQuality(monitoring_pb2.GetQualityRequest(), timeout=5)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "model_name: required" in error.value.details()
        answer = stub.Feedback(iter([monitoring_pb2.FeedbackRequest(outcomes=[monitoring_pb2.Outcome(request_id="r", ad_id="a", label="click")])]),
                               timeout=5)
        assert answer.unknown == 1  # still serving, and an unknown key is counted, not an error


def weighting(mesh, model: str = "ctr_ensemble") -> monitoring_pb2.WeightingStatus:
    with grpc.insecure_channel(mesh.address("monitoring")) as channel:
        return monitoring_pb2_grpc.MonitoringStub(channel).GetWeighting(monitoring_pb2.GetWeightingRequest(model_name=model), timeout=10).status


def served_combination(mesh, n: int = 6) -> list[tuple[float, dict[str, float]]]:
    """(ensemble score, member scores) of a few candidates, as the router answers them."""
    with grpc.insecure_channel(mesh.address("router")) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        response = stub.Score(score_request(n, "search", seed=5), timeout=10)
    assert response.model.name == "ctr_ensemble"
    return [(c.score, {m.member: m.score for m in c.member_scores}) for c in response.candidates]


def combines_with(mesh, weights: dict[str, float]) -> bool:
    total = sum(weights.values())
    return all(abs(score - sum(w * members[m] for m, w in weights.items()) / total) < 1e-4 for score, members in served_combination(mesh))


def test_learned_weights_reach_the_replicas_without_a_restart_and_roll_back_with_one_command(mesh):
    assert not weighting(mesh).enabled  # off by default
    trained = dict(weighting(mesh).versions[0].current.weights)
    assert weighting(mesh).versions[0].current.number == 0 and combines_with(mesh, trained)
    with grpc.insecure_channel(mesh.address("monitoring")) as channel:
        with pytest.raises(grpc.RpcError) as error:
            monitoring_pb2_grpc.MonitoringStub(channel).SetWeighting(
                monitoring_pb2.SetWeightingRequest(model_name="ctr_ensemble", action="enable"), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    enabled = scoremesh("weights", "enable", "ctr_ensemble", "--reason", "e2e test", state_dir=mesh.state_dir)
    assert enabled.returncode == 0 and "online weighting on" in enabled.stdout, enabled.stderr
    # The click model drifts from the first request: the trained weights are wrong now.
    settings = MeshSettings(state_dir=mesh.state_dir)
    deadline = time.monotonic() + 90
    while weighting(mesh).versions[0].current.number == 0:
        assert time.monotonic() < deadline, weighting(mesh)
        asyncio.run(simulate(settings, requests=150, candidates=5, concurrency=4, seed=int(time.monotonic()), shift_after=0,
                             progress=lambda _: None))
        time.sleep(1.5)
    current = weighting(mesh).versions[0].current
    assert current.source == "online_learner" and "outcomes since weights #0" in current.reason
    learned = dict(current.weights)
    deadline = time.monotonic() + 15  # the replicas' repository poll
    while not combines_with(mesh, learned):
        assert time.monotonic() < deadline, (learned, served_combination(mesh))
        time.sleep(0.5)
    shown = scoremesh("weights", "show", "ctr_ensemble", state_dir=mesh.state_dir)
    assert f"weights #{current.number}" in shown.stdout and "online_learner" in shown.stdout

    rolled = scoremesh("weights", "rollback", "ctr_ensemble", "--reason", "e2e rollback", state_dir=mesh.state_dir)
    assert rolled.returncode == 0 and "online weighting off" in rolled.stdout, rolled.stderr
    status = weighting(mesh)
    assert not status.enabled and status.versions[0].current.source == "rollback"
    assert dict(status.versions[0].current.weights) == pytest.approx(trained)
    deadline = time.monotonic() + 15
    while not combines_with(mesh, trained):
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_experiments_show_compares_the_arms_of_a_split_on_feedback(mesh):
    asyncio.run(simulate(MeshSettings(state_dir=mesh.state_dir), requests=90, candidates=5, concurrency=3, seed=43, shift_after=None,
                         progress=lambda _: None))
    with grpc.insecure_channel(mesh.address("monitoring")) as channel:
        response = monitoring_pb2_grpc.MonitoringStub(channel).GetExperiment(monitoring_pb2.GetExperimentRequest(window_seconds=3600),
                                                                            timeout=30)
    routes = {r.route: r for r in response.routes}
    assert routes and all(r.arms[0].verdict == "baseline" for r in routes.values())
    for route in routes.values():
        for arm in route.arms:
            assert arm.outcomes > 0 and arm.models and arm.verdict in ("baseline", "better", "worse", "inconclusive")
            assert arm.positive_rate.low <= arm.positive_rate.value <= arm.positive_rate.high
    shown = scoremesh("experiments", "show", state_dir=mesh.state_dir)
    assert shown.returncode == 0 and "baseline" in shown.stdout and "log loss" in shown.stdout, shown.stderr
