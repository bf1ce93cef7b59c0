"""The embedded registry for one machine: one JSON file per instance in the state directory.

No extra process. An instance writes its entry on start, refreshes a heartbeat every second and
removes the entry on a clean stop. Resolution keeps only entries whose process is alive, whose
heartbeat is fresh and that report SERVING, so an instance killed with SIGKILL drops out at once
(its pid is gone) and a hung one within `stale_after_s`.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

from mesh.discovery.base import Instance, InstanceState, Registry


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) still answers kill(0); it is dead to us.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class LocalRegistry(Registry):
    def __init__(self, directory: Path, stale_after_s: float = 3.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stale_after_s = stale_after_s
        # Ids deregistered by this process: a heartbeat still in flight must not resurrect them.
        self._deregistered: set[str] = set()
        self._lock = threading.Lock()

    def _path(self, instance_id: str) -> Path:
        if not instance_id or "/" in instance_id or instance_id.startswith("."):
            raise ValueError(f"instance_id {instance_id!r} is not a valid registry key")
        return self.directory / f"{instance_id}.json"

    def _write(self, instance: Instance, serving: bool) -> None:
        entry = instance.to_dict() | {"serving": serving, "heartbeat": time.time()}
        # Atomic replace: readers never see a half-written entry.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(fd, "w") as out:
            json.dump(entry, out)
        os.replace(tmp, self._path(instance.instance_id))

    def _read_all(self) -> list[dict]:
        entries = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                entries.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # removed or replaced while reading
        return entries

    def register(self, instance: Instance) -> None:
        with self._lock:
            self._deregistered.discard(instance.instance_id)
            self._write(instance, serving=False)

    def set_serving(self, instance: Instance, serving: bool) -> None:
        with self._lock:
            if instance.instance_id not in self._deregistered:
                self._write(instance, serving)

    def heartbeat(self, instance: Instance) -> None:
        with self._lock:
            if instance.instance_id in self._deregistered:
                return
            path = self._path(instance.instance_id)
            try:
                serving = json.loads(path.read_text()).get("serving", False)
            except (OSError, ValueError):
                serving = False
            self._write(instance, serving)

    def deregister(self, instance_id: str) -> None:
        with self._lock:
            self._deregistered.add(instance_id)
            self._path(instance_id).unlink(missing_ok=True)

    def _state(self, entry: dict) -> InstanceState:
        instance = Instance(
            service=entry["service"],
            instance_id=entry["instance_id"],
            address=entry["address"],
            metrics_url=entry.get("metrics_url", ""),
            pid=entry.get("pid", 0),
            meta=entry.get("meta", {}),
        )
        if not pid_alive(instance.pid):
            return InstanceState(instance, False, "process is not running", process_gone=True)
        age = time.time() - entry.get("heartbeat", 0)
        if age > self.stale_after_s:
            return InstanceState(instance, False, f"no heartbeat for {age:.1f}s")
        if not entry.get("serving"):
            return InstanceState(instance, False, "not serving")
        ejected = self._maintenance(instance)
        if ejected is not None:
            return InstanceState(instance, False, f"ejected: {ejected}")
        return InstanceState(instance, True)

    def _maintenance_path(self, instance_id: str) -> Path:
        return self._path(instance_id).with_suffix(".maintenance")

    def _maintenance(self, instance: Instance) -> str | None:
        """The reason this process of the instance is ejected, if it is (a marker beside its entry,
        naming the pid: the instance rewrites its own entry on every heartbeat)."""
        try:
            marker = json.loads(self._maintenance_path(instance.instance_id).read_text())
        except (OSError, ValueError):
            return None
        return marker.get("reason", "") if marker.get("pid") == instance.pid else None

    def set_maintenance(self, instance: Instance, reason: str | None) -> None:
        path = self._maintenance_path(instance.instance_id)
        if reason is None:
            path.unlink(missing_ok=True)
            return
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(fd, "w") as out:
            json.dump({"pid": instance.pid, "reason": reason}, out)
        os.replace(tmp, path)

    def list_all(self) -> list[InstanceState]:
        return [self._state(e) for e in self._read_all()]

    def resolve(self, service: str) -> list[Instance]:
        return [
            s.instance
            for s in self.list_all()
            if s.instance.service == service and s.healthy
        ]
