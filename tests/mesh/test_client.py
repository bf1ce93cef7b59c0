"""The mesh client against real loopback servers that are slow, failing, stalled or gone."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter

import grpc
from domain.errors import UpstreamError
from mesh.client import ClientPolicy, ServiceClient
from mesh.discovery import Instance, LocalRegistry
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc


class Replica(monitoring_pb2_grpc.MonitoringServicer):
    """Answers GetSLO with its id after `delay_s`; fails with `failure` when set; counts calls
    and the calls cancelled by the client."""

    def __init__(self, replica_id: int) -> None:
        self.replica_id = replica_id
        self.delay_s = 0.0
        self.failure: grpc.StatusCode | None = None
        self.calls = 0
        self.cancelled = 0

    async def GetSLO(self, request, context):
        self.calls += 1
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.failure is not None:
            await context.abort(self.failure, "refused by the test")
        return monitoring_pb2.GetSLOResponse(requests=self.replica_id)


async def fleet(tmp_path, n: int, policy: ClientPolicy):
    replicas, servers = [], []
    registry = LocalRegistry(tmp_path / "registry")
    for i in range(n):
        replica = Replica(i)
        server = grpc.aio.server()
        monitoring_pb2_grpc.add_MonitoringServicer_to_server(replica, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        instance = Instance("monitoring", f"m-{i}", f"127.0.0.1:{port}", pid=os.getpid())
        registry.register(instance)
        registry.set_serving(instance, True)
        replicas.append(replica)
        servers.append(server)
    client = ServiceClient(registry, "monitoring", monitoring_pb2_grpc.MonitoringStub, "scoremesh.v1.Monitoring", policy=policy)
    return replicas, servers, client


async def stop(servers, client) -> None:
    await client.close()
    for server in servers:
        await server.stop(0)


async def call(client, timeout=2.0) -> int:
    return (await client.call("GetSLO", monitoring_pb2.GetSLORequest(), timeout=timeout)).requests


def test_a_slow_replica_gets_little_traffic_under_the_default_policy(tmp_path):
    async def scenario():
        replicas, servers, client = await fleet(tmp_path, 2, ClientPolicy(hedge=False))
        replicas[0].delay_s = 0.100  # 10x slower than the other (delays well above this loop's own jitter)
        replicas[1].delay_s = 0.010
        for _ in range(4):  # a few waves to learn the latencies
            await asyncio.gather(*(call(client) for _ in range(8)))
        answered = Counter()
        for _ in range(8):  # concurrent waves, as a busy router sends them
            for result in await asyncio.gather(*(call(client) for _ in range(8))):
                answered[result] += 1
        await stop(servers, client)
        return answered

    answered = asyncio.run(scenario())
    assert answered[1] / sum(answered.values()) >= 0.8, answered


def test_a_failing_replica_is_ejected_then_readmitted_and_calls_still_succeed(tmp_path, caplog):
    async def scenario():
        replicas, servers, client = await fleet(tmp_path, 3, ClientPolicy(strategy="round_robin", hedge=False))
        client.balancer.ejection_s = 0.5
        client.balancer.max_ejected_share = 0.5
        replicas[0].failure = grpc.StatusCode.UNAVAILABLE
        results = [await call(client) for _ in range(30)]  # every call succeeds: retried elsewhere
        calls_while_failing = replicas[0].calls
        more = [await call(client) for _ in range(30)]
        ejected_calls = replicas[0].calls - calls_while_failing
        replicas[0].failure = None
        await asyncio.sleep(0.6)  # the ejection ends
        after = Counter([await call(client) for _ in range(30)])
        await stop(servers, client)
        return results + more, calls_while_failing, ejected_calls, after

    results, calls_while_failing, ejected_calls, after = asyncio.run(scenario())
    assert 0 not in results and len(results) == 60
    assert 5 <= calls_while_failing <= 15  # five failures eject it (plus ones already on the way)
    assert ejected_calls == 0  # no call reaches it while ejected
    assert after[0] > 0  # re-admitted
    ejections = [r.getMessage() for r in caplog.records if "ejected from balancing" in r.getMessage()]
    assert len(ejections) == 1 and ejections[0].endswith("for 0.5 s: failing"), ejections  # in the log, once


def test_a_total_outage_stays_within_the_retry_budget_and_opens_the_breaker(tmp_path):
    async def scenario():
        policy = ClientPolicy(hedge=False, retry_budget_ratio=0.2, retry_budget_per_second=1.0, breaker_min_requests=20, breaker_open_s=0.5)
        replicas, servers, client = await fleet(tmp_path, 2, policy)
        client.balancer.max_ejected_share = 0.0  # keep both in play: the budget alone must bound retries
        for replica in replicas:
            replica.failure = grpc.StatusCode.UNAVAILABLE
        outcomes = Counter()
        for _ in range(100):
            try:
                await call(client)
            except UpstreamError as error:
                outcomes[error.reason or error.status] += 1
        attempts = sum(r.calls for r in replicas)
        for replica in replicas:
            replica.failure = None
        await asyncio.sleep(0.6)  # open -> half-open: probes succeed, the circuit closes
        recovered = [await call(client) for _ in range(5)]
        state = client.breaker.state
        await stop(servers, client)
        return outcomes, attempts, recovered, state

    outcomes, attempts, recovered, state = asyncio.run(scenario())
    assert sum(outcomes.values()) == 100
    assert outcomes["CIRCUIT_OPEN"] > 50  # refused at once after the breaker opened
    assert attempts <= 100 * 1.2 + 10  # never more than the budget: 20% of calls plus 1/s over 10 s
    assert len(recovered) == 5 and state == "closed"


def test_a_stalled_replica_is_hedged_around_and_the_loser_cancelled(tmp_path):
    async def scenario():
        replicas, servers, client = await fleet(tmp_path, 2, ClientPolicy(strategy="round_robin", hedge=True, hedge_budget_ratio=1.0))
        for replica in replicas:
            replica.delay_s = 0.002
        for _ in range(80):  # learn the p95 (a few ms)
            await call(client)
        replicas[0].delay_s = 5.0  # stalled, as a SIGSTOPped process
        started = time.monotonic()
        results = await asyncio.gather(*(call(client, timeout=3.0) for _ in range(10)))
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.1)
        cancelled = replicas[0].cancelled
        await stop(servers, client)
        return results, elapsed, cancelled

    results, elapsed, cancelled = asyncio.run(scenario())
    assert results == [1] * 10  # every call answered by the healthy replica
    assert elapsed < 1.0  # nowhere near the stall or the deadline
    assert cancelled >= 1  # the losing attempts were cancelled, not left running


def test_an_answer_names_the_instance_that_gave_it_and_that_attempt_s_own_latency(tmp_path):
    async def scenario():
        replicas, servers, client = await fleet(tmp_path, 2, ClientPolicy(strategy="round_robin", hedge=True, hedge_budget_ratio=1.0))
        replicas[0].delay_s, replicas[1].delay_s = 0.002, 0.02
        for _ in range(80):  # learn the p95
            await call(client)
        replicas[0].delay_s = 5.0  # stalled: the hedge on m-1 answers
        answers = [await client.call_answered("GetSLO", monitoring_pb2.GetSLORequest(), timeout=3.0) for _ in range(4)]
        await stop(servers, client)
        return answers

    answers = asyncio.run(scenario())
    assert {(a.instance_id, a.response.requests) for a in answers} == {("m-1", 1)}
    # m-1's own time (its 20 ms), not the hedging delay spent waiting on m-0 before it.
    assert all(0.02 <= a.seconds < 0.2 for a in answers)
    # Calls sent to m-0 first say so, with how long it made the caller wait (until the hedge won).
    outrun = [a for a in answers if a.first_instance_id == "m-0"]
    assert outrun and all(a.seconds < a.first_seconds < 0.5 for a in outrun)
    assert all(a.first_seconds == a.seconds for a in answers if a.first_instance_id == "m-1")


class CountingRegistry:
    """A registry double that counts reads and can hold them until released."""

    def __init__(self, instances: list[Instance]) -> None:
        self.instances = instances
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()

    def resolve(self, service: str) -> list[Instance]:
        self.reads += 1
        self.gate.wait(5)
        return list(self.instances)


def test_the_registry_is_read_once_however_many_calls_find_the_list_expired():
    async def scenario():
        first = Instance("monitoring", "m-1", "127.0.0.1:1")
        registry = CountingRegistry([first])
        client = ServiceClient(registry, "monitoring", monitoring_pb2_grpc.MonitoringStub)
        # No list yet: sixteen callers wait for one read.
        lists = await asyncio.gather(*(client.instances() for _ in range(16)))
        assert registry.reads == 1 and all(found == [first] for found in lists)
        # Expired: the old list answers at once while one background read runs.
        second = Instance("monitoring", "m-2", "127.0.0.1:2")
        registry.instances.append(second)
        registry.gate.clear()
        client._resolved_at -= 10  # as if RESOLVE_TTL_S had passed
        lists = await asyncio.gather(*(client.instances() for _ in range(16)))
        assert all(found == [first] for found in lists)
        registry.gate.set()
        while registry.reads < 2 or client._refreshing is not None:
            await asyncio.sleep(0.001)
        assert registry.reads == 2 and await client.instances() == [first, second]
        # After invalidate, a call waits for a read started after it.
        registry.instances.remove(first)
        client.invalidate()
        assert await client.instances() == [second]
        assert registry.reads == 3

    asyncio.run(scenario())


def test_a_failed_background_read_keeps_the_last_list():
    async def scenario():
        only = Instance("monitoring", "m-1", "127.0.0.1:1")
        registry = CountingRegistry([only])
        client = ServiceClient(registry, "monitoring", monitoring_pb2_grpc.MonitoringStub)
        await client.instances()
        registry.resolve = lambda service: (_ for _ in ()).throw(ConnectionError("consul down"))
        client._resolved_at -= 10
        assert await client.instances() == [only]
        await asyncio.sleep(0.05)  # the background read fails and is logged
        assert await client.instances() == [only]

    asyncio.run(scenario())


def test_a_caller_giving_up_during_a_hedged_call_cancels_its_attempt(tmp_path):
    async def scenario():
        replicas, servers, client = await fleet(tmp_path, 2, ClientPolicy(strategy="round_robin", hedge=True, hedge_budget_ratio=1.0))
        for replica in replicas:
            replica.delay_s = 0.02
        for _ in range(80):  # learn the p95 (~20 ms): the hedging delay
            await call(client)
        for replica in replicas:
            replica.delay_s = 5.0
        unretrieved = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unretrieved.append(context))
        before = sum(r.cancelled for r in replicas)
        try:
            await asyncio.wait_for(call(client, timeout=3.0), 0.005)  # gives up before any hedge
        except TimeoutError:
            pass
        await asyncio.sleep(0.2)
        cancelled = sum(r.cancelled for r in replicas) - before
        await stop(servers, client)
        return cancelled, unretrieved

    cancelled, unretrieved = asyncio.run(scenario())
    assert cancelled == 1  # the attempt in flight did not run on to the server's 5 s
    assert unretrieved == []
