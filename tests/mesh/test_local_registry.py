from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from mesh.discovery import Instance, LocalRegistry


def _instance(i: int, pid: int | None = None) -> Instance:
    return Instance("inference", f"inference-{i}", f"127.0.0.1:{5000 + i}", f"http://127.0.0.1:{6000 + i}/metrics", pid or os.getpid())


def test_register_serving_resolve_deregister(tmp_path):
    registry = LocalRegistry(tmp_path)
    a, b = _instance(1), _instance(2)
    registry.register(a)
    registry.register(b)
    assert registry.resolve("inference") == []  # registered, not yet serving
    registry.set_serving(a, True)
    registry.set_serving(b, True)
    assert [i.instance_id for i in registry.resolve("inference")] == ["inference-1", "inference-2"]
    assert registry.resolve("router") == []
    registry.set_serving(b, False)
    assert [i.instance_id for i in registry.resolve("inference")] == ["inference-1"]
    registry.deregister("inference-1")
    assert [s.instance.instance_id for s in registry.list_all()] == ["inference-2"]


def test_stale_heartbeat_drops_out(tmp_path):
    registry = LocalRegistry(tmp_path, stale_after_s=0.3)
    a = _instance(1)
    registry.register(a)
    registry.set_serving(a, True)
    assert registry.resolve("inference") == [a]
    time.sleep(0.4)
    (state,) = registry.list_all()
    assert not state.healthy and state.reason.startswith("no heartbeat for")
    registry.heartbeat(a)
    assert registry.resolve("inference") == [a]


def test_sigkilled_instance_drops_out_within_5_seconds(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        registry = LocalRegistry(tmp_path)
        victim = _instance(1, pid=child.pid)
        registry.register(victim)
        registry.set_serving(victim, True)
        assert registry.resolve("inference") == [victim]
        os.kill(child.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while registry.resolve("inference"):
            assert time.monotonic() - killed_at < 5.0
            time.sleep(0.05)
        (state,) = registry.list_all()
        assert state.reason == "process is not running" and state.process_gone
    finally:
        child.kill()
        child.wait()


def test_unreadable_entries_are_skipped_and_ids_are_checked(tmp_path):
    registry = LocalRegistry(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    registry.register(_instance(1))
    assert len(registry.list_all()) == 1
    assert json.loads((tmp_path / "inference-1.json").read_text())["serving"] is False
    try:
        registry.deregister("../etc/passwd")
    except ValueError as error:
        assert "not a valid registry key" in str(error)
    else:
        raise AssertionError("path traversal accepted")


def test_heartbeat_after_deregistration_does_not_resurrect_the_entry(tmp_path):
    registry = LocalRegistry(tmp_path)
    a = _instance(1)
    registry.register(a)
    registry.set_serving(a, True)
    registry.deregister(a.instance_id)
    registry.heartbeat(a)  # a heartbeat already in flight when the instance stopped
    registry.set_serving(a, False)
    assert registry.list_all() == []


def test_an_ejected_process_leaves_resolution_until_readmitted_or_replaced(tmp_path):
    registry = LocalRegistry(tmp_path)
    a, b = _instance(1), _instance(2)
    for instance in (a, b):
        registry.register(instance)
        registry.set_serving(instance, True)
    registry.set_maintenance(a, "instance_slow: 4.2x its peers")
    registry.heartbeat(a)  # the instance's own writes do not undo it
    assert registry.resolve("inference") == [b]
    state = next(s for s in registry.list_all() if s.instance.instance_id == "inference-1")
    assert not state.healthy and state.reason == "ejected: instance_slow: 4.2x its peers"
    registry.set_maintenance(a, None)
    assert registry.resolve("inference") == [a, b]
    registry.set_maintenance(a, "again")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            restarted = _instance(1, pid=other.pid)  # a new process under the same id starts afresh
            registry.register(restarted)
            registry.set_serving(restarted, True)
            assert [i.instance_id for i in registry.resolve("inference")] == ["inference-1", "inference-2"]
        finally:
            other.kill()
