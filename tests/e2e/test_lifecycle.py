"""`scoremesh up` on a fresh state directory: trains on first run, stops cleanly on Ctrl-C."""

from __future__ import annotations

import json

import pytest

from mesh.discovery.local import pid_alive
from tests.e2e.mesh_process import MeshProcess, scoremesh

pytestmark = pytest.mark.mesh


def test_status_fails_when_no_mesh_runs(tmp_path):
    result = scoremesh("status", "--json", state_dir=tmp_path / "nothing")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"running": False, "healthy": False, "instances": []}


def test_up_trains_on_first_run_and_ctrl_c_leaves_no_process(tmp_path):
    mesh = MeshProcess(tmp_path / "state")
    try:
        mesh.start()
        assert "no model repository" in mesh.log() and "training one" in mesh.log()
        for model in ("ctr_ensemble", "cvr_ensemble", "quality_ensemble"):
            assert (tmp_path / "state" / "models" / model / "1" / "model.safetensors").is_file()
        pids = [json.loads(p.read_text())["pid"] for p in (tmp_path / "state" / "registry").glob("*.json")]
        assert len(pids) == 7
        again = scoremesh("up", state_dir=tmp_path / "state", timeout=60)
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        code = mesh.stop()
    assert code == 0, mesh.log()
    assert "scoremesh: stopped" in mesh.log()
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert list((tmp_path / "state" / "registry").glob("*.json")) == []
    assert scoremesh("status", "--json", state_dir=tmp_path / "state").returncode == 1
