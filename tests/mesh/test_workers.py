"""One instance, several worker processes on one port: registered once with its worker count,
connections spread over the workers, metrics merged, a dead worker started again, and a clean
stop (real processes on loopback)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import grpc

from mesh.discovery.local import pid_alive
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc
from tests.e2e.mesh_process import ServiceProcess


def _children(pid: int) -> list[int]:
    return sorted(int(c) for task in Path(f"/proc/{pid}/task").glob("*") for c in (task / "children").read_text().split())


def test_an_instance_with_two_workers(tmp_path):
    process = ServiceProcess("monitoring", tmp_path / "state", {"SCOREMESH_WORKERS": "2"})
    try:
        process.start()
        entry = json.loads((tmp_path / "state" / "registry" / "monitoring-test.json").read_text())
        assert entry["meta"]["workers"] == "2" and entry["pid"] == process.process.pid
        workers = _children(process.process.pid)
        assert len(workers) == 2
        # Each channel is its own connection; the kernel spreads connections over the workers.
        channels = [grpc.insecure_channel(process.address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(12)]
        for channel in channels:
            monitoring_pb2_grpc.MonitoringStub(channel).GetSLO(monitoring_pb2.GetSLORequest(), timeout=5)
        metrics_dir = tmp_path / "state" / "metrics" / "monitoring-test"
        answered = {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}
        assert answered == set(workers), (answered, workers)
        text = urllib.request.urlopen(process.metrics_url, timeout=5).read().decode()
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="GetSLO",grpc_service="scoremesh.v1.Monitoring",grpc_type="unary_unary"} 12.0' in text
        # A worker killed outright is started again; the instance keeps answering meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (len(_children(process.process.pid)) < 2 or workers[0] in _children(process.process.pid)):
            time.sleep(0.2)
        assert len(_children(process.process.pid)) == 2 and workers[0] not in _children(process.process.pid)
        for channel in channels[:4]:
            monitoring_pb2_grpc.MonitoringStub(channel).GetSLO(monitoring_pb2.GetSLORequest(), timeout=5)
        for channel in channels:
            channel.close()
        survivors = _children(process.process.pid)
    finally:
        process.stop()
    assert process.process.returncode == 0
    assert not (tmp_path / "state" / "registry" / "monitoring-test.json").exists()
    assert [pid for pid in survivors if pid_alive(pid)] == []
