"""Run `scoremesh up` as a real process tree for tests, and always tear it down."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def stop_process(process: subprocess.Popen, sig: int, grace: float) -> None:
    """Ask politely with `sig`; SIGKILL the process group if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def scoremesh(*args: str, state_dir: Path, timeout: float = 30.0, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args, "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=env or os.environ.copy(),
    )


class MeshProcess:
    def __init__(self, state_dir: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.state_dir = state_dir
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = state_dir.parent / f"{state_dir.name}-up.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "MeshProcess":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up", "--state-dir", str(self.state_dir), *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"scoremesh up exited early:\n{self.log_path.read_text()}")
            status = self.status()
            if status["returncode"] == 0 and len(status["instances"]) >= 7:
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mesh not healthy after {timeout}s:\n{self.log_path.read_text()}")

    def status(self) -> dict:
        result = scoremesh("status", "--json", state_dir=self.state_dir, env=self.env)
        document = json.loads(result.stdout) if result.stdout.strip() else {"instances": []}
        document["returncode"] = result.returncode
        return document

    def instances(self, service: str) -> list[dict]:
        return [i for i in self.status()["instances"] if i["service"] == service]

    def address(self, service: str) -> str:
        return self.instances(service)[0]["address"]

    def stop(self, grace: float = 30.0) -> int | None:
        """Ctrl-C (SIGINT) like a person would; SIGKILL the whole group if it hangs."""
        if self.process is None:
            return None
        stop_process(self.process, signal.SIGINT, grace)
        self._log.close()
        self._kill_leftovers()
        return self.process.returncode

    def _kill_leftovers(self) -> None:
        """Whatever a failed test left registered must not outlive it."""
        for entry in (self.state_dir / "registry").glob("*.json"):
            try:
                pid = json.loads(entry.read_text()).get("pid", 0)
                if pid:
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                continue

    def log(self) -> str:
        return self.log_path.read_text()


class ServiceProcess:
    """One service (`python -m services.<name>`) as a real process on a state directory."""

    def __init__(self, service: str, state_dir: Path, env: dict[str, str] | None = None, instance_id: str | None = None) -> None:
        self.service = service
        self.instance_id = instance_id or f"{service}-test"
        self.state_dir = state_dir
        self.env = {**os.environ, "SCOREMESH_STATE_DIR": str(state_dir), **(env or {})}
        self.log_path = state_dir / f"{self.instance_id}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "ServiceProcess":
        from mesh.discovery.local import LocalRegistry

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.service}", "--instance-id", self.instance_id],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=self.env, start_new_session=True,
        )
        registry = LocalRegistry(self.state_dir / "registry")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.service} exited early:\n{self.log_path.read_text()}")
            healthy = [i for i in registry.resolve(self.service) if i.instance_id == self.instance_id]
            if healthy:
                self.address = healthy[0].address
                self.metrics_url = healthy[0].metrics_url
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.service} not ready after {timeout}s:\n{self.log_path.read_text()}")

    def stop(self, grace: float = 15.0) -> None:
        if self.process is None:
            return
        stop_process(self.process, signal.SIGTERM, grace)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text()


@contextlib.contextmanager
def running(processes: dict[str, ServiceProcess]):
    """Start the processes in order; stop them in reverse whatever happens, continuing any a
    fault test left stopped (SIGSTOP) first."""
    try:
        for process in processes.values():
            process.start()
        yield processes
    finally:
        for process in reversed(list(processes.values())):
            if process.process is not None and process.process.poll() is None:
                os.kill(process.process.pid, signal.SIGCONT)  # never leave one stopped
            process.stop()


@contextlib.contextmanager
def collector_frozen():
    """This test process is the load generator, and its heap (torch, training, hypothesis) is
    large: a full garbage collection in it stalls every call in flight for ~200 ms, which a
    latency comparison would charge to the mesh. Freeze what exists while measuring."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


SEARCH_ONLY = "default_route: search\nroutes:\n  search: {ensemble: ctr_ensemble}\n"


def small_state(tmp_path_factory, name: str, routing: str = SEARCH_ONLY) -> Path:
    """A state directory with ctr_ensemble trained small (3,000 rows, one epoch) and a routing
    file: what the fault tests' own small meshes start from."""
    from training.train import ENSEMBLES, TrainOptions, train

    state = tmp_path_factory.mktemp(name) / "state"
    train(state / "models", state / "features", TrainOptions(rows=3000, max_epochs=1), ensembles=ENSEMBLES[:1], progress=lambda _: None)
    (state / "routing.yaml").write_text(routing)
    return state
