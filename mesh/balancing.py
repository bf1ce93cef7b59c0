"""How a client picks an instance and when it gives up on one: the decisions of the mesh client
as plain code (no gRPC), tested on their own.

- Strategies (shared/REFERENCE.md): round_robin, random, weighted_random, least_loaded,
  fastest (EWMA latency), performance (resp x load x err x weight over recent windows) and
  p2c_ewma, the default: two random healthy instances, the lower peak-EWMA latency x (in flight
  + 1) wins (Linkerd/Finagle: a latency above the average is taken at once, lower ones decay with
  a 10 s time constant; 30 ms before any sample). A fast RESOURCE_EXHAUSTED counts as a 1 s
  answer (a latency penalty), so an overloaded instance does not attract traffic by failing
  fast. A first attempt outrun by a hedge sent later took at least as long as it was out: that
  time is a latency sample (a lower bound, never a made-up penalty). A hedge made moot because
  the first attempt answered says nothing of its instance. An instance outrun three times in a
  row that has been tried for `stall_s` without answering is stalled (a stopped process, a dead
  link) and is ejected like a failing one. Time it was not tried does not count: an instance
  left idle (its peer was preferred) whose first calls back are outrun was not stalled.
- Outlier ejection (Envoy's defaults): 5 consecutive failures eject an instance for 30 s x the
  number of its ejections, at most 300 s; at most 10% of instances are ejected (at least one
  may be).
- Circuit breaker per target service: closed -> open when, over the last `window_s`, at least
  `min_requests` calls failed at `failure_ratio` or more; open refuses at once for `open_s`;
  then half-open lets `probes` calls through: all succeed -> closed, one fails -> open again.
- Retry budget (Linkerd): retries add at most `ratio` of the requests of the last `window_s`
  plus `per_second` per second of that window.

Written here rather than taken from a library: the balancing and budget rules are the mesh's
own (no maintained Python library implements p2c over peak EWMA or Linkerd's budget); the
backoff between retries is tenacity's (mesh/client.py).
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

STRATEGIES = ("p2c_ewma", "round_robin", "random", "weighted_random", "least_loaded", "fastest", "performance")
DEFAULT_RTT_S = 0.030
DECAY_S = 10.0

Clock = Callable[[], float]


@dataclass
class Endpoint:
    """What a client knows of one instance."""

    address: str
    weight: float = 1.0
    in_flight: int = 0
    peak_ewma_s: float = DEFAULT_RTT_S
    ewma_s: float = DEFAULT_RTT_S
    sampled: bool = False
    last_sample: float = 0.0
    requests: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    outrun_streak: int = 0
    """First attempts outrun by a hedge since it last answered (or was left idle: `trying_since`)."""
    trying_since: float = math.inf
    """When the first attempt since its last answer began (inf: none since); an attempt after a
    pause of more than `stall_s` with nothing in flight starts the count again."""
    last_outcome: float = 0.0
    """When an attempt on it last ended, however it ended (clock time)."""
    ejections: int = 0
    ejected_until: float = 0.0
    latencies: deque = field(default_factory=lambda: deque(maxlen=50))
    loads: deque = field(default_factory=lambda: deque(maxlen=100))

    def observe(self, seconds: float, now: float) -> None:
        """A latency sample: peak EWMA (jump up at once, decay with DECAY_S) and plain EWMA."""
        if not self.sampled:
            self.peak_ewma_s = self.ewma_s = seconds
            self.sampled = True
        else:
            decay = math.exp(-max(0.0, now - self.last_sample) / DECAY_S)
            self.peak_ewma_s = seconds if seconds > self.peak_ewma_s else self.peak_ewma_s * decay + seconds * (1 - decay)
            self.ewma_s = 0.8 * self.ewma_s + 0.2 * seconds
        self.last_sample = now
        self.latencies.append(seconds)

    def cost(self, now: float, unsampled_s: float = DEFAULT_RTT_S) -> float:
        """p2c's cost: the peak EWMA, decayed to now, times the queue this call would join. An
        instance not sampled yet counts as `unsampled_s` (its peers' average: a new replica is
        neither shunned nor flooded)."""
        latency = self.peak_ewma_s * math.exp(-max(0.0, now - self.last_sample) / DECAY_S) if self.sampled else unsampled_s
        return max(latency, 1e-6) * (self.in_flight + 1)

    def performance(self, max_concurrent: int) -> float:
        """shared/REFERENCE.md: resp x load x err x weight; each factor 1.0 without data."""
        resp = 1.0 / (1.0 + (sum(self.latencies) / len(self.latencies)) * 1000 / 100) if self.latencies else 1.0
        load = 1.0 / (1.0 + (sum(self.loads) / len(self.loads)) / max_concurrent) if self.loads else 1.0
        err = 1.0 - self.errors / self.requests if self.requests else 1.0
        return resp * load * err * self.weight


class Balancer:
    """Picks among endpoints with one strategy; ejects outliers."""

    def __init__(self, strategy: str = "p2c_ewma", rng: random.Random | None = None, clock: Clock = time.monotonic,
                 consecutive_failures: int = 5, ejection_s: float = 30.0, max_ejection_s: float = 300.0,
                 max_ejected_share: float = 0.10, max_concurrent: int = 100, penalty_s: float = 1.0, stall_s: float = 1.0) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy: must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
        self.strategy = strategy
        self.rng = rng or random.Random()
        self.clock = clock
        self.consecutive_failures = consecutive_failures
        self.ejection_s = ejection_s
        self.max_ejection_s = max_ejection_s
        self.max_ejected_share = max_ejected_share
        self.max_concurrent = max_concurrent
        self.penalty_s = penalty_s
        self.stall_s = stall_s
        self.endpoints: dict[str, Endpoint] = {}
        self._next = 0
        self.on_eject: Callable[[str, float, str], None] | None = None
        """(address, seconds ejected, why: "stalled" or "failing")."""

    def sync(self, addresses: Sequence[str], weights: dict[str, float] | None = None) -> None:
        """The instances discovery says are healthy now; what is known of them is kept."""
        for address in addresses:
            endpoint = self.endpoints.get(address)
            if endpoint is None:
                endpoint = self.endpoints[address] = Endpoint(address)
            endpoint.weight = (weights or {}).get(address, endpoint.weight)
        for gone in set(self.endpoints) - set(addresses):
            del self.endpoints[gone]

    def available(self, exclude: set[str] = frozenset(), among: set[str] | None = None) -> list[Endpoint]:
        now = self.clock()
        chosen = [e for e in self.endpoints.values() if e.address not in exclude and (among is None or e.address in among)]
        if among is not None and not chosen:  # none of the preferred: any other will do
            chosen = [e for e in self.endpoints.values() if e.address not in exclude]
        healthy = [e for e in chosen if e.ejected_until <= now]
        return healthy or chosen  # all ejected: better a suspect instance than none

    def pick(self, exclude: set[str] = frozenset(), among: set[str] | None = None) -> Endpoint | None:
        candidates = self.available(exclude, among)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        strategy, now = self.strategy, self.clock()
        if strategy == "round_robin":
            self._next += 1
            return candidates[self._next % len(candidates)]
        if strategy == "random":
            return self.rng.choice(candidates)
        if strategy == "weighted_random":
            total = sum(max(0.0, e.weight) for e in candidates)
            if total <= 0:
                return self.rng.choice(candidates)
            r = self.rng.uniform(0, total)  # cumulative weights, r ~ U(0, sum w)
            for endpoint in candidates:
                r -= max(0.0, endpoint.weight)
                if r <= 0:
                    return endpoint
            return candidates[-1]
        if strategy == "least_loaded":
            return min(candidates, key=lambda e: (e.in_flight, self.rng.random()))
        if strategy == "fastest":
            return min(candidates, key=lambda e: (e.ewma_s, self.rng.random()))
        if strategy == "performance":
            return max(candidates, key=lambda e: (e.performance(self.max_concurrent), self.rng.random()))
        a, b = self.rng.sample(candidates, 2)  # p2c_ewma
        sampled = [e.peak_ewma_s for e in candidates if e.sampled]
        unsampled = sum(sampled) / len(sampled) if sampled else DEFAULT_RTT_S
        return a if a.cost(now, unsampled) <= b.cost(now, unsampled) else b

    def started(self, endpoint: Endpoint) -> None:
        # The stall clock runs while the instance is tried and does not answer. Counted from its
        # last answer instead (or its joining), an instance idle for minutes read as stalled on
        # its first three calls back if a hedge beat them (a cold replica on a busy machine),
        # and was ejected for 30 s while it was the faster one (CI, 2026-11-23).
        now = self.clock()
        paused = endpoint.in_flight == 0 and now - endpoint.last_outcome > self.stall_s
        if endpoint.trying_since == math.inf or paused:
            endpoint.trying_since, endpoint.outrun_streak = now, 0
        endpoint.in_flight += 1
        endpoint.loads.append(endpoint.in_flight)

    def finished(self, endpoint: Endpoint, seconds: float, outcome: str) -> None:
        """outcome: "ok", "overloaded" (fast RESOURCE_EXHAUSTED: counts as slow), "failed"
        (unavailable, timed out, internal: counts toward ejection), "outrun" (a first attempt
        cancelled because a later hedge to another instance answered first: `seconds` is a lower
        bound of its latency), "superseded" (a hedge cancelled because the first attempt
        answered) or "client" (the caller's error, or a cancelled call). The last two say nothing
        of the instance: a healthy instance that only gets hedges would otherwise look stalled."""
        now = self.clock()
        endpoint.in_flight = max(0, endpoint.in_flight - 1)
        endpoint.last_outcome = now
        if outcome == "superseded":
            return
        endpoint.requests += 1
        if outcome == "outrun":
            if seconds > endpoint.peak_ewma_s or not endpoint.sampled:
                endpoint.observe(seconds, now)
            endpoint.outrun_streak += 1
            tried_for = now - endpoint.trying_since
            if endpoint.outrun_streak >= 3 and tried_for >= self.stall_s and endpoint.ejected_until <= now:
                self._eject(endpoint, now, "stalled")
            return
        # Answered: attempts still out began before it, so the next count starts now.
        endpoint.trying_since = now if endpoint.in_flight else math.inf
        endpoint.outrun_streak = 0
        if outcome == "overloaded":
            endpoint.observe(max(seconds, self.penalty_s, 2 * endpoint.peak_ewma_s), now)
        else:
            endpoint.observe(seconds, now)
        if outcome == "failed":
            endpoint.errors += 1
            endpoint.consecutive_failures += 1
            if endpoint.consecutive_failures >= self.consecutive_failures and endpoint.ejected_until <= now:
                self._eject(endpoint, now, "failing")
        else:
            endpoint.consecutive_failures = 0

    def _eject(self, endpoint: Endpoint, now: float, why: str) -> None:
        ejected = sum(1 for e in self.endpoints.values() if e.ejected_until > now)
        allowed = max(1, math.floor(self.max_ejected_share * len(self.endpoints)))
        if ejected >= allowed:
            return
        endpoint.ejections += 1
        seconds = min(self.ejection_s * endpoint.ejections, self.max_ejection_s)
        endpoint.ejected_until = now + seconds
        endpoint.consecutive_failures = 0
        if self.on_eject is not None:
            self.on_eject(endpoint.address, seconds, why)


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(self, window_s: float = 10.0, min_requests: int = 20, failure_ratio: float = 0.5, open_s: float = 5.0,
                 probes: int = 3, clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        self.min_requests = min_requests
        self.failure_ratio = failure_ratio
        self.open_s = open_s
        self.probes = probes
        self.clock = clock
        self.state = CLOSED
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures = 0  # failures among _outcomes, kept as they come and go (no rescans)
        self._opened_at = 0.0
        self._probes_out = 0
        self._probe_successes = 0
        self.on_change: Callable[[str], None] | None = None

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def allow(self) -> bool:
        """May a call go out now? (In half-open, a probe slot is taken when it may.)"""
        now = self.clock()
        if self.state == OPEN and now - self._opened_at >= self.open_s:
            self._set(HALF_OPEN)
            self._probes_out = self._probe_successes = 0
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and self._probes_out < self.probes:
            self._probes_out += 1
            return True
        return False

    def record(self, success: bool) -> None:
        now = self.clock()
        if self.state == HALF_OPEN:
            if not success:
                self._open(now)
                return
            self._probe_successes += 1
            if self._probe_successes >= self.probes:
                self._set(CLOSED)
                self._outcomes.clear()
                self._failures = 0
            return
        self._outcomes.append((now, success))
        self._failures += not success
        while self._outcomes and self._outcomes[0][0] < now - self.window_s:
            self._failures -= not self._outcomes.popleft()[1]
        if self.state == CLOSED and len(self._outcomes) >= self.min_requests and self._failures >= self.failure_ratio * len(self._outcomes):
            self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._outcomes.clear()
        self._failures = 0
        self._set(OPEN)


class RetryBudget:
    """Retries allowed: `ratio` x requests of the last `window_s` + `per_second` x window_s."""

    def __init__(self, ratio: float = 0.2, per_second: float = 10.0, window_s: float = 10.0, clock: Clock = time.monotonic) -> None:
        self.ratio = ratio
        self.per_second = per_second
        self.window_s = window_s
        self.clock = clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _trim(self, now: float) -> None:
        for events in (self._requests, self._retries):
            while events and events[0] < now - self.window_s:
                events.popleft()

    def request(self) -> None:
        self._requests.append(self.clock())

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when it is spent."""
        now = self.clock()
        self._trim(now)
        if len(self._retries) + 1 > self.ratio * len(self._requests) + self.per_second * self.window_s:
            return False
        self._retries.append(now)
        return True
