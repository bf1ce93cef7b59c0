"""Start one inference instance: `python -m services.inference --instance-id inference-1`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import torch

from inference import grpc_service_pb2_grpc as pb_grpc
from mesh.config import MeshSettings
from mesh.server import ServiceRuntime, service_main
from services.inference.engine import InferenceEngine
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


async def serve(instance_id: str) -> None:
    settings = InferenceSettings()
    torch.set_num_threads(settings.torch_threads)
    runtime = ServiceRuntime(settings, "inference", instance_id)
    device = settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    engine = InferenceEngine(settings.model_repository_path or settings.model_repository, settings.feature_dir, device=device)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(engine), runtime.server)
    runtime.add_services([SERVICE_NAME])
    await runtime.start()
    runtime.install_signal_handlers()
    try:
        await asyncio.to_thread(engine.load)
        await asyncio.to_thread(engine.warm_up)
    except Exception:
        log.exception("model loading failed; staying NOT_SERVING")
    else:
        await runtime.set_serving(True)
    await runtime.run_until_stopped()


def main(argv: list[str] | None = None) -> None:
    service_main("inference", serve, argv)
