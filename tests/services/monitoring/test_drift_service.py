"""Monitoring/GetDrift over a real loopback server: live rows reported with Report are judged
against the baseline `train` stored with the model version, and drifted features are named."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import pytest

import torch

from domain.features.schema_store import SchemaStore
from domain.models.baseline import read_baseline
from domain.models.repository import load_model
from kernels.dispatch import score_ensemble
from mesh.handlers import add_servicer
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc
from services.monitoring.live import Baselines, LiveSamples, judge
from services.monitoring.servicer import MonitoringServicer
from services.monitoring.slo import Objective
from services.monitoring.windows import TelemetryWindows
from training.synthetic import generate, make_world
from training.train import ENSEMBLES, TrainOptions, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    state = tmp_path_factory.mktemp("drift")
    (version_dir,) = train(state / "models", state / "features", TrainOptions(rows=3000, max_epochs=1), ensembles=ENSEMBLES[:1],
                           progress=lambda _: None)
    return state, read_baseline(version_dir), version_dir


def _records(rows: np.ndarray, scores: np.ndarray, now: float) -> monitoring_pb2.ReportRequest:
    return monitoring_pb2.ReportRequest(records=[
        monitoring_pb2.TelemetryRecord(model_name="ctr_ensemble", model_version="1", status="OK", latency_ms=5.0, timestamp=now,
                                       features=row.tolist(), scores=[float(s)]) for row, s in zip(rows, scores)])


def _scenario(state, body):
    async def run():
        servicer = MonitoringServicer(TelemetryWindows(), [Objective("availability", "availability", 0.999)], 1.0,
                                      LiveSamples(), Baselines(state / "models", state / "features"))
        server = grpc.aio.server()
        add_servicer(server, monitoring_pb2_grpc.add_MonitoringServicer_to_server, servicer)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await body(monitoring_pb2_grpc.MonitoringStub(channel))
        finally:
            await server.stop(0)

    return asyncio.run(run())


def test_a_shifted_input_column_is_named_and_stationary_traffic_is_not(trained):
    state, baseline, _ = trained
    rng = np.random.default_rng(5)
    numeric = next(j for j in range(baseline.features.shape[1]) if len(np.unique(baseline.features[:, j])) > 50)

    async def body(stub):
        picks = rng.integers(0, len(baseline.features), 400)
        rows, scores = baseline.features[picks].copy(), baseline.scores[picks]
        await stub.Report(iter([_records(rows, scores, time.time())]), timeout=10)
        quiet = await stub.GetDrift(monitoring_pb2.GetDriftRequest(model_name="ctr_ensemble"), timeout=30)
        rows[:, numeric] += 3 * float(baseline.features[:, numeric].std())
        await stub.Report(iter([_records(rows, np.clip(scores + 0.3, 0, 1), time.time())]), timeout=10)
        shifted = await stub.GetDrift(monitoring_pb2.GetDriftRequest(model_name="ctr_ensemble", window_seconds=60), timeout=30)
        return quiet, shifted

    quiet, shifted = _scenario(state, body)
    assert quiet.judged and quiet.samples == 400 and list(quiet.drifted) == [] and quiet.model_version == "1"
    assert shifted.samples == 800
    names = [f.name for f in shifted.features]
    assert list(shifted.drifted) == [names[numeric], "score"]
    column = shifted.features[numeric]
    assert column.psi > column.psi_threshold >= 0.2 and column.ks_p_value < 0.05


def test_bad_drift_requests_get_client_errors(trained):
    state, _, _ = trained

    async def body(stub):
        codes = []
        for request in (monitoring_pb2.GetDriftRequest(), monitoring_pb2.GetDriftRequest(model_name="nobody"),
                        monitoring_pb2.GetDriftRequest(model_name="ctr_ensemble", window_seconds=float("nan"))):
            try:
                await stub.GetDrift(request, timeout=10)
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
        bad_row = monitoring_pb2.ReportRequest(records=[monitoring_pb2.TelemetryRecord(
            model_name="ctr_ensemble", model_version="1", timestamp=1.0, features=[float("inf")])])
        try:
            await stub.Report(iter([bad_row]), timeout=10)
            codes.append("OK")
        except grpc.aio.AioRpcError as error:
            codes.append(error.code().name)
        few = await stub.Report(iter([_records(np.zeros((3, 2), np.float32), np.zeros(3), time.time())]), timeout=10)
        report = await stub.GetDrift(monitoring_pb2.GetDriftRequest(model_name="ctr_ensemble"), timeout=10)
        return codes, few.accepted, report

    codes, accepted, report = _scenario(state, body)
    assert codes == ["INVALID_ARGUMENT", "NOT_FOUND", "INVALID_ARGUMENT", "INVALID_ARGUMENT"]
    assert accepted == 3 and not report.judged and report.samples == 0  # rows of the wrong width are not inputs of this model


def test_an_hour_of_stationary_traffic_from_the_generator_raises_no_drift(trained):
    """Fresh draws of the world the model was trained on, through the schema it was trained with
    and scored by the stored model: sixty one-minute windows, small and large, judged as
    monitoring judges live traffic (stratified baseline, per-feature PSI and KS with the
    multiple-testing correction, the scores too): not one drifted feature or score."""
    state, _, version_dir = trained
    schema = SchemaStore(state / "features").load("ads")  # the newest version: the one trained with
    model = load_model(version_dir)
    world = make_world(TrainOptions().seed)
    live, baselines, alarms = LiveSamples(), Baselines(state / "models", state / "features"), []
    for minute in range(60):
        data = generate(100 if minute % 2 else 400, seed=10_000 + minute, world=world)
        rows = schema.transform(data.batch)
        with torch.no_grad():
            scores = score_ensemble(torch.from_numpy(rows), model.packed).score.numpy()
        now = 1_000_000.0 + 60 * minute
        for row, score in zip(rows, scores):
            live.add("ctr_ensemble", "1", now, row.tolist(), [float(score)])
        result = judge(live, baselines, "ctr_ensemble", "1", 60.0, now + 1)
        assert result.features.judged and result.scores.judged
        alarms += [f.name for f in result.features.drifted] + [f.name for f in result.scores.drifted]
    assert alarms == []
