"""`scoremesh bench`: load test of the inference service alone (not a test; prints numbers).

Closed-loop clients at each concurrency send ModelInfer requests of `rows` feature rows for a
fixed time; reported: throughput (rows scored per second and requests per second), latency
percentiles and CPU per request. Then the same load against the one-hop floor (a bare grpc.aio
echo server with the same payload sizes, benchmarks/floor.py), measured in the same run, and
the ratio. Batching shows as throughput growing with concurrency. Writes JSON, markdown and, with
matplotlib installed, a plot.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.floor import METHOD, FloorChain, Hop
from benchmarks.plotting import pyplot
from benchmarks.load import Level, ProcessCpu, channels, closed_loop
from inference import grpc_service_pb2_grpc as pb_grpc
from mesh.inference_client import encode_request


@dataclass
class InferenceLevel:
    rows: int
    service: Level
    floor: Level

    @property
    def rows_per_s(self) -> float:
        return self.service.requests_per_s * self.rows

    @property
    def ratio(self) -> float:
        return self.service.requests_per_s / self.floor.requests_per_s if self.floor.requests_per_s else 0.0


async def _levels(make_call, levels: tuple[int, ...], seconds: float, cpu: ProcessCpu, label: str) -> list[Level]:
    results = []
    for concurrency in levels:
        call = make_call(concurrency)
        for _ in range(20):  # warm-up
            await call()
        with tqdm(desc=f"{label} concurrency {concurrency:3d}", unit="req", leave=False, disable=None) as bar:
            results.append(await closed_loop(call, concurrency, seconds, cpu, lambda: bar.update(1)))
    return results


async def run(address: str, model: str, dim: int, rows: int, levels: tuple[int, ...], seconds: float,
              pids: list[int] | None = None) -> list[InferenceLevel]:
    features = np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float32)
    request = encode_request(model, features, request_id="bench")
    opened = channels(address, 4)
    stubs = [pb_grpc.GRPCInferenceServiceStub(c) for c in opened]

    def service_call(concurrency: int):
        cycle = itertools.cycle(stubs[: min(concurrency, len(stubs))])
        return lambda: next(cycle).ModelInfer(request, timeout=10)

    try:
        service = await _levels(service_call, levels, seconds, ProcessCpu({"inference": pids or []}), "inference")
    finally:
        for channel in opened:
            await channel.close()
    response_bytes = rows * (2 + 4) * 4 + 200  # three outputs (up to four members) and their metadata
    with FloorChain([Hop(response_bytes)]) as chain:
        floor_channels = channels(chain.addresses[0], 4)
        calls = [c.unary_unary(METHOD) for c in floor_channels]
        payload = request.SerializeToString()

        def floor_call(concurrency: int):
            cycle = itertools.cycle(calls[: min(concurrency, len(calls))])
            return lambda: next(cycle)(payload, timeout=10)

        try:
            floor = await _levels(floor_call, levels, seconds, ProcessCpu({"floor": chain.pids}), "floor    ")
        finally:
            for channel in floor_channels:
                await channel.close()
    return [InferenceLevel(rows, s, f) for s, f in zip(service, floor)]


def report(levels: list[InferenceLevel], rows: int, out_dir: Path, machine: str = "") -> str:
    lines = [
        f"ModelInfer, {rows} rows per request, vs. the one-hop floor (bare grpc.aio echo, same payloads){', ' + machine if machine else ''}",
        "| concurrency | requests | errors | rows/s | requests/s | p50 ms | p95 ms | p99 ms | CPU ms/req | floor req/s | floor p50 ms | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        s, f = lv.service, lv.floor
        cpu = sum(s.cpu_ms_per_request.values())
        lines.append(
            f"| {s.concurrency} | {s.requests} | {s.errors} | {lv.rows_per_s:,.0f} | {s.requests_per_s:,.0f} | {s.p50_ms:.2f} | "
            f"{s.p95_ms:.2f} | {s.p99_ms:.2f} | {cpu:.3f} | {f.requests_per_s:,.0f} | {f.p50_ms:.2f} | {lv.ratio:.0%} |"
        )
    if len(levels) > 1 and levels[0].rows_per_s:
        lines.append(f"throughput at concurrency {levels[-1].service.concurrency} = {levels[-1].rows_per_s / levels[0].rows_per_s:.1f}x concurrency {levels[0].service.concurrency}")
    text = "\n".join(lines)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = [
        {"concurrency": lv.service.concurrency, "requests": lv.service.requests, "errors": lv.service.errors, "rows_per_s": lv.rows_per_s,
         "requests_per_s": lv.service.requests_per_s, "p50_ms": lv.service.p50_ms, "p95_ms": lv.service.p95_ms, "p99_ms": lv.service.p99_ms,
         "service": asdict(lv.service), "floor": asdict(lv.floor), "ratio": lv.ratio}
        for lv in levels
    ]
    (out_dir / "inference-bench.json").write_text(json.dumps(document, indent=2))
    (out_dir / "inference-bench.md").write_text(text + "\n")
    plt = pyplot()
    if plt is None:
        return text + "\n(matplotlib not installed: no plot)"
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    x = [lv.service.concurrency for lv in levels]
    left.plot(x, [lv.service.requests_per_s for lv in levels], "-o", label="inference")
    left.plot(x, [lv.floor.requests_per_s for lv in levels], "--", label="floor (one hop)")
    left.set(xscale="log", xlabel="concurrency", ylabel="requests / s", title="throughput")
    left.legend()
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        right.plot(x, [getattr(lv.service, key) for lv in levels], "-o", label=key.replace("_ms", ""))
    right.set(xscale="log", xlabel="concurrency", ylabel="ms", title="latency")
    right.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "inference-bench.png", dpi=110)
    return text
