"""The promotion gate on the running mesh: a new version waits in staging while production keeps
answering; `scoremesh models promote` takes it through the gate (metrics, data quality, a load
probe against a replica) and routers move to it; `scoremesh models rollback` moves them back."""

from __future__ import annotations

import os
import re
import shutil
import time

import grpc
import pytest
import yaml

from domain.models.stages import write_stage
from scoremesh.v1 import router_pb2_grpc
from tests.e2e.mesh_process import scoremesh
from tests.e2e.requests import score_request

pytestmark = pytest.mark.mesh


def answering(mesh) -> set[str]:
    """The versions of ctr_ensemble that answer search Scores (some rules send search traffic to
    ctr_stacking: those answers are left out)."""
    with grpc.insecure_channel(mesh.address("router")) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        models = [stub.Score(score_request(3, "search", seed=i), timeout=10).model for i in range(12)]
    return {m.version for m in models if m.name == "ctr_ensemble"}


def until(mesh, versions: set[str], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while (seen := answering(mesh)) != versions:
        assert time.monotonic() < deadline, seen
        time.sleep(0.5)


def test_a_staging_version_serves_only_once_promoted_and_a_rollback_restores_production(mesh):
    models = mesh.state_dir / "models" / "ctr_ensemble"
    newest = max(int(p.name) for p in models.iterdir() if p.name.isdigit())
    assert answering(mesh) == {str(newest)}
    candidate = models / f".staging-{newest + 1}"
    shutil.copytree(models / str(newest), candidate, ignore=shutil.ignore_patterns("stage.json", "ensemble-weights", ".*"))
    config = yaml.safe_load((candidate / "config.yaml").read_text())
    config["version"] = newest + 1
    (candidate / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    write_stage(candidate, "staging", "e2e test")
    candidate.rename(models / str(newest + 1))  # published as training publishes: staged, then one rename

    deadline = time.monotonic() + 15
    while not re.search(rf"ctr_ensemble +v{newest + 1} +staging +READY", (listed := scoremesh("models", "list", state_dir=mesh.state_dir)).stdout):
        assert time.monotonic() < deadline, listed.stdout  # the replicas' repository poll loads it
        time.sleep(0.5)
    assert re.search(rf"ctr_ensemble +v{newest} +production +READY", listed.stdout), listed.stdout
    time.sleep(3)  # the catalog's refresh: still production answering
    assert answering(mesh) == {str(newest)}

    refused = scoremesh("models", "promote", "ctr_ensemble", str(newest + 1), state_dir=mesh.state_dir, env={**os.environ, "SCOREMESH_ADMIN_TOKEN": "wrong"})
    assert refused.returncode == 1
    promoted = scoremesh("models", "promote", "ctr_ensemble", str(newest + 1), "--reason", "e2e", state_dir=mesh.state_dir, timeout=120)
    assert promoted.returncode == 0 and promoted.stdout.startswith(f"succeeded: ctr_ensemble v{newest + 1} is production"), (
        promoted.stdout, promoted.stderr)
    assert "probe p99" in promoted.stdout
    until(mesh, {str(newest + 1)})

    rolled = scoremesh("models", "rollback", "ctr_ensemble", "--reason", "e2e", state_dir=mesh.state_dir)
    assert rolled.returncode == 0 and rolled.stdout.startswith(f"succeeded: ctr_ensemble v{newest} is production again"), rolled.stderr
    until(mesh, {str(newest)})
