"""The router as a real process in front of real features and inference processes whose replicas
serve different model versions, trained on different feature schema versions: every Score is
answered, with the version all replicas share, and no ModelInfer ever fails on a schema mismatch
(the router learns schemas from ModelMetadata, never from a failed call)."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from domain.features.schema_store import SchemaStore
from domain.models.stages import write_stage
from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from scoremesh.v1 import router_pb2_grpc
from tests.e2e.mesh_process import ServiceProcess
from tests.e2e.requests import score_request
from training.train import ENSEMBLES, TrainOptions, train


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """ctr_ensemble v1 on feature schema ads/1 and v2 on ads/2 (refitted on other data)."""
    state = tmp_path_factory.mktemp("router") / "state"
    for seed in (0, 1):
        train(state / "models", state / "features", TrainOptions(rows=3000, seed=seed, max_epochs=1), ensembles=ENSEMBLES[:1], progress=lambda _: None)
    assert SchemaStore(state / "features").versions("ads") == ["1", "2"]
    write_stage(state / "models" / "ctr_ensemble" / "2", "production", "promoted: this test is about a rollout across replicas")
    # Only ctr_ensemble was trained: every request goes there.
    (state / "routing.yaml").write_text("default_route: search\nroutes:\n  search: {ensemble: ctr_ensemble}\n")
    return state


def _statistics(process: ServiceProcess) -> dict[str, tuple[int, int]]:
    with grpc.insecure_channel(process.address) as channel:
        stats = pb_grpc.GRPCInferenceServiceStub(channel).ModelStatistics(pb.ModelStatisticsRequest(name="ctr_ensemble"), timeout=5)
    return {s.version: (s.inference_stats.success.count, s.inference_stats.fail.count) for s in stats.model_stats}


def _score(router: ServiceProcess, n: int):
    with grpc.insecure_channel(router.address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        return [stub.Score(score_request(3, "search", seed=i), timeout=10) for i in range(n)]


def test_replicas_serving_different_versions_get_the_shared_one_with_its_schema(state):
    old = ServiceProcess("inference", state, {"SCOREMESH_VERSIONS_SPECIFIC": json.dumps({"ctr_ensemble": ["1"]})}, "inference-old")
    both = ServiceProcess("inference", state, {"SCOREMESH_VERSIONS_SPECIFIC": json.dumps({"ctr_ensemble": ["1", "2"]})}, "inference-both")
    processes = [ServiceProcess("features", state), old, both, ServiceProcess("router", state)]
    try:
        for process in processes:
            process.start()
        router = processes[-1]
        responses = _score(router, 12)
        assert {(r.model.version, r.feature_schema_version) for r in responses} == {("1", "1")}
        # Every Score was answered by v1 on one replica or the other, and none refused a request.
        old_stats, both_stats = _statistics(old), _statistics(both)
        assert old_stats["1"][0] + both_stats["1"][0] >= 12
        assert all(fail == 0 for _, fail in [*old_stats.values(), *both_stats.values()])
        # The replica serving only v1 goes away: the newest version, v2 on ads/2, is used.
        old.stop()
        deadline = time.monotonic() + 10  # the router's catalog refreshes after its max age (2 s)
        while time.monotonic() < deadline:
            responses = _score(router, 1)
            if responses[0].model.version == "2":
                break
            time.sleep(0.1)
        assert (responses[0].model.version, responses[0].feature_schema_version) == ("2", "2")
        assert _statistics(both)["2"][1] == 0
    finally:
        for process in reversed(processes):
            process.stop()
