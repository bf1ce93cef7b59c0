"""The mesh client's decisions without gRPC: strategies, outlier ejection, breaker, budget."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mesh.balancing import CLOSED, HALF_OPEN, OPEN, Balancer, CircuitBreaker, Endpoint, RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def balancer(strategy="p2c_ewma", n=3, clock=None, **options) -> Balancer:
    b = Balancer(strategy, rng=random.Random(7), clock=clock or Clock(), **options)
    b.sync([f"10.0.0.{i}:1" for i in range(n)])
    return b


def test_p2c_sends_most_traffic_to_the_faster_instance():
    b = balancer(n=2)
    picks = Counter()
    for _ in range(2000):
        e = b.pick()
        picks[e.address] += 1
        b.started(e)
        b.finished(e, 0.100 if e.address == "10.0.0.0:1" else 0.010, "ok")
    assert picks["10.0.0.1:1"] / 2000 > 0.9, picks


def test_p2c_counts_queued_calls_and_a_new_instance_looks_average():
    clock = Clock()
    b = balancer(n=2, clock=clock)
    a, c = b.endpoints.values()
    for _ in range(5):
        b.started(a)
        b.finished(a, 0.010, "ok")
    # Not sampled yet, c looks like its peers (10 ms), so p2c prefers it when a is busy.
    b.started(a)
    assert b.pick() is c
    assert c.cost(clock(), 0.010) == pytest.approx(0.010) and a.cost(clock()) == pytest.approx(0.020)


def test_fast_overload_is_a_latency_penalty_not_a_bargain():
    b = balancer(n=2)
    a, c = b.endpoints.values()
    for _ in range(3):
        b.started(a)
        b.finished(a, 0.0002, "overloaded")  # RESOURCE_EXHAUSTED in 0.2 ms
        b.started(c)
        b.finished(c, 0.020, "ok")
    assert a.peak_ewma_s >= 1.0 and b.pick() is c


@pytest.mark.parametrize("strategy", ["round_robin", "random", "weighted_random", "least_loaded", "fastest", "performance"])
def test_every_strategy_picks_a_live_instance(strategy):
    b = balancer(strategy, n=4)
    seen = {b.pick().address for _ in range(200)}
    assert seen <= set(b.endpoints) and seen


def test_round_robin_cycles_and_weighted_random_follows_weights():
    b = balancer("round_robin", n=3)
    assert len({b.pick().address for _ in range(3)}) == 3
    w = Balancer("weighted_random", rng=random.Random(1))
    w.sync(["a", "b"], {"a": 3.0, "b": 1.0})
    share = Counter(w.pick().address for _ in range(4000))["a"] / 4000
    assert share == pytest.approx(0.75, abs=0.03)


def test_performance_scores_response_time_load_errors_and_weight():
    e = Endpoint("x", weight=2.0)
    assert e.performance(100) == 2.0  # every factor 1.0 without data
    e.latencies.extend([0.1] * 10)  # 100 ms average: resp = 1 / (1 + 100/100) = 0.5
    e.loads.extend([50] * 10)  # load = 1 / (1 + 50/100)
    e.requests, e.errors = 10, 1  # err = 0.9
    assert e.performance(100) == pytest.approx(0.5 * (1 / 1.5) * 0.9 * 2.0)


def test_consecutive_failures_eject_for_growing_capped_times_within_the_share():
    clock = Clock()
    b = balancer(n=10, clock=clock)
    bad = b.endpoints["10.0.0.0:1"]
    ejected = []
    reasons = set()
    b.on_eject = lambda address, seconds, why: (ejected.append(seconds), reasons.add(why))
    for round_ in range(12):
        for _ in range(5):
            b.started(bad)
            b.finished(bad, 0.001, "failed")
        clock.now += 400  # past any ejection
    assert ejected[:3] == [30.0, 60.0, 90.0] and max(ejected) == 300.0 and reasons == {"failing"}
    # At most 10% of 10 instances: a second bad one is not ejected while the first is.
    other = b.endpoints["10.0.0.1:1"]
    for _ in range(5):
        b.started(bad)
        b.finished(bad, 0.001, "failed")
        b.started(other)
        b.finished(other, 0.001, "failed")
    assert bad.ejected_until > clock.now and other.ejected_until <= clock.now
    assert b.pick(exclude=set()) is not bad and all(b.pick() is not bad for _ in range(50))
    clock.now = bad.ejected_until + 1  # re-admitted
    assert bad in b.available()


def test_the_breaker_opens_half_opens_and_closes():
    clock = Clock()
    breaker = CircuitBreaker(window_s=10, min_requests=10, failure_ratio=0.5, open_s=5, probes=2, clock=clock)
    for i in range(10):
        breaker.record(i % 2 == 0)  # 50% failures over 10 calls
    assert breaker.state == OPEN and not breaker.allow()
    clock.now += 5
    assert breaker.allow() and breaker.state == HALF_OPEN and breaker.allow() and not breaker.allow()  # two probes
    breaker.record(False)
    assert breaker.state == OPEN
    clock.now += 5
    assert breaker.allow() and breaker.allow()
    breaker.record(True)
    breaker.record(True)
    assert breaker.state == CLOSED and breaker.allow()


def test_the_retry_budget_is_a_share_of_requests_plus_a_floor():
    clock = Clock()
    budget = RetryBudget(ratio=0.2, per_second=1.0, window_s=10, clock=clock)
    for _ in range(100):
        budget.request()
    granted = sum(budget.try_spend() for _ in range(100))
    assert granted == 30  # 20% of 100 requests + 1/s over 10 s
    clock.now += 11  # the window has passed: the floor is back
    assert sum(budget.try_spend() for _ in range(100)) == 10


def test_outrun_first_attempts_eject_only_an_instance_that_answers_nothing():
    clock = Clock()
    b = balancer(n=2, clock=clock, max_ejected_share=0.5)
    busy, stalled = b.endpoints.values()
    ejections = []
    b.on_eject = lambda address, seconds, why: ejections.append((address, why))
    for endpoint in (busy, stalled):
        b.started(endpoint)
        b.finished(endpoint, 0.01, "ok")
    for _ in range(10):  # busy is outrun at times but answers in between: never ejected
        clock.now += 0.5
        b.started(busy)
        b.finished(busy, 0.05, "outrun")
        b.started(busy)
        b.finished(busy, 0.01, "ok")
    assert busy.ejected_until <= clock.now
    for _ in range(3):  # stalled only is outrun, for over a second: ejected
        clock.now += 0.5
        b.started(stalled)
        b.finished(stalled, 0.05, "outrun")
    assert stalled.ejected_until > clock.now and b.pick() is busy
    assert ejections == [(stalled.address, "stalled")]  # what routers report to monitoring


def test_a_replica_that_just_joined_is_judged_stalled_only_after_stall_s_tried_without_an_answer():
    """A replica (re)started is slow on its first calls; that it never answered yet is no stall."""
    clock = Clock()
    b = balancer(n=1, clock=clock, max_ejected_share=0.5)
    clock.now += 60
    b.sync([*b.endpoints, "joined:1"])
    joined = b.endpoints["joined:1"]
    for _ in range(3):  # outrun three times in its first 0.3 s: not yet
        clock.now += 0.1
        b.started(joined)
        b.finished(joined, 0.05, "outrun")
    assert joined.ejected_until <= clock.now
    clock.now += 0.9  # still nothing answered a second after it was first tried: stalled
    b.started(joined)
    b.finished(joined, 0.05, "outrun")
    assert joined.ejected_until > clock.now


def test_an_idle_replica_outrun_on_its_first_calls_back_is_not_stalled():
    """The time an instance was not tried is no evidence: idle for a minute (its peer was
    preferred), then three concurrent calls outrun by hedges, is a slow start, not a stall.
    Tried for a second without an answer, it is."""
    clock = Clock()
    b = balancer(n=2, clock=clock, max_ejected_share=0.5)
    idle, _ = b.endpoints.values()
    b.started(idle)
    b.finished(idle, 0.01, "ok")
    for pause in (60.0, 5.0):  # twice back from idle, each time outrun on three calls at once
        clock.now += pause
        for _ in range(3):
            b.started(idle)
        clock.now += 0.05
        for _ in range(3):
            b.finished(idle, 0.05, "outrun")
        assert idle.ejected_until <= clock.now, pause
    for _ in range(4):  # then tried every 0.3 s, never answering: 1.2 s after the first try, stalled
        clock.now += 0.3
        b.started(idle)
        b.finished(idle, 0.05, "outrun")
    assert idle.ejected_until > clock.now


def test_an_outrun_attempt_is_a_lower_bound_of_latency():
    clock = Clock()
    b = balancer(n=1, clock=clock)
    (endpoint,) = b.endpoints.values()
    b.started(endpoint)
    b.finished(endpoint, 0.010, "ok")
    b.started(endpoint)
    b.finished(endpoint, 0.004, "outrun")  # took at least 4 ms: says nothing new
    assert endpoint.peak_ewma_s == 0.010
    b.started(endpoint)
    b.finished(endpoint, 0.040, "outrun")  # took at least 40 ms: it is slower than thought
    assert endpoint.peak_ewma_s == 0.040


def test_superseded_hedges_never_make_a_healthy_instance_look_stalled():
    """The instance that only gets hedges (the others are preferred) and whose hedges are
    cancelled because the first attempts answer must stay in rotation."""
    clock = Clock()
    b = balancer(n=2, clock=clock, max_ejected_share=0.5)
    hedged, _ = b.endpoints.values()
    b.started(hedged)
    b.finished(hedged, 0.01, "ok")
    for _ in range(20):
        clock.now += 0.5
        b.started(hedged)
        b.finished(hedged, 0.003, "superseded")
    assert hedged.ejected_until <= clock.now and hedged.in_flight == 0
    assert hedged.peak_ewma_s == 0.01 and hedged.requests == 1
