"""Telemetry kept as mergeable aggregates over time buckets: per (model, version) and bucket of
`bucket_s` seconds, the request and error counts, the count slower than the latency objective,
and a DDSketch of latencies (1% relative accuracy). A window's view merges the buckets it
covers, so memory grows with keys x retention / bucket_s, never with traffic. No gRPC here.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ddsketch import DDSketch

RELATIVE_ACCURACY = 0.01
# Statuses that spend the error budget: the mesh failed the caller. A caller's own mistake
# (INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED, CANCELLED, ...) does not.
SERVER_FAULTS = frozenset(("UNKNOWN", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "UNIMPLEMENTED", "INTERNAL",
                           "UNAVAILABLE", "DATA_LOSS"))


@dataclass(frozen=True)
class Record:
    model_name: str
    status: str
    latency_ms: float
    timestamp: float
    model_version: str = ""
    candidates: int = 0
    inference_ms: float = 0.0
    """The model's own hop (the router's call to inference), 0 when unknown."""
    route: str = ""
    split_arm: str = ""
    service: str = "router"
    """router: a Score end to end; inference: one ModelInfer inside a replica."""
    instance_id: str = ""
    """The reporting instance (inference replicas say which); on a router's record, the
    inference replica that answered (the router does not compare itself with other routers)."""
    replica_ms: float = 0.0
    """On a router's record: the answering replica's own latency as the router saw it; the
    inference hop's latency when known (retries and hedging delays are not the version's)."""
    outrun: bool = False
    """On a router's record: a hedge to another replica answered before this one."""
    stalled: bool = False
    """Not a Score but an event: a router's balancer ejected `instance_id` as stalled."""


@dataclass
class Bucket:
    start: float
    requests: int = 0
    errors: int = 0
    """Requests that failed by the mesh's fault (SERVER_FAULTS)."""
    slow: int = 0
    """Requests slower than the latency objective's threshold."""
    outrun: int = 0
    """Router records whose replica a hedge to another replica beat."""
    latencies: DDSketch = field(default_factory=lambda: DDSketch(relative_accuracy=RELATIVE_ACCURACY))
    inference_latencies: DDSketch = field(default_factory=lambda: DDSketch(relative_accuracy=RELATIVE_ACCURACY))
    """The inference hop alone: what a model version changes (canary comparison)."""


@dataclass(frozen=True)
class WindowView:
    requests: int
    errors: int
    slow: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    window_s: float
    inference_p50_ms: float = 0.0
    inference_p99_ms: float = 0.0
    outrun: int = 0

    @property
    def outrun_share(self) -> float:
        return self.outrun / self.requests if self.requests else 0.0

    @property
    def availability(self) -> float:
        return 1.0 - self.errors / self.requests if self.requests else 1.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.window_s if self.window_s else 0.0


class TelemetryWindows:
    """Buckets per (reporting service, model, version, route, split arm, instance — for the
    router's records, the inference replica that answered); records older than `retention_s`
    fall off."""

    def __init__(self, bucket_s: float = 10.0, retention_s: float = 3 * 86400.0, slow_threshold_ms: float = 100.0,
                 clock=time.time) -> None:
        self.bucket_s = bucket_s
        self.retention_s = retention_s
        self.slow_threshold_ms = slow_threshold_ms
        self.clock = clock
        self.buckets: dict[tuple[str, str, str, str, str, str], deque[Bucket]] = {}
        self.total = 0
        self.stall_events: deque[tuple[float, str]] = deque(maxlen=10_000)
        """(time, instance) of every stall ejection routers reported, oldest first."""

    def keys(self) -> list[tuple[str, str, str, str, str, str]]:
        """Every series' key (a snapshot, safe to read from another thread)."""
        return list(self.buckets)

    def add(self, record: Record) -> None:
        if record.stalled:  # an event, no request: kept apart from every view of requests
            self.stall_events.append((record.timestamp, record.instance_id))
            return
        key = (record.service, record.model_name, record.model_version, record.route, record.split_arm, record.instance_id)
        series = self.buckets.setdefault(key, deque())
        start = math.floor(record.timestamp / self.bucket_s) * self.bucket_s
        if start + self.bucket_s < self.clock() - self.retention_s:
            return  # past the retention already
        bucket = next((b for b in reversed(series) if b.start == start), None)
        if bucket is None:
            bucket = Bucket(start)
            series.append(bucket)
            if len(series) > 1 and series[-2].start > start:  # late arrival: keep the deque ordered
                ordered = sorted(series, key=lambda b: b.start)
                series.clear()
                series.extend(ordered)
        bucket.requests += 1
        bucket.errors += record.status in SERVER_FAULTS
        bucket.slow += record.latency_ms > self.slow_threshold_ms
        bucket.outrun += record.outrun
        bucket.latencies.add(max(record.latency_ms, 1e-3))
        hop_ms = record.replica_ms or record.inference_ms
        if hop_ms > 0:
            bucket.inference_latencies.add(hop_ms)
        self.total += 1
        horizon = self.clock() - self.retention_s
        while series and series[0].start + self.bucket_s < horizon:
            series.popleft()

    def stalls(self, window_s: float, now: float | None = None,
               excused: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> dict[str, int]:
        """instance -> the stall ejections routers reported of it in the last `window_s` seconds,
        less those within one of its `excused` (start, end) spans."""
        since = (self.clock() if now is None else now) - window_s
        counts: dict[str, int] = {}
        for timestamp, instance in list(self.stall_events):
            if timestamp >= since and not any(start <= timestamp <= end for start, end in (excused or {}).get(instance, ())):
                counts[instance] = counts.get(instance, 0) + 1
        return counts

    def view(self, window_s: float, model_name: str = "", model_version: str = "", now: float | None = None,
             route: str = "", split_arm: str = "", service: str = "router", instance_id: str = "") -> WindowView:
        """The merged aggregates of the last `window_s` seconds (whole buckets that overlap it),
        of one model, version, route and split arm, or of all of those left empty, as `service`
        reported them (the router's Scores by default)."""
        now = self.clock() if now is None else now
        since = now - window_s
        requests = errors = slow = outrun = 0
        merged = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
        hop = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
        # Snapshots (each one C-level copy under the GIL): the alert rules read from a thread
        # while Report adds on the event loop.
        for (key_service, name, version, key_route, key_arm, key_instance), series in list(self.buckets.items()):
            if (key_service != service or (model_name and name != model_name) or (model_version and version != model_version)
                    or (route and key_route != route) or (split_arm and key_arm != split_arm)
                    or (instance_id and key_instance != instance_id)):
                continue
            for bucket in reversed(list(series)):
                if bucket.start + self.bucket_s <= since:
                    break
                if bucket.start > now:
                    continue
                requests += bucket.requests
                errors += bucket.errors
                slow += bucket.slow
                outrun += bucket.outrun
                merged.merge(bucket.latencies)
                hop.merge(bucket.inference_latencies)
        if not requests:
            return WindowView(0, 0, 0, 0.0, 0.0, 0.0, window_s)
        p50, p95, p99 = (float(merged.get_quantile_value(q)) for q in (0.5, 0.95, 0.99))
        hop_p50, hop_p99 = (float(hop.get_quantile_value(q)) if hop.count else 0.0 for q in (0.5, 0.99))
        return WindowView(requests, errors, slow, p50, p95, p99, window_s, hop_p50, hop_p99, outrun)
