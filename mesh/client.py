"""The client side of the mesh: resolve a service, pick an instance, call it, and keep answering
when instances are slow, dead or overloaded.

Per target service: a balancer (mesh.balancing: p2c over peak-EWMA latency by default, outlier
ejection), a circuit breaker, a retry budget and a hedging budget. A call:
- goes to the instance the balancer picks (optionally only among `eligible` addresses, e.g. the
  replicas serving a model version, while any of them is up);
- carries the caller's deadline, less a little time kept for the reply, and its trace;
- is retried on another instance only for retryable failures (the instance is gone:
  UNAVAILABLE; it is overloaded: RESOURCE_EXHAUSTED while others exist), with jittered
  exponential backoff (tenacity), within the retry budget and the deadline — the one layer that
  retries, never stacked per stage;
- is hedged, when enabled, after the target's observed p95: a second attempt on another
  instance, the first answer wins and the other is cancelled (budgeted, The Tail at Scale);
- fails fast with UNAVAILABLE (reason CIRCUIT_OPEN) while the service's breaker is open.
Every decision is a Prometheus metric. Each address gets channels per worker, each its own
connection (a service with several workers on one port gets load on each of them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from prometheus_client import Counter, Gauge
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from domain.errors import DeadlineExceeded, UpstreamError
from mesh.balancing import OPEN, CircuitBreaker, Endpoint, RetryBudget, Balancer
from mesh.discovery import Instance, Registry
from mesh.status_details import error_info
from mesh.telemetry import Tracing
from mesh.tls import PLAINTEXT, Channels

log = logging.getLogger(__name__)

RESOLVE_TTL_S = 0.5
REPLY_RESERVE_S = 0.002  # of the caller's deadline, kept for the answer to travel back
STALL_FACTOR, STALL_MIN_S = 10.0, 0.1  # an attempt out this long (x the p95) is presumed stalled
FAILED_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
                          grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})

PICKS = Counter("scoremesh_client_picks_total", "Attempts sent to each instance, by kind: first, retry or hedge.",
                ["service", "address", "attempt"])
EJECTIONS = Counter("scoremesh_client_ejections_total", "Instances ejected as outliers.", ["service", "address"])
BREAKER = Gauge("scoremesh_client_breaker_open", "Circuit breaker state: 0 closed, 0.5 half-open, 1 open.", ["service"], multiprocess_mode="max")
RETRIES = Counter("scoremesh_client_retries_total", "Calls retried on another instance.", ["service", "method"])
HEDGES = Counter("scoremesh_client_hedges_total", "Hedged calls, by which attempt answered first.", ["service", "method", "winner"])
BUDGET_EXHAUSTED = Counter("scoremesh_client_budget_exhausted_total", "Retries or hedges refused by their budget.", ["service", "kind"])
REFUSED = Counter("scoremesh_client_breaker_refusals_total", "Calls refused at once because the circuit was open.", ["service"])


def remaining_timeout(context: grpc.aio.ServicerContext | None, default: float) -> float:
    """Seconds left before the incoming call's deadline (or `default` if it has none)."""
    if context is None:
        return default
    left = context.time_remaining()
    if left is None:
        return default
    if left <= 0:
        raise DeadlineExceeded("the request's deadline passed before a downstream call")
    return min(left, default)


@dataclass(frozen=True)
class ClientPolicy:
    strategy: str = "p2c_ewma"
    max_attempts: int = 3
    backoff_s: float = 0.005
    max_backoff_s: float = 0.1
    retry_budget_ratio: float = 0.2
    retry_budget_per_second: float = 10.0
    hedge: bool = False
    hedge_budget_ratio: float = 0.1
    hedge_min_delay_s: float = 0.002
    breaker_window_s: float = 10.0
    breaker_min_requests: int = 20
    breaker_failure_ratio: float = 0.5
    breaker_open_s: float = 5.0
    channels_per_address: int = 2


def policy_from(settings) -> ClientPolicy:
    """The client policy a service's settings (mesh.config.MeshSettings) ask for."""
    return ClientPolicy(
        strategy=settings.balancing, max_attempts=settings.retry_max_attempts, retry_budget_ratio=settings.retry_budget_ratio,
        retry_budget_per_second=settings.retry_budget_per_second, hedge=settings.hedging, hedge_budget_ratio=settings.hedge_budget_ratio,
        breaker_min_requests=settings.breaker_min_requests, breaker_failure_ratio=settings.breaker_failure_ratio,
        breaker_open_s=settings.breaker_open_s,
    )


@dataclass(frozen=True)
class Answer:
    """A call's response and where it came from: the instance that answered and how long that
    attempt took (its own latency, not the retries or the hedging delay before it); and the
    instance the call went to first with how long it made the caller wait — its latency, or,
    when a hedge to another instance answered first, the time until then (a lower bound).
    Instances are compared by the first attempts: the balancer chose them before any outcome,
    whereas the answers of a stalled instance are only the quick ones that beat the hedge."""

    response: Any
    address: str
    instance_id: str
    seconds: float
    first_instance_id: str = ""
    first_seconds: float = 0.0
    first_outrun: bool = False
    """The first attempt was beaten by a hedge to another instance (its time is a lower bound)."""

    def __post_init__(self) -> None:
        if not self.first_instance_id:
            object.__setattr__(self, "first_instance_id", self.instance_id)
            object.__setattr__(self, "first_seconds", self.seconds)


class _AttemptFailed(Exception):
    def __init__(self, error: grpc.aio.AioRpcError, address: str) -> None:
        super().__init__(error.code().name)
        self.error = error
        self.address = address


def _outcome(code: grpc.StatusCode) -> str:
    if code in FAILED_CODES:
        return "failed"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "overloaded"
    return "client"


class ServiceClient:
    """Calls to one service; `stub_factory` builds a generated stub from a channel, `full_name`
    is the service's package.Service (client spans are named /full_name/Method)."""

    def __init__(
        self,
        registry: Registry,
        service: str,
        stub_factory: Callable[[grpc.aio.Channel], Any],
        full_name: str = "",
        max_message_bytes: int = 4 * 1024 * 1024,
        tracing: Tracing | None = None,
        policy: ClientPolicy = ClientPolicy(),
        channels: Channels = PLAINTEXT,
    ) -> None:
        self.registry = registry
        self.service = service
        self.stub_factory = stub_factory
        self.full_name = full_name or service
        self.max_message_bytes = max_message_bytes
        self.tracing = tracing
        self.policy = policy
        self.channels = channels
        self.balancer = Balancer(policy.strategy)
        self.balancer.on_eject = self._ejected
        self.on_stall: Callable[[str], None] | None = None
        """(instance id): the balancer ejected that instance as stalled (routers report it)."""
        self.breaker = CircuitBreaker(policy.breaker_window_s, policy.breaker_min_requests, policy.breaker_failure_ratio, policy.breaker_open_s)
        self.breaker.on_change = lambda state: BREAKER.labels(service).set({"closed": 0.0, "half_open": 0.5, "open": 1.0}[state])
        self.retry_budget = RetryBudget(policy.retry_budget_ratio, policy.retry_budget_per_second)
        self.hedge_budget = RetryBudget(policy.hedge_budget_ratio, 5.0)
        self._latencies: deque[float] = deque(maxlen=256)
        self._p95_s = float("inf")
        self._since_p95 = 0
        self._channels: dict[str, tuple[list[grpc.aio.Channel], Any]] = {}
        self._resolved: list[Instance] = []
        self._resolved_at = 0.0
        self._generation = 0  # bumped by invalidate
        self._resolved_generation = -1  # the generation the list in hand was read in
        self._refreshing: asyncio.Future | None = None
        self._refreshing_generation = -1
        self._picks: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ discovery
    async def instances(self) -> list[Instance]:
        """The service's instances. One registry read at a time (a read under load used to be
        started by every call that found the list expired: one per waiting request); an expired
        list is still answered while its refresh runs in the background. After `invalidate`,
        callers wait for a read that started after it."""
        if self._resolved_generation < self._generation:
            while self._resolved_generation < self._generation:
                await asyncio.shield(self._refresh())
        elif time.monotonic() - self._resolved_at > RESOLVE_TTL_S and self._refreshing is None:
            self._refresh().add_done_callback(self._background_refresh_done)
        return self._resolved

    def _refresh(self) -> asyncio.Future:
        """The registry read in flight, or a new one when there is none or it started before
        the last `invalidate`."""
        if self._refreshing is None or self._refreshing_generation < self._generation:
            self._refreshing_generation = self._generation
            self._refreshing = asyncio.ensure_future(self._resolve(self._generation))
        return self._refreshing

    async def _resolve(self, generation: int) -> None:
        try:
            resolved = await asyncio.to_thread(self.registry.resolve, self.service)
        finally:
            if self._refreshing_generation == generation:
                self._refreshing = None
        self._resolved = resolved
        self._resolved_at = time.monotonic()
        self._resolved_generation = max(self._resolved_generation, generation)
        weights = {i.address: float(i.meta.get("weight", 1.0) or 1.0) for i in resolved}
        self.balancer.sync([i.address for i in resolved], weights)

    def _background_refresh_done(self, refresh: asyncio.Future) -> None:
        if not refresh.cancelled() and refresh.exception() is not None:
            # The list read before still answers; the next expiry tries again.
            log.warning("resolving %s failed; keeping the last list: %s", self.service, refresh.exception())

    def invalidate(self) -> None:
        """Forget the cached resolution; the next call asks the registry again."""
        self._generation += 1

    def stub(self, address: str, workers: int = 1) -> Any:
        """A stub for one address (the next of its channels, round-robin); an instance with
        several workers gets that many times more channels."""
        entry = self._channels.get(address)
        if entry is None:
            options = [
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.use_local_subchannel_pool", 1),
            ]
            count = self.policy.channels_per_address * max(1, workers)
            channels = [self.channels.aio(address, options) for _ in range(count)]
            entry = self._channels[address] = (channels, itertools.cycle([self.stub_factory(c) for c in channels]))
        return next(entry[1])

    # ------------------------------------------------------------------ calls
    async def call(self, method: str, request: Any, timeout: float, *, eligible: Collection[str] | None = None,
                   attempts: int | None = None, hedge: bool | None = None, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
        """`stub.<method>(request)` under the policies above; UpstreamError when it fails."""
        answer = await self.call_answered(method, request, timeout, eligible=eligible, attempts=attempts, hedge=hedge, metadata=metadata)
        return answer.response

    async def call_answered(self, method: str, request: Any, timeout: float, *, eligible: Collection[str] | None = None,
                            attempts: int | None = None, hedge: bool | None = None,
                            metadata: tuple[tuple[str, str], ...] = ()) -> Answer:
        """As `call`, with the instance that answered (callers compare instances by it)."""
        deadline = time.monotonic() + timeout
        if not self.breaker.allow():
            REFUSED.labels(self.service).inc()
            raise UpstreamError(self.service, "UNAVAILABLE", f"circuit open after repeated failures of {self.service}", "CIRCUIT_OPEN")
        await self.instances()
        self.retry_budget.request()
        self.hedge_budget.request()
        tried: set[str] = set()
        among = set(eligible) if eligible is not None else None
        hedging = self.policy.hedge if hedge is None else hedge
        total = attempts or self.policy.max_attempts
        try:
            return await self._attempt(method, request, deadline, tried, among, hedging, metadata)  # the common case: no tenacity set-up
        except _AttemptFailed as failure:
            if total <= 1 or not self._may_retry(failure, deadline, method):
                raise self._upstream(failure) from None
            last = failure
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(total - 1) | (lambda _: time.monotonic() >= deadline),
                wait=wait_random_exponential(multiplier=self.policy.backoff_s, max=self.policy.max_backoff_s),
                retry=retry_if_exception(lambda error: isinstance(error, _AttemptFailed) and self._may_retry(error, deadline, method)),
                reraise=True,
            ):
                with attempt:
                    return await self._attempt(method, request, deadline, tried, among, hedging, metadata)
        except _AttemptFailed as failure:
            last = failure
        raise self._upstream(last)

    def _upstream(self, failure: _AttemptFailed) -> UpstreamError:
        error = failure.error
        return UpstreamError(self.service, error.code().name, error.details() or "", *error_info(error))

    def _may_retry(self, failure: _AttemptFailed, deadline: float, method: str) -> bool:
        code = failure.error.code()
        others = len(self.balancer.endpoints) > 1
        if code == grpc.StatusCode.UNAVAILABLE:
            self.invalidate()  # resolve again: the instance is probably gone
        elif not (code == grpc.StatusCode.RESOURCE_EXHAUSTED and others):
            return False
        if deadline - time.monotonic() <= REPLY_RESERVE_S * 2:
            return False
        if not self.retry_budget.try_spend():
            BUDGET_EXHAUSTED.labels(self.service, "retry").inc()
            return False
        RETRIES.labels(self.service, method).inc()
        return True

    async def _attempt(self, method: str, request: Any, deadline: float, tried: set[str], among: set[str] | None, hedging: bool,
                       metadata: tuple = ()) -> Answer:
        endpoint = self.balancer.pick(exclude=tried, among=among)
        if endpoint is None and tried:
            endpoint = self.balancer.pick(among=among)  # every instance tried: the best one again
        if endpoint is None:
            raise UpstreamError(self.service, "UNAVAILABLE", "no healthy instance in the registry")
        kind = "retry" if tried else "first"
        tried.add(endpoint.address)
        if deadline - time.monotonic() <= REPLY_RESERVE_S:
            raise UpstreamError(self.service, "DEADLINE_EXCEEDED", "deadline passed")
        if not hedging or self._p95_s == float("inf"):
            return await self._one(endpoint, method, request, deadline, kind, extra_metadata=metadata)
        return await self._hedged(endpoint, method, request, deadline, tried, among, kind, metadata)

    async def _hedged(self, endpoint: Endpoint, method: str, request: Any, deadline: float, tried: set[str], among: set[str] | None,
                      kind: str, metadata: tuple = ()) -> Answer:
        cancelled: dict[asyncio.Future, str] = {}  # the loser of the race: "outrun" or "superseded"
        first_started = time.monotonic()
        first = asyncio.ensure_future(self._one(endpoint, method, request, deadline, kind, cancelled, metadata))
        attempts = [first]
        try:
            delay = max(self.policy.hedge_min_delay_s, self._p95_s)
            done, _ = await asyncio.wait({first}, timeout=min(delay, max(0.0, deadline - time.monotonic())))
            if done:
                return first.result()
            second_endpoint = self.balancer.pick(exclude=tried, among=among)
            if second_endpoint is None:
                return await first
            if not self.hedge_budget.try_spend():
                BUDGET_EXHAUSTED.labels(self.service, "hedge").inc()
                # No hedge now. An attempt still out after ten times the p95 is more likely dead than
                # slow (a stopped process): then a second attempt is a retry, from the retry budget.
                stall = max(STALL_FACTOR * self._p95_s, STALL_MIN_S) - delay
                done, _ = await asyncio.wait({first}, timeout=min(stall, max(0.0, deadline - time.monotonic())))
                if done or not self.retry_budget.try_spend():
                    return await first
                RETRIES.labels(self.service, method).inc()
            tried.add(second_endpoint.address)
            attempts.append(second := asyncio.ensure_future(self._one(second_endpoint, method, request, deadline, "hedge", cancelled, metadata)))
            pending = {first, second}
            try:
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        if task.exception() is None:
                            HEDGES.labels(self.service, method, "hedge" if task is second else "first").inc()
                            answer = task.result()
                            if task is second:
                                answer = dataclasses.replace(answer, first_instance_id=self._instance_id(endpoint.address),
                                                             first_seconds=time.monotonic() - first_started, first_outrun=True)
                            return answer
                return first.result()  # both failed: the first attempt's error
            finally:
                for task in pending:  # the loser is cancelled, never left running
                    cancelled[task] = "outrun" if task is first else "superseded"
                    task.cancel()
        finally:
            for task in attempts:
                if not task.done():  # this call was cancelled (its caller gave up): so are its attempts
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # a losing attempt's failure is seen here, not logged as never retrieved

    async def _one(self, endpoint: Endpoint, method: str, request: Any, deadline: float, kind: str = "first",
                   cancelled: dict | None = None, extra_metadata: tuple = ()) -> Answer:
        """One attempt on one instance. An attempt cancelled because the other of a hedged pair
        answered first (`cancelled` says which way it lost) is reported to the balancer as such,
        never as the service's failure (the breaker does not count it)."""
        address = endpoint.address
        pick = self._picks.get((address, kind))
        if pick is None:
            pick = self._picks[address, kind] = PICKS.labels(self.service, address, kind)
        pick.inc()
        instance = next((i for i in self._resolved if i.address == address), None)
        workers = instance.workers if instance is not None else 1
        span, metadata = self.tracing.start_client_span(f"/{self.full_name}/{method}") if self.tracing else (None, ())
        if extra_metadata:
            metadata = (*metadata, *extra_metadata)
        self.balancer.started(endpoint)
        started = time.monotonic()
        outcome = "client"
        try:
            response = await getattr(self.stub(address, workers), method)(
                request, timeout=max(0.001, deadline - started - REPLY_RESERVE_S), metadata=metadata
            )
        except grpc.aio.AioRpcError as error:
            outcome = _outcome(error.code())
            if self.tracing:
                self.tracing.end_client_span(span, error.code().name)
            raise _AttemptFailed(error, address) from None
        except asyncio.CancelledError:
            if self.tracing:
                self.tracing.end_client_span(span, "CANCELLED")
            if cancelled is not None:
                outcome = cancelled.get(asyncio.current_task(), "client")
            raise
        else:
            outcome = "ok"
            if self.tracing:
                self.tracing.end_client_span(span)
            return Answer(response, address, instance.instance_id if instance is not None else "", time.monotonic() - started)
        finally:
            elapsed = time.monotonic() - started
            self.balancer.finished(endpoint, elapsed, outcome)
            if outcome in ("ok", "failed", "overloaded"):
                self.breaker.record(outcome == "ok")
            if outcome == "ok":
                self._observe(elapsed)

    def _ejected(self, address: str, seconds: float, why: str) -> None:
        EJECTIONS.labels(self.service, address).inc()
        # Rare and consequential (no traffic to it for a while): worth a line in the log.
        log.warning("%s instance %s (%s) ejected from balancing for %g s: %s", self.service,
                    self._instance_id(address) or "?", address, seconds, why)
        if why == "stalled" and self.on_stall is not None:
            self.on_stall(self._instance_id(address))

    def _instance_id(self, address: str) -> str:
        return next((i.instance_id for i in self._resolved if i.address == address), "")

    def _observe(self, seconds: float) -> None:
        """Keep the target's p95 (the hedging delay) up to date every 32 answers."""
        self._latencies.append(seconds)
        self._since_p95 += 1
        if self._since_p95 >= 32 and len(self._latencies) >= 64:
            self._p95_s = float(np.percentile(self._latencies, 95))
            self._since_p95 = 0

    @property
    def circuit_open(self) -> bool:
        return self.breaker.state == OPEN

    async def close(self) -> None:
        for channels, _ in self._channels.values():
            for channel in channels:
                await channel.close()
        self._channels.clear()
