"""Closed-loop load and the CPU it costs, shared by every benchmark.

`closed_loop` runs `concurrency` callers that each send the next request as soon as the previous
answer arrives, for a fixed time. `ProcessCpu` reads the CPU time (user + system) of processes
and all their descendants (a service's worker processes) from /proc, so a level's CPU per
request is measured per service, not guessed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from mesh.tls import PLAINTEXT, Channels

_TICKS = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                stack += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


class ProcessCpu:
    """CPU seconds used by groups of processes (each with its descendants) since `start`."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(_cpu_seconds(p) for pid in pids for p in _descendants(pid)) for name, pids in self.groups.items()}

    def start(self) -> None:
        self._start = self._now()

    def used(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self._start.get(name, 0.0) for name in now}


@dataclass
class Level:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_ms_per_request: dict[str, float]


async def closed_loop(call: Callable[[], Awaitable[object]], concurrency: int, seconds: float, cpu: ProcessCpu | None = None,
                      on_answer: Callable[[], None] | None = None) -> Level:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                await call()
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
            if on_answer is not None:
                on_answer()

    if cpu is not None:
        cpu.start()
    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    used = cpu.used() if cpu is not None else {}
    n = len(latencies)
    p50, p95, p99 = (np.percentile(latencies, [50, 95, 99]) * 1000) if latencies else (0.0, 0.0, 0.0)
    return Level(concurrency, n, errors, elapsed, n / elapsed, float(p50), float(p95), float(p99),
                 {name: (seconds_used * 1000 / n if n else 0.0) for name, seconds_used in used.items()})


def channels(address: str, count: int, connect: Channels = PLAINTEXT) -> list[grpc.aio.Channel]:
    """`count` channels to one address, each with its own connection (a service running several
    worker processes on one port gets load on each of them); TLS when `connect` says so."""
    return [connect.aio(address, [("grpc.use_local_subchannel_pool", 1)]) for _ in range(count)]
