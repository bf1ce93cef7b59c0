"""Settings of the inference service (section `inference:` of scoremesh.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mesh.config import MeshSettings


class InferenceSettings(MeshSettings):
    yaml_section = "inference"

    model_repository_path: Path | None = None
    """Model repository; default `<state_dir>/models`."""

    telemetry_buffer: int = 10_000
    """ModelInfer records waiting for monitoring; when full (monitoring slow or down) new ones are
    dropped and counted, never waited for. 0 sends no telemetry."""

    torch_threads: int = 1
    """Intra-op threads for the CPU path (replicas share the machine's cores)."""

    device: str = "auto"
    """Where models run: "auto" (CUDA with the Triton kernels when a GPU is visible, else the
    CPU reference path), "cuda" or "cpu"."""

    compute_dtype: Literal["auto", "float32", "tf32", "bfloat16", "float16"] = "auto"
    """What the kernels compute in: "float32" (IEEE), "tf32" (float32 inputs on a GPU's tensor
    cores: 10-bit mantissa operands, float32 sums), "bfloat16"/"float16" (inputs cast to it).
    "auto": tf32 on a GPU (scores within 4e-4 of float64 at no cost in speed at serving batch
    sizes, README: kernels), float32 on a CPU (its only mode there)."""

    kernel_tuning_cache: Path | None = None
    """GPU kernel configs tuned at model load, kept across restarts; default
    `<state_dir>/kernel-tuning.json`."""

    versions_latest: int = 2
    """Version policy: serve the newest N versions of each model..."""

    versions_specific: dict[str, list[str]] = {}
    """...unless a model is listed here with the exact versions to serve."""

    repository_poll_s: float = 2.0
    """How often the repository is scanned for new or removed versions; 0 = only on request."""


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
