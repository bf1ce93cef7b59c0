"""Admission control: overload is answered at once, never queued without bound (no gRPC here).

- A token bucket per route (its `admission` in the routing configuration) and per caller (the
  `x-scoremesh-caller` metadata; `admission.per_caller_*`), refilled continuously; an empty
  bucket refuses with RESOURCE_EXHAUSTED and a retry-after hint (when a token will be there).
- At most `max_in_flight` Scores at once in this router process: beyond, refused at once too,
  so the admitted ones keep their latency.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from domain.errors import ResourceExhausted, quote
from services.router.routing_config import Admission

MAX_CALLERS = 10_000  # buckets kept for distinct callers (least recently seen go first)


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, max(burst, 1.0), clock
        self.tokens = self.burst
        self.updated = clock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class AdmissionControl:
    def __init__(self, max_in_flight: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_in_flight = max_in_flight
        self.clock = clock
        self.in_flight = 0
        self._routes: dict[tuple[str, str], TokenBucket] = {}
        self._callers: OrderedDict[str, TokenBucket] = OrderedDict()

    def admit(self, config_version: str, route: str, limit: Admission, caller: str, per_caller: Admission) -> None:
        """Raise ResourceExhausted (with a retry-after) when the request must not go in."""
        if self.in_flight >= self.max_in_flight:
            raise _refused(f"router busy: {self.in_flight} Scores in flight (limit {self.max_in_flight})", 0.01, "IN_FLIGHT")
        if limit.rate > 0:
            key = (config_version, route)  # a reload with other limits starts fresh buckets
            bucket = self._routes.get(key)
            if bucket is None:
                bucket = self._routes[key] = TokenBucket(limit.rate, limit.burst, self.clock)
            wait = bucket.take()
            if wait:
                raise _refused(f"route {route}: over its admission rate ({limit.rate:g}/s)", wait, "ROUTE_RATE")
        if per_caller.rate > 0:
            bucket = self._callers.get(caller)
            if bucket is None:
                bucket = self._callers[caller] = TokenBucket(per_caller.rate, per_caller.burst, self.clock)
                if len(self._callers) > MAX_CALLERS:
                    self._callers.popitem(last=False)
            else:
                self._callers.move_to_end(caller)
            wait = bucket.take()
            if wait:
                raise _refused(f"caller {quote(caller or 'anonymous')}: over its admission rate ({per_caller.rate:g}/s)", wait, "CALLER_RATE")


def _refused(message: str, retry_after_s: float, reason: str) -> ResourceExhausted:
    error = ResourceExhausted(f"{message}; retry after {retry_after_s * 1000:.0f} ms", reason="OVERLOADED",
                              info={"limit": reason, "retry_after_ms": f"{retry_after_s * 1000:.0f}"})
    error.retry_after_s = retry_after_s
    return error
