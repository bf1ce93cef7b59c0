"""Per model-version counters and cumulative durations, like Triton's ModelStatistics, and the
Prometheus metrics that mirror them."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram

from mesh.metrics import LATENCY_BUCKETS

REQUESTS = Counter("scoremesh_inference_requests_total", "ModelInfer requests by outcome.", ["model", "version", "status"])
QUEUE_SECONDS = Histogram("scoremesh_inference_queue_seconds", "Time a request waited for its batch.", ["model", "version"], buckets=LATENCY_BUCKETS)
COMPUTE_SECONDS = Histogram("scoremesh_inference_compute_seconds", "Kernel time of one batch.", ["model", "version"], buckets=LATENCY_BUCKETS)
NON_FINITE = Counter(
    "scoremesh_inference_nonfinite_outputs_total", "Requests whose model outputs were not finite (withheld, answered with an error).",
    ["model", "version"],
)
BATCH_ROWS = Histogram(
    "scoremesh_inference_batch_rows", "Rows per executed batch.", ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
)


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += int(seconds * 1e9)


@dataclass
class VersionStatistics:
    name: str
    version: str
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0  # rows
    execution_count: int = 0  # batches
    last_inference_ms: int = 0
    non_finite: int = 0  # requests whose outputs were not finite
    batches: dict[int, Duration] = field(default_factory=lambda: defaultdict(Duration))  # batch rows -> compute

    def __post_init__(self) -> None:
        # Label children bound once: a labels() lookup per request costs more than the update.
        self._compute = COMPUTE_SECONDS.labels(self.name, self.version)
        self._rows = BATCH_ROWS.labels(self.name, self.version)
        self._ok = REQUESTS.labels(self.name, self.version, "OK")
        self._queue = QUEUE_SECONDS.labels(self.name, self.version)

    def record_batch(self, rows: int, compute_s: float) -> None:
        self.execution_count += 1
        self.batches[rows].add(compute_s)
        self._compute.observe(compute_s)
        self._rows.observe(rows)

    def record_success(self, rows: int, total_s: float, queue_s: float, compute_s: float, input_s: float, output_s: float) -> None:
        self.success.add(total_s)
        self.queue.add(queue_s)
        self.compute_input.add(input_s)
        self.compute_infer.add(compute_s)
        self.compute_output.add(output_s)
        self.inference_count += rows
        self.last_inference_ms = int(time.time() * 1000)
        self._ok.inc()
        self._queue.observe(queue_s)

    def record_non_finite(self) -> None:
        self.non_finite += 1
        NON_FINITE.labels(self.name, self.version).inc()

    def record_failure(self, total_s: float, status: str) -> None:
        self.fail.add(total_s)
        REQUESTS.labels(self.name, self.version, status).inc()
