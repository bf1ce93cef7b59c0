"""`scoremesh bench --mesh`: closed-loop Score load through the router, against the floor measured
in the same run on the same machine (not a test; prints numbers).

For each candidate count and concurrency: Score/s, candidates/s, p50/p95/p99 and the CPU each
service spent per Score (from /proc, workers included). Then the same load against a bare
grpc.aio echo chain with the mesh's hops and payload sizes (benchmarks/floor.py), and the ratio.
Writes JSON, markdown and (with matplotlib) a plot.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from benchmarks.floor import METHOD, FloorChain, Hop
from benchmarks.plotting import pyplot
from benchmarks.load import Level, ProcessCpu, channels, closed_loop
from scoremesh.v1 import router_pb2, router_pb2_grpc
from services.router.converters import score_request_to_proto
from training.synthetic import sample_request
from mesh.tls import PLAINTEXT, Channels


@dataclass
class MeshLevel:
    candidates: int
    mesh: Level
    floor: Level

    @property
    def ratio(self) -> float:
        return self.mesh.requests_per_s / self.floor.requests_per_s if self.floor.requests_per_s else 0.0


def _floor_hops(request: router_pb2.ScoreRequest, response: router_pb2.ScoreResponse, feature_dim: int) -> list[Hop]:
    """The mesh's payload sizes: Score in and out at the front, Extract and ModelInfer behind it."""
    rows = len(request.candidates)
    members = len(response.candidates[0].member_scores) if response.candidates else 2
    extract_request = request.ByteSize() + 4
    matrix = rows * feature_dim * 4
    return [
        Hop(response.ByteSize(), ((1, extract_request), (2, matrix + 120))),
        Hop(matrix + 40),  # ExtractResponse: the matrix and its header
        Hop(rows * (2 + members) * 4 + 200),  # ModelInferResponse: three outputs and their metadata
    ]


async def _score_level(address: str, request, concurrency: int, seconds: float, cpu: ProcessCpu, bar: tqdm,
                       connect: Channels = PLAINTEXT) -> Level:
    opened = channels(address, min(concurrency, 4), connect)
    stubs = itertools.cycle([router_pb2_grpc.RouterStub(c) for c in opened])
    try:
        for _ in range(10):  # warm-up: connections, caches
            await next(stubs).Score(request, timeout=10)
        return await closed_loop(lambda: next(stubs).Score(request, timeout=10), concurrency, seconds, cpu, lambda: bar.update(1))
    finally:
        for channel in opened:
            await channel.close()


async def _floor_level(address: str, payload: bytes, concurrency: int, seconds: float, cpu: ProcessCpu, bar: tqdm) -> Level:
    opened = channels(address, min(concurrency, 4))
    calls = itertools.cycle([c.unary_unary(METHOD) for c in opened])
    try:
        for _ in range(10):
            await next(calls)(payload, timeout=10)
        return await closed_loop(lambda: next(calls)(payload, timeout=10), concurrency, seconds, cpu, lambda: bar.update(1))
    finally:
        for channel in opened:
            await channel.close()


def _median(levels: list[Level]) -> Level:
    """The level with the median throughput (its latencies and CPU come with it)."""
    return sorted(levels, key=lambda lv: lv.requests_per_s)[len(levels) // 2]


async def run(router_address: str, service_pids: dict[str, list[int]], feature_dim: int, candidate_counts: tuple[int, ...],
              concurrencies: tuple[int, ...], seconds: float, rounds: int = 3, connect: Channels = PLAINTEXT) -> list[MeshLevel]:
    """Every level `rounds` times, the mesh and its floor in turn each round, so drift of a
    shared or noisy machine hits both alike; the median round of each is reported."""
    cpu = ProcessCpu(service_pids)
    plans = []
    for n in candidate_counts:
        context, candidates = sample_request(n, "search", seed=n)
        request = score_request_to_proto("bench", context, candidates)
        async with connect.aio(router_address) as channel:
            response = await router_pb2_grpc.RouterStub(channel).Score(request, timeout=10)
        plans.append((n, request, _floor_hops(request, response, feature_dim)))
    chains = [FloorChain(hops) for _, _, hops in plans]
    samples: dict[tuple[int, int], tuple[list[Level], list[Level]]] = {}
    try:
        for chain in chains:
            chain.start()
        for round_index in range(rounds):
            for (n, request, _), chain in zip(plans, chains):
                floor_cpu = ProcessCpu({"floor": chain.pids})
                for concurrency in concurrencies:
                    mesh_samples, floor_samples = samples.setdefault((n, concurrency), ([], []))
                    label = f"round {round_index + 1}/{rounds}, {n:4d} candidates, concurrency {concurrency:3d}"
                    with tqdm(desc=f"mesh  {label}", unit="Score", leave=False, disable=None) as bar:
                        mesh_samples.append(await _score_level(router_address, request, concurrency, seconds, cpu, bar, connect))
                    with tqdm(desc=f"floor {label}", unit="call", leave=False, disable=None) as bar:
                        floor_samples.append(await _floor_level(chain.addresses[0], request.SerializeToString(), concurrency, seconds, floor_cpu, bar))
    finally:
        for chain in chains:
            chain.stop()
    return [MeshLevel(n, _median(m), _median(f)) for (n, _), (m, f) in samples.items()]


def report(levels: list[MeshLevel], out_dir: Path, machine: str) -> str:
    services = sorted({name for lv in levels for name in lv.mesh.cpu_ms_per_request})
    lines = [
        f"Router/Score through the mesh vs. the floor (bare grpc.aio echo chain, same hops and payloads), {machine}; median of the rounds",
        "| candidates | concurrency | Score/s | candidates/s | p50 ms | p95 ms | p99 ms | " + " | ".join(f"CPU ms {s}" for s in services)
        + " | CPU ms total | floor req/s | floor p50 ms | floor CPU ms | ratio |",
        "|" + "---:|" * (10 + len(services)),
    ]
    for lv in levels:
        m, f = lv.mesh, lv.floor
        cpu = [m.cpu_ms_per_request.get(s, 0.0) for s in services]
        lines.append(
            f"| {lv.candidates} | {m.concurrency} | {m.requests_per_s:,.0f} | {m.requests_per_s * lv.candidates:,.0f} | {m.p50_ms:.2f} | "
            f"{m.p95_ms:.2f} | {m.p99_ms:.2f} | " + " | ".join(f"{c:.3f}" for c in cpu)
            + f" | {sum(cpu):.3f} | {f.requests_per_s:,.0f} | {f.p50_ms:.2f} | {sum(f.cpu_ms_per_request.values()):.3f} | {lv.ratio:.0%} |"
        )
    errors = sum(lv.mesh.errors for lv in levels)
    lines.append(f"errors: {errors}")
    text = "\n".join(lines)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = [{"candidates": lv.candidates, "mesh": asdict(lv.mesh), "floor": asdict(lv.floor), "ratio": lv.ratio} for lv in levels]
    (out_dir / "mesh-bench.json").write_text(json.dumps({"machine": machine, "levels": document}, indent=2))
    (out_dir / "mesh-bench.md").write_text(text + "\n")
    plt = pyplot()
    if plt is None:
        return text + "\n(matplotlib not installed: no plot)"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for n in sorted({lv.candidates for lv in levels}):
        chosen = [lv for lv in levels if lv.candidates == n]
        x = [lv.mesh.concurrency for lv in chosen]
        left.plot(x, [lv.mesh.requests_per_s for lv in chosen], "-o", label=f"mesh, {n} candidates")
        left.plot(x, [lv.floor.requests_per_s for lv in chosen], "--", label=f"floor, {n} candidates")
        right.plot(x, [lv.mesh.p99_ms for lv in chosen], "-o", label=f"mesh p99, {n}")
        right.plot(x, [lv.mesh.p50_ms for lv in chosen], "-", label=f"mesh p50, {n}")
    left.set(xscale="log", xlabel="concurrency", ylabel="requests / s", title="throughput")
    right.set(xscale="log", yscale="log", xlabel="concurrency", ylabel="ms", title="latency")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "mesh-bench.png", dpi=110)
    return text
