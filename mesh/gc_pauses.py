"""Garbage-collector pauses off the request path.

A service imports torch, grpc, opentelemetry and pydantic before it serves: hundreds of
thousands of long-lived objects that CPython's full (generation 2) collection walks every time
it runs. Under load that walk stalled an inference process for 100-120 ms about 20 s after
start-up (measured on the 2-core CI machine), and every request in flight waited for it.
`freeze_startup_objects` moves what exists once a service is set up into the permanent
generation (gc.freeze, the approach CPython documents for pre-fork servers), so later
collections only walk what serving allocates. The histogram makes any remaining pause visible
(prometheus_client's default collector counts collections but does not time them)."""

from __future__ import annotations

import gc
import time

from prometheus_client import Histogram

GC_PAUSE = Histogram(
    "scoremesh_gc_pause_seconds", "Time the garbage collector stopped this process, by generation",
    ["generation"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
_started: list[float] = []


def _time_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
    elif _started:
        GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - _started[0])


def freeze_startup_objects() -> None:
    """Collect once, then exclude every surviving object from later collections; time them."""
    gc.collect()
    gc.freeze()
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)


def thaw() -> None:
    """Give frozen objects back to the collector before exit, so finalizers run (extension
    modules such as triton's report the frozen ones as leaks otherwise)."""
    gc.unfreeze()
