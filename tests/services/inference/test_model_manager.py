"""Serving several versions: policies, pick-up of new versions, failed loads, unload with drain."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import torch

from domain.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from domain.features.schema_store import SchemaStore
from kernels.fused_scoring import KernelConfig
from services.inference.handler import check_features
from services.inference.model_manager import ModelManager, VersionPolicy
from domain.models.repository import publish, stage_model


def write(repo: Path, dim: int, version: int, name: str = "toy", bias: float = 0.0, schema_version: str = "1") -> Path:
    config = {
        "name": name, "version": version, "input_dim": dim,
        "feature_schema": {"name": "ads", "version": schema_version},
        "ensemble": {"method": "averaging"}, "members": [{"name": "lr", "hidden": 0}],
    }
    return publish(stage_model(repo, config, {"lr.linear.weight": torch.zeros(1, dim), "lr.linear.bias": torch.tensor([bias])}))


@pytest.fixture()
def dim(feature_dir) -> int:
    return SchemaStore(feature_dir).load("ads", "1").dim


def run(coroutine):
    return asyncio.run(coroutine)


def test_serves_the_newest_versions_under_the_policy(tmp_path, feature_dir, dim):
    for version, bias in ((1, 0.0), (2, 1.0), (3, 2.0)):
        write(tmp_path / "repo", dim, version, bias=bias)

    async def scenario():
        manager = ModelManager(tmp_path / "repo", feature_dir, default_policy=VersionPolicy(latest=2))
        await manager.refresh()
        served = sorted(manager.served["toy"])
        newest = manager.get("toy")
        out, _ = await newest.infer(torch.zeros(2, dim), None)
        older, _ = await manager.get("toy", "2").infer(torch.zeros(1, dim), None)
        with pytest.raises(NotFound, match="has no ready version '1' \\(ready: 2, 3\\)"):
            manager.get("toy", "1")
        index = manager.index()
        await manager.unload_all()
        return served, newest.version, out, older, index, manager.ready

    served, newest, out, older, index, ready = run(scenario())
    assert served == ["2", "3"] and newest == "3"
    assert out["score"].tolist() == pytest.approx([torch.sigmoid(torch.tensor(2.0)).item()] * 2)
    assert older["score"].tolist() == pytest.approx([torch.sigmoid(torch.tensor(1.0)).item()])
    assert index == [("toy", "1", "UNAVAILABLE", "not loaded (version policy)"), ("toy", "2", "READY", ""), ("toy", "3", "READY", "")]


def test_new_versions_are_picked_up_and_a_broken_one_changes_nothing(tmp_path, feature_dir, dim):
    repo = tmp_path / "repo"
    write(repo, dim, 1)

    async def scenario():
        manager = ModelManager(repo, feature_dir, default_policy=VersionPolicy(latest=1))
        await manager.refresh()
        assert manager.ready and manager.get("toy").version == "1"
        broken = write(repo, dim, 2)
        (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
        problems = await manager.refresh()
        still = manager.get("toy").version  # version 1 keeps serving
        with pytest.raises(Unavailable, match="version '2' is UNAVAILABLE: .*corrupt safetensors"):
            manager.get("toy", "2")
        shutil.rmtree(broken)
        write(repo, dim, 3, bias=1.0)
        await manager.refresh()
        latest = manager.get("toy").version
        served = sorted(manager.served["toy"])
        await manager.unload_all()
        return problems, still, latest, served

    problems, still, latest, served = run(scenario())
    assert len(problems) == 1 and "corrupt safetensors" in problems[0]
    assert still == "1" and latest == "3" and served == ["3"]  # policy latest=1: v1 unloaded


def test_specific_versions_policy(tmp_path, feature_dir, dim):
    for version in (1, 2, 3):
        write(tmp_path / "repo", dim, version)

    async def scenario():
        manager = ModelManager(tmp_path / "repo", feature_dir, policies={"toy": VersionPolicy(specific=("1", "3"))})
        await manager.refresh()
        served = sorted(manager.served["toy"])
        await manager.unload_all()
        return served

    assert run(scenario()) == ["1", "3"]


def test_a_version_held_back_stays_out_until_the_model_is_loaded_again(tmp_path, feature_dir, dim):
    for version, bias in ((1, 0.0), (2, 1.0)):
        write(tmp_path / "repo", dim, version, bias=bias)

    async def scenario():
        manager = ModelManager(tmp_path / "repo", feature_dir, default_policy=VersionPolicy(latest=1))
        await manager.refresh()
        before = manager.get("toy").version
        await manager.hold_back("toy", "2", "rolled back by recovery: version_slow")
        await manager.refresh()  # the poller sees folder 2 and must not serve it again
        after, ready, index = manager.get("toy").version, manager.ready, manager.index()
        with pytest.raises(Unavailable, match="held back: rolled back by recovery"):
            manager.get("toy", "2")
        with pytest.raises(NotFound, match="parameters\\['version'\\]: model 'toy' has no version '7'"):
            await manager.hold_back("toy", "7", "")
        await manager.hold_back("toy", "1", "")  # every version held: not ready-breaking, nothing served
        all_held_ready = (await manager.refresh(), manager.ready, "toy" in manager.served)
        await manager.load("toy")  # an explicit load lifts the holds
        lifted = manager.get("toy").version
        await manager.unload_all()
        return before, after, ready, index, all_held_ready, lifted

    before, after, ready, index, all_held_ready, lifted = run(scenario())
    assert (before, after, ready) == ("2", "1", True)
    assert index == [("toy", "1", "READY", ""), ("toy", "2", "UNAVAILABLE", "held back: rolled back by recovery: version_slow")]
    assert all_held_ready == ([], False, False)
    assert lifted == "2"


def test_unload_drains_in_flight_requests_and_load_brings_it_back(tmp_path, feature_dir, dim):
    write(tmp_path / "repo", dim, 1)

    async def scenario():
        manager = ModelManager(tmp_path / "repo", feature_dir)
        await manager.refresh()
        served = manager.get("toy")
        release = asyncio.Event()
        original = served.batcher.run

        def slow(x):
            while not release.is_set():
                pass  # busy until released (runs in a worker thread)
            return original(x)

        served.batcher.run = slow
        in_flight = asyncio.create_task(served.infer(torch.zeros(1, dim), None))
        await asyncio.sleep(0.05)
        unloading = asyncio.create_task(manager.unload("toy"))
        await asyncio.sleep(0.05)
        assert not unloading.done()
        release.set()
        out, _ = await in_flight  # answered, not dropped
        await unloading
        with pytest.raises(NotFound):
            manager.get("toy")
        await manager.refresh()  # the poller must not bring it back by itself
        assert "toy" not in manager.served and manager.ready is False
        await manager.load("toy")
        back = manager.get("toy").version
        with pytest.raises(NotFound, match="no model 'ghost' in the repository"):
            await manager.load("ghost")
        await manager.unload_all()
        return out, back

    out, back = run(scenario())
    assert out["score"].tolist() == [0.5] and back == "1"


def test_schema_checks_at_load_and_per_request(tmp_path, feature_dir, dim):
    write(tmp_path / "repo", dim, 1, schema_version="9")
    write(tmp_path / "repo", dim, 1, name="good")

    async def scenario():
        manager = ModelManager(tmp_path / "repo", feature_dir)
        problems = await manager.refresh()
        good = manager.get("good")
        check_features(good, torch.zeros(2, dim))
        with pytest.raises(InvalidArgument, match=rf"shape must be \[-1, {dim}\] \(got \[2, 3\]\)"):
            check_features(good, torch.zeros(2, 3))
        with pytest.raises(InvalidArgument, match="holds NaN or infinity"):
            check_features(good, torch.full((1, dim), float("inf")))
        manager.check_schema(good, "ads/1")
        with pytest.raises(FailedPrecondition) as mismatch:
            manager.check_schema(good, "ads/2")
        ready = manager.ready
        await manager.unload_all()
        return problems, mismatch.value, ready

    problems, mismatch, ready = run(scenario())
    assert "toy v1: feature_schema: unknown feature schema ads version 9" in problems[0]
    assert mismatch.reason == "FEATURE_SCHEMA_MISMATCH" and mismatch.info == {"expected": "ads/1", "got": "ads/2"}
    assert ready is False  # a model of the repository failed to load: not ready


def write_pair(repo: Path, dim: int) -> Path:
    """A weighted average of two logistic members answering 0.5 and sigmoid(2) whatever the input."""
    config = {
        "name": "pair", "version": 1, "input_dim": dim, "feature_schema": {"name": "ads", "version": "1"},
        "ensemble": {"method": "weighted_average", "weights": [1.0, 1.0]},
        "members": [{"name": "a", "hidden": 0}, {"name": "b", "hidden": 0}],
    }
    tensors = {"a.linear.weight": torch.zeros(1, dim), "a.linear.bias": torch.tensor([0.0]),
               "b.linear.weight": torch.zeros(1, dim), "b.linear.bias": torch.tensor([2.0])}
    return publish(stage_model(repo, config, tensors))


def test_new_ensemble_weights_serve_without_a_reload_and_bad_ones_change_nothing(tmp_path, feature_dir, dim):
    from domain.models.ensemble_weights import OVERRIDES_DIR, history, write_version

    version_dir = write_pair(tmp_path / "repo", dim)
    b = torch.sigmoid(torch.tensor(2.0)).item()

    async def score(manager) -> float:
        out, _ = await manager.get("pair").infer(torch.zeros(1, dim), None)
        return out["score"].item()

    async def scenario():
        manager = ModelManager(tmp_path / "repo", feature_dir)
        await manager.refresh()
        trained = await score(manager)
        batcher = manager.get("pair").batcher
        tuned = {8: KernelConfig(16, 32, 64, splits=2)}  # what tuning at load left on a GPU
        manager.get("pair").model.packed.prepared[("tuned", torch.float32, "tf32")] = tuned
        write_version(version_dir, {"a": 3.0, "b": 1.0}, "online_learner", "test", ("a", "b"))
        await manager.refresh()
        learned = await score(manager)
        assert manager.get("pair").model.packed.prepared[("tuned", torch.float32, "tf32")] is tuned  # new weights, same configs
        same_batcher = manager.get("pair").batcher is batcher  # no reload: the same queue keeps serving
        (version_dir / OVERRIDES_DIR / "2.json").write_text('{"weights": {"a": -1, "b": 1}}')
        problems = await manager.refresh()
        still = await score(manager)
        index = manager.index()
        await manager.unload_all()
        restarted = ModelManager(tmp_path / "repo", feature_dir)  # a restart loads the newest valid weights (#1)
        await restarted.refresh()
        after_restart = await score(restarted), restarted.get("pair").model.weights_version
        write_version(version_dir, {"a": 1.0, "b": 3.0}, "online_learner", "test", ("a", "b"))
        await restarted.refresh()
        newest = await score(restarted), restarted.get("pair").model.weights_version
        await restarted.unload_all()
        return trained, learned, same_batcher, problems, still, index, after_restart, newest

    trained, learned, same_batcher, problems, still, index, after_restart, newest = run(scenario())
    assert trained == pytest.approx((0.5 + b) / 2) and learned == pytest.approx((3 * 0.5 + b) / 4) and same_batcher
    assert len(problems) == 1 and "every weight must be a finite number > 0" in problems[0]
    assert still == pytest.approx(learned)  # the refused weights changed nothing
    assert index == [("pair", "1", "READY", f"new ensemble weights refused: {problems[0].removeprefix('new ensemble weights refused: ')}")]
    assert after_restart == (pytest.approx(learned), 1)
    assert newest == (pytest.approx((0.5 + 3 * b) / 4), 3)
    assert [(v.number, v.source) for v in history(version_dir, ("a", "b"))] == [(1, "online_learner"), (3, "online_learner")]


def test_the_newest_production_version_serves_beside_the_newest_staging_ones(tmp_path, feature_dir, dim):
    from domain.models.stages import write_stage

    write(tmp_path / "repo", dim, 1)  # production (written before stages, or the first)
    for version in (2, 3):
        write_stage(write(tmp_path / "repo", dim, version), "staging", "trained")

    async def scenario():
        manager = ModelManager(tmp_path / "repo", feature_dir, default_policy=VersionPolicy(latest=2))
        await manager.refresh()
        served = sorted(manager.served["toy"])
        await manager.unload_all()
        return served

    assert run(scenario()) == ["1", "2", "3"]  # latest=2 alone would drop the only production version


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU's choices")
def test_compute_modes_on_a_cpu(tmp_path):
    from services.inference.app import build_manager
    from services.inference.settings import InferenceSettings

    auto = build_manager(InferenceSettings(state_dir=tmp_path))
    assert (auto.device, auto.compute_dtype, auto.precision, auto.dispatcher) == ("cpu", torch.float32, "ieee", None)
    assert auto.tuning_cache == tmp_path / "kernel-tuning.json"
    assert build_manager(InferenceSettings(state_dir=tmp_path, compute_dtype="bfloat16")).compute_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="tf32 is a GPU mode"):
        build_manager(InferenceSettings(state_dir=tmp_path, compute_dtype="tf32"))
