"""The inference service as a real process: the whole Open Inference Protocol, the stock
tritonclient, statistics, the repository API with its admin token, new versions picked up."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request

import grpc
import numpy as np
import pytest
import torch

from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from mesh.status_details import error_info
from domain.features.schema_store import SchemaStore
from training.synthetic import generate
from domain.models.repository import load_model, publish
from training.train import ENSEMBLES, TrainOptions, train
from tests.e2e.expected_scores import ensemble_outputs
from tests.e2e.mesh_process import REPO_ROOT, ServiceProcess

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("inference") / "state"
    train(state / "models", state / "features", TrainOptions(rows=4000, max_epochs=2), ensembles=ENSEMBLES[:2], progress=lambda _: None)
    process = ServiceProcess("inference", state, env={"SCOREMESH_ADMIN_TOKEN": TOKEN, "SCOREMESH_REPOSITORY_POLL_S": "0.3"})
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def features(server) -> np.ndarray:
    schema = SchemaStore(server.state_dir / "features").load("ads")
    return schema.transform(generate(7, seed=21).batch)  # 7 rows: not a power of two


def expected(server, x: np.ndarray, model: str = "ctr_ensemble", version: str = "1") -> dict:
    return ensemble_outputs(server.state_dir / "models" / model / version, x)


def infer_request(x: np.ndarray, model="ctr_ensemble", datatype="FP32", raw=True, version="", outputs=(), request_id="r1"):
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    tensor = request.inputs.add(name="features", datatype=datatype, shape=list(x.shape))
    if raw:
        request.raw_input_contents.append(x.tobytes())
    else:
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def decode(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    return {o.name: np.frombuffer(raw, dtype="<f4").reshape(list(o.shape)) for o, raw in zip(response.outputs, response.raw_output_contents)}


def test_stock_tritonclient_talks_to_the_service(server, features, tmp_path):
    np.save(tmp_path / "x.npy", features)
    result = subprocess.run([sys.executable, "-m", "tests.services.inference.tritonclient_probe", server.address, str(tmp_path / "x.npy")],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["live"], report["ready"], report["model_ready"], report["unknown_ready"]) == (True, True, True, False)
    assert report["server"] == "scoremesh-inference"
    assert report["metadata"]["inputs"] == [{"name": "features", "datatype": "FP32", "shape": ["-1", str(features.shape[1])]}]
    assert [o["name"] for o in report["metadata"]["outputs"]] == ["score", "member_scores", "confidence"]
    want = expected(server, features)
    np.testing.assert_allclose(report["FP32"]["score"], want["score"], atol=1e-5)
    np.testing.assert_allclose(report["FP32"]["member_scores"], want["member_scores"], atol=1e-5)
    np.testing.assert_allclose(report["FP32"]["confidence"], want["confidence"], atol=1e-5)
    assert report["FP32"]["id"] == "probe-FP32" and report["FP32"]["model_version"] == "1"
    # 16-bit inputs: exact against the oracle fed the same rounded features.
    for datatype, dtype in (("FP16", torch.float16), ("BF16", torch.bfloat16)):
        rounded = torch.from_numpy(features).to(dtype).float().numpy()
        np.testing.assert_allclose(report[datatype]["score"], expected(server, rounded)["score"], atol=1e-5)
    assert report["only_score_outputs"] == ["score"]
    assert int(report["statistics"]["count"]) >= 4


def test_raw_and_typed_inputs_agree_and_outputs_can_be_chosen(stub, server, features):
    raw = decode(stub.ModelInfer(infer_request(features), timeout=10))
    typed_response = stub.ModelInfer(infer_request(features, raw=False, outputs=("confidence", "score"), request_id="typed-7"), timeout=10)
    typed = decode(typed_response)
    assert typed_response.id == "typed-7" and [o.name for o in typed_response.outputs] == ["confidence", "score"]
    np.testing.assert_array_equal(raw["score"], typed["score"])
    assert raw["member_scores"].shape == (7, 2)
    assert typed_response.parameters["member_names"].string_param == "ctr_v1,ctr_v2"
    assert typed_response.parameters["feature_schema"].string_param == "ads/1"


def _error(call, request):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10)
    return raised.value


def test_protocol_errors(stub, features):
    assert _error(stub.ModelInfer, infer_request(features, model="nope")).code() == grpc.StatusCode.NOT_FOUND
    missing = _error(stub.ModelInfer, infer_request(features, version="9"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "no ready version '9'" in missing.details()
    narrow = _error(stub.ModelInfer, infer_request(features[:, :5].copy()))
    assert narrow.code() == grpc.StatusCode.INVALID_ARGUMENT and "input 'features': shape must be" in narrow.details()
    ints = infer_request(features.astype(np.int64), datatype="INT64")
    bad_type = _error(stub.ModelInfer, ints)
    assert bad_type.code() == grpc.StatusCode.INVALID_ARGUMENT and "input 'features': datatype must be one of FP32, FP16, BF16 (got INT64)" in bad_type.details()
    short = infer_request(features)
    short.raw_input_contents[0] = short.raw_input_contents[0][:-4]
    assert "raw bytes, expected" in _error(stub.ModelInfer, short).details()
    unknown_output = _error(stub.ModelInfer, infer_request(features, outputs=("logits",)))
    assert unknown_output.code() == grpc.StatusCode.INVALID_ARGUMENT and "outputs: unknown output 'logits'" in unknown_output.details()
    mismatch = infer_request(features)
    mismatch.parameters["feature_schema"].string_param = "ads/2"
    refused = _error(stub.ModelInfer, mismatch)
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused) == ("FEATURE_SCHEMA_MISMATCH", {"expected": "ads/1", "got": "ads/2"})
    nan = features.copy()
    nan[3, 2] = np.nan
    assert "holds NaN" in _error(stub.ModelInfer, infer_request(nan)).details()
    # After all that, still serving.
    assert decode(stub.ModelInfer(infer_request(features), timeout=10))["score"].shape == (7,)


def test_statistics_count_successes_failures_and_durations(stub, features):
    before = stub.ModelStatistics(pb.ModelStatisticsRequest(name="ctr_ensemble"), timeout=10).model_stats[0]
    for _ in range(3):
        stub.ModelInfer(infer_request(features), timeout=10)
    _error(stub.ModelInfer, infer_request(features[:, :5].copy()))
    after = stub.ModelStatistics(pb.ModelStatisticsRequest(name="ctr_ensemble", version="1"), timeout=10).model_stats[0]
    stats, old = after.inference_stats, before.inference_stats
    assert stats.success.count == old.success.count + 3 and stats.fail.count == old.fail.count + 1
    assert after.inference_count == before.inference_count + 21
    assert after.execution_count >= before.execution_count + 1
    assert stats.queue.count == stats.success.count and stats.compute_infer.ns > old.compute_infer.ns
    assert after.last_inference >= before.last_inference > 0
    assert sum(b.compute_infer.count for b in after.batch_stats) == after.execution_count
    everything = stub.ModelStatistics(pb.ModelStatisticsRequest(), timeout=10)
    assert sorted(s.name for s in everything.model_stats) == ["ctr_ensemble", "cvr_ensemble"]
    assert _error(stub.ModelStatistics, pb.ModelStatisticsRequest(name="ghost")).code() == grpc.StatusCode.NOT_FOUND


def test_repository_index_and_admin_load_unload(stub, features):
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
    assert [(m.name, m.version, m.state) for m in index.models] == [("ctr_ensemble", "1", "READY"), ("cvr_ensemble", "1", "READY")]
    unload = pb.RepositoryModelUnloadRequest(model_name="cvr_ensemble")
    assert _error(stub.RepositoryModelUnload, unload).code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as wrong:
        stub.RepositoryModelUnload(unload, timeout=10, metadata=[("authorization", "Bearer nope")])
    assert wrong.value.code() == grpc.StatusCode.PERMISSION_DENIED
    admin = [("authorization", f"Bearer {TOKEN}")]
    stub.RepositoryModelUnload(unload, timeout=10, metadata=admin)
    assert not stub.ModelReady(pb.ModelReadyRequest(name="cvr_ensemble"), timeout=10).ready
    time.sleep(1.0)  # a few repository polls: an unloaded model stays unloaded
    assert not stub.ModelReady(pb.ModelReadyRequest(name="cvr_ensemble"), timeout=10).ready
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="cvr_ensemble"), timeout=30, metadata=admin)
    assert stub.ModelReady(pb.ModelReadyRequest(name="cvr_ensemble"), timeout=10).ready
    with pytest.raises(grpc.RpcError) as ghost:
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="ghost"), timeout=10, metadata=admin)
    assert ghost.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_new_version_is_served_without_a_restart(stub, server, features):
    models = server.state_dir / "models" / "ctr_ensemble"
    staging = models / ".staging-2"
    shutil.copytree(models / "1", staging)
    config = (staging / "config.yaml").read_text().replace("version: 1\n", "version: 2\n", 1)
    (staging / "config.yaml").write_text(config)
    assert load_model(staging).version == "2"
    publish(staging)
    deadline = time.monotonic() + 20
    while not stub.ModelReady(pb.ModelReadyRequest(name="ctr_ensemble", version="2"), timeout=10).ready:
        assert time.monotonic() < deadline, "version 2 was not picked up"
        time.sleep(0.2)
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="ctr_ensemble"), timeout=10)
    assert list(metadata.versions) == ["1", "2"]  # the default policy serves the newest two
    newest = stub.ModelInfer(infer_request(features), timeout=10)
    pinned = stub.ModelInfer(infer_request(features, version="1"), timeout=10)
    assert (newest.model_version, pinned.model_version) == ("2", "1")
    np.testing.assert_array_equal(decode(newest)["score"], decode(pinned)["score"])  # same weights

    # A rollback: version 2 alone is held back (drained, unloaded, kept out by the poller) until
    # the model is loaded again; the newest serving version is 1 meanwhile.
    admin = [("authorization", f"Bearer {TOKEN}")]
    rollback = pb.RepositoryModelUnloadRequest(model_name="ctr_ensemble")
    rollback.parameters["version"].string_param = "2"
    rollback.parameters["reason"].string_param = "rolled back by recovery"
    assert _error(stub.RepositoryModelUnload, rollback).code() == grpc.StatusCode.UNAUTHENTICATED
    stub.RepositoryModelUnload(rollback, timeout=10, metadata=admin)
    time.sleep(1.0)  # a few repository polls
    assert not stub.ModelReady(pb.ModelReadyRequest(name="ctr_ensemble", version="2"), timeout=10).ready
    assert stub.ModelInfer(infer_request(features), timeout=10).model_version == "1"
    index = {(m.name, m.version): (m.state, m.reason) for m in stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10).models}
    assert index[("ctr_ensemble", "2")] == ("UNAVAILABLE", "held back: rolled back by recovery")
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="ctr_ensemble"), timeout=30, metadata=admin)
    assert stub.ModelInfer(infer_request(features), timeout=10).model_version == "2"


def test_prometheus_metrics_per_model_and_version(server, stub, features):
    stub.ModelInfer(infer_request(features, version="1"), timeout=10)
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    assert 'scoremesh_inference_requests_total{model="ctr_ensemble",status="OK",version="1"}' in text
    assert 'scoremesh_inference_requests_total{model="ctr_ensemble",status="INVALID_ARGUMENT",version="1"}' in text
    assert 'scoremesh_inference_batch_rows_bucket{le="8.0",model="ctr_ensemble",version="1"}' in text
    assert "scoremesh_inference_queue_seconds_count" in text and "scoremesh_inference_compute_seconds_sum" in text


def test_bench_command_reports_throughput_and_latency(server, tmp_path):
    from tests.e2e.mesh_process import scoremesh

    result = scoremesh("bench", "--address", server.address, "--seconds", "0.5", "--concurrency", "1,4", "--out", str(tmp_path),
                       state_dir=server.state_dir, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "| concurrency | requests | errors | rows/s |" in result.stdout
    levels = json.loads((tmp_path / "inference-bench.json").read_text())
    assert [lv["concurrency"] for lv in levels] == [1, 4]
    for level in levels:
        assert level["requests"] > 0 and level["errors"] == 0 and level["rows_per_s"] == pytest.approx(32 * level["requests_per_s"])
        assert 0 < level["p50_ms"] <= level["p95_ms"] <= level["p99_ms"]
