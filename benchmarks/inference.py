"""`scoremesh bench`: load test of the inference service alone (not a test; prints numbers).

Closed-loop clients at each concurrency send ModelInfer requests of `rows` feature rows for a
fixed time; reported: throughput (rows scored per second and requests per second) and latency
percentiles. Batching shows as throughput growing with concurrency. Writes a JSON file and, with
matplotlib installed, a plot.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import numpy as np
from tqdm import tqdm

from inference import grpc_service_pb2 as pb
from inference import grpc_service_pb2_grpc as pb_grpc
from mesh.inference_client import encode_request


@dataclass
class Level:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rows_per_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


async def _level(stub, request: pb.ModelInferRequest, rows: int, concurrency: int, seconds: float, bar: tqdm) -> Level:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                await stub.ModelInfer(request, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
            bar.update(1)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    p50, p95, p99 = (np.percentile(latencies, [50, 95, 99]) * 1000) if latencies else (0.0, 0.0, 0.0)
    return Level(concurrency, len(latencies), errors, elapsed, len(latencies) * rows / elapsed, len(latencies) / elapsed, float(p50), float(p95), float(p99))


async def run(address: str, model: str, dim: int, rows: int, levels: tuple[int, ...], seconds: float) -> list[Level]:
    features = np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float32)
    request = encode_request(model, features, request_id="bench")
    results = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(20):  # warm-up
            await stub.ModelInfer(request, timeout=10)
        for concurrency in levels:
            with tqdm(desc=f"concurrency {concurrency:3d}", unit="req", leave=False, disable=None) as bar:
                results.append(await _level(stub, request, rows, concurrency, seconds, bar))
    return results


def report(levels: list[Level], rows: int, out_dir: Path) -> str:
    lines = [
        f"ModelInfer, {rows} rows per request",
        "| concurrency | requests | errors | rows/s | requests/s | p50 ms | p95 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        lines.append(f"| {lv.concurrency} | {lv.requests} | {lv.errors} | {lv.rows_per_s:,.0f} | {lv.requests_per_s:,.0f} | {lv.p50_ms:.2f} | {lv.p95_ms:.2f} | {lv.p99_ms:.2f} |")
    if len(levels) > 1 and levels[0].rows_per_s:
        lines.append(f"throughput at concurrency {levels[-1].concurrency} = {levels[-1].rows_per_s / levels[0].rows_per_s:.1f}x concurrency {levels[0].concurrency}")
    text = "\n".join(lines)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "inference-bench.json").write_text(json.dumps([asdict(lv) for lv in levels], indent=2))
    (out_dir / "inference-bench.md").write_text(text + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return text + "\n(matplotlib not installed: no plot)"
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    x = [lv.concurrency for lv in levels]
    left.plot(x, [lv.rows_per_s for lv in levels], "-o")
    left.set(xscale="log", xlabel="concurrency", ylabel="rows / s", title="throughput")
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        right.plot(x, [getattr(lv, key) for lv in levels], "-o", label=key.replace("_ms", ""))
    right.set(xscale="log", xlabel="concurrency", ylabel="ms", title="latency")
    right.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "inference-bench.png", dpi=110)
    return text
