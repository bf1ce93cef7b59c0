"""Start one inference instance: `python -m services.inference --instance-id inference-1`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Literal

import torch

from inference import grpc_service_pb2_grpc as pb_grpc
from mesh.config import MeshSettings
from mesh.server import ServiceRuntime, service_main
from services.inference.batching import BatchingPolicy
from services.inference.model_manager import ModelManager, VersionPolicy
from services.inference.servicer import InferenceServicer

log = logging.getLogger(__name__)
SERVICE_NAME = "inference.GRPCInferenceService"


class InferenceSettings(MeshSettings):
    yaml_section = "inference"

    model_repository_path: Path | None = None
    """Model repository; default `<state_dir>/models`."""

    torch_threads: int = 1
    """Intra-op threads for the CPU path (replicas share the machine's cores)."""

    device: str = "auto"
    """Where models run: "auto" (CUDA with the Triton kernels when a GPU is visible, else the
    CPU reference path), "cuda" or "cpu"."""

    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Dtype the kernels compute in (inputs are cast to it); 16-bit pays off on a GPU."""

    versions_latest: int = 2
    """Version policy: serve the newest N versions of each model..."""

    versions_specific: dict[str, list[str]] = {}
    """...unless a model is listed here with the exact versions to serve."""

    repository_poll_s: float = 2.0
    """How often the repository is scanned for new or removed versions; 0 = only on request."""

    admin_token: str | None = None
    """Bearer token that RepositoryModelLoad/Unload require; unset = no check (loopback use)."""

    max_batch_rows: int = 1024
    """Dynamic batching: most rows merged into one kernel call."""

    max_queue_delay_ms: float = 5.0
    """Dynamic batching: longest a request is held for batch mates."""

    max_queue_rows: int = 16384
    """Dynamic batching: rows that may wait; beyond, RESOURCE_EXHAUSTED at once."""

    latency_slo_ms: float = 25.0
    """Dynamic batching: queue + compute target the adaptive delay tracks."""

    inline_cpu_batches: bool = True
    """Run CPU batches on the event loop's thread. The CPU path's kernels are small PyTorch ops
    that hold the GIL between them: in a worker thread each batch then waits for the loop's
    thread to let go of the GIL (up to the 5 ms switch interval), which costs far more than it
    overlaps. GPU batches always run in a worker thread."""


def build_manager(settings: InferenceSettings) -> ModelManager:
    device = settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return ModelManager(
        repository=settings.model_repository_path or settings.model_repository,
        feature_dir=settings.feature_dir,
        device=device,
        compute_dtype=getattr(torch, settings.compute_dtype),
        batching=BatchingPolicy(
            max_batch_rows=settings.max_batch_rows,
            max_queue_delay_s=settings.max_queue_delay_ms / 1000,
            max_queue_rows=settings.max_queue_rows,
            slo_s=settings.latency_slo_ms / 1000,
            inline=settings.inline_cpu_batches and device == "cpu",
        ),
        default_policy=VersionPolicy(latest=settings.versions_latest),
        policies={name: VersionPolicy(specific=tuple(str(v) for v in versions)) for name, versions in settings.versions_specific.items()},
    )


async def serve(instance_id: str) -> None:
    settings = InferenceSettings()
    torch.set_num_threads(settings.torch_threads)
    runtime = ServiceRuntime(settings, "inference", instance_id)
    manager = build_manager(settings)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(manager, settings.admin_token), runtime.server)
    runtime.add_services([SERVICE_NAME])
    await runtime.start()
    runtime.install_signal_handlers()
    runtime.on_stop(manager.unload_all)

    async def watch_repository() -> None:
        """Load what appears, unload what goes; health follows readiness (models warm)."""
        while True:
            try:
                await manager.refresh()
            except Exception:
                log.exception("repository scan failed")
            if manager.ready != runtime.serving:
                await runtime.set_serving(manager.ready)
            if settings.repository_poll_s <= 0:
                return
            await asyncio.sleep(settings.repository_poll_s)

    runtime.spawn(watch_repository(), "repository")
    await runtime.run_until_stopped()


def main(argv: list[str] | None = None) -> None:
    service_main("inference", serve, argv)
