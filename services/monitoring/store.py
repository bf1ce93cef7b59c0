"""Recent telemetry records and the SLO view over them. No gRPC here."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Record:
    model_name: str
    status: str
    latency_ms: float
    timestamp: float


@dataclass(frozen=True)
class SloView:
    requests: int
    availability: float
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests_per_second: float


class TelemetryStore:
    """The newest `capacity` records (older ones fall off) plus a running total."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.records: deque[Record] = deque(maxlen=capacity)
        self.total = 0

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.total += 1

    def slo(self, window_s: float = 300.0, model_name: str = "", now: float | None = None) -> SloView:
        now = time.time() if now is None else now
        since = now - window_s
        chosen = [r for r in self.records if r.timestamp >= since and (not model_name or r.model_name == model_name)]
        if not chosen:
            return SloView(0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        latencies = np.array([r.latency_ms for r in chosen])
        errors = sum(r.status != "OK" for r in chosen)
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
        return SloView(
            requests=len(chosen),
            availability=1.0 - errors / len(chosen),
            error_rate=errors / len(chosen),
            p50_ms=float(p50),
            p95_ms=float(p95),
            p99_ms=float(p99),
            requests_per_second=len(chosen) / window_s,
        )
