"""`scoremesh bench`: the inference service alone (one hop), or Score through the whole mesh,
each beside its floor of bare gRPC measured in the same run (benchmarks/)."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from benchmarks import inference as inference_bench
from benchmarks import mesh as mesh_bench
from cli.status import collect_status
from domain.features.schema_store import SchemaStore
from domain.models.repository import scan
from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from mesh import tls
from mesh.config import MeshSettings
from mesh.discovery import LocalRegistry, open_registry


def machine() -> str:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} cores {platform.machine()} {model}".strip()


def _ensure_models(settings: MeshSettings) -> None:
    if not scan(settings.model_repository):
        from training.train import train

        print(f"scoremesh: no models in {settings.model_repository}; training", flush=True)
        train(settings.model_repository, settings.feature_dir)


def inference(settings: MeshSettings, address: str | None, model: str, rows: int, levels: tuple[int, ...], seconds: float, out: Path) -> int:
    server = None
    if not address:
        _ensure_models(settings)
        server = _start_inference(settings)
        address = server[1]
    try:
        with grpc.insecure_channel(address) as channel:
            metadata = pb_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10)
        dim = int(metadata.inputs[0].shape[1])
        print(f"scoremesh bench: {model} at {address}, {rows} rows per request, {seconds:g}s per level; {machine()}", flush=True)
        pids = [server[0].pid] if server else []
        results = asyncio.run(inference_bench.run(address, model, dim, rows, levels, seconds, pids))
        print(inference_bench.report(results, rows, out, machine()))
        print(f"results in {out}/")
    finally:
        if server is not None:
            server[0].terminate()
            server[0].wait(15)
    return 0


def _start_inference(settings: MeshSettings):
    """A dedicated inference process (so the numbers are the service's, not a shared mesh's)."""
    env = dict(os.environ, SCOREMESH_STATE_DIR=str(settings.state_dir))
    instance_id = f"inference-bench-{os.getpid()}"
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(settings.log_dir / f"{instance_id}.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "services.inference", "--instance-id", instance_id], env=env, stdout=log_file, stderr=log_file)
    registry = LocalRegistry(settings.registry_dir)
    deadline = time.monotonic() + 300  # on a GPU, a first start tunes the kernels for every model
    while time.monotonic() < deadline:
        found = [i for i in registry.resolve("inference") if i.instance_id == instance_id]
        if found:
            return process, found[0].address
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"scoremesh: the benchmark's inference server did not start; see {settings.log_dir / instance_id}.log")


def mesh(settings: MeshSettings, candidates: tuple[int, ...], levels: tuple[int, ...], seconds: float, out: Path, rounds: int = 3) -> int:
    up = None
    if not asyncio.run(collect_status(settings)).healthy:
        print(f"scoremesh bench: no mesh runs with state in {settings.state_dir}; starting one", flush=True)
        up = _start_mesh(settings)
    try:
        status = asyncio.run(collect_status(settings))
        router = next(i.address for i in status.instances if i.service == "router" and i.healthy)
        pids: dict[str, list[int]] = {}
        for state in open_registry(settings).list_all():
            if state.instance.service != "supervisor":
                pids.setdefault(state.instance.service, []).append(state.instance.pid)
        dim = SchemaStore(settings.feature_dir).load("ads").dim
        print(f"scoremesh bench --mesh: router at {router}, {seconds:g}s per level; {machine()}", flush=True)
        results = asyncio.run(mesh_bench.run(router, pids, dim, candidates, levels, seconds, rounds, tls.Channels(tls.for_cli(settings))))
        print(mesh_bench.report(results, out, machine()))
        print(f"results in {out}/")
    finally:
        if up is not None:
            up.send_signal(signal.SIGINT)
            up.wait(60)
    return 0


def _start_mesh(settings: MeshSettings) -> subprocess.Popen:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(settings.state_dir / "bench-up.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "up", "--state-dir", str(settings.state_dir)], stdout=log_file, stderr=log_file)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if asyncio.run(collect_status(settings)).healthy:
            return process
        time.sleep(1.0)
    process.kill()
    raise SystemExit(f"scoremesh: the mesh did not become healthy; see {settings.state_dir / 'bench-up.log'}")
