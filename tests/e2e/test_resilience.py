"""The router keeps answering when inference replicas are slow, stopped or overloaded: real
processes on loopback (features, two inference replicas, the router), faults injected with
signals, load from this process. Each test is bounded in time; the overload test runs first,
before any replica has been stopped.

Figures are printed (run with -s to see them); the closing notes quote them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import signal
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest

from scoremesh.v1 import router_pb2_grpc
from tests.e2e.mesh_process import ServiceProcess, running, small_state
from tests.e2e.requests import score_request

pytestmark = [pytest.mark.mesh, pytest.mark.usefixtures("frozen_collector")]

ROUTING = """
default_route: search
routes:
  search: {ensemble: ctr_ensemble, admission: {rate: %(rate)s, burst: %(burst)s}}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    state = small_state(tmp_path_factory, "resilience", ROUTING % {"rate": 0, "burst": 0})
    processes = {
        "features": ServiceProcess("features", state),
        "fast": ServiceProcess("inference", state, instance_id="inference-fast"),
        "slow": ServiceProcess("inference", state, instance_id="inference-slow"),
        "router": ServiceProcess("router", state, {"SCOREMESH_ROUTING_POLL_S": "0.2"}),
    }
    with running(processes):
        yield processes


@functools.cache
def search_request(seed: int):
    """The Score request of `seed`, built once: building one costs ~1 ms of this process's CPU,
    which at 180 arrivals/s took a tenth of the 2-core machine from the mesh under test (and was
    counted in each call's latency). Never mutated by the callers."""
    return score_request(3, "search", seed=seed)


def picks(router: ServiceProcess) -> dict[str, float]:
    """The router's first attempts at inference (scoremesh_client_picks_total), by address:
    where requests go, hedges and retries aside."""
    text = urllib.request.urlopen(router.metrics_url, timeout=5).read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith('scoremesh_client_picks_total{') and 'service="inference"' in line and 'attempt="first"' in line:
            address = line.split('address="', 1)[1].split('"', 1)[0]
            found[address] = float(line.rsplit(" ", 1)[1])
    return found


async def closed_loop(address: str, concurrency: int, seconds: float, timeout: float = 2.0,
                      distinct_requests: int = 50, details: dict[str, str] | None = None) -> tuple[list[float], list[str]]:
    """`concurrency` callers back to back; requests cycle through `distinct_requests` seeds of the
    synthetic generator (a large number: traffic drawn as training data was, for drift).
    `details` gets the message of the first failure of each status."""
    latencies, codes = [], []
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(4)]
    stubs = itertools.cycle([router_pb2_grpc.RouterStub(c) for c in channels])
    stop = time.monotonic() + seconds
    seeds = itertools.count()

    async def caller():
        while time.monotonic() < stop:
            request = search_request(next(seeds) % distinct_requests)
            started = time.monotonic()
            try:
                await next(stubs).Score(request, timeout=timeout)
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
                if details is not None:
                    details.setdefault(error.code().name, error.details() or "")
            latencies.append(time.monotonic() - started)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    for channel in channels:
        await channel.close()
    return latencies, codes


class Throttle(threading.Thread):
    """Makes a process ~`factor` times slower, in throughput and in latency: it runs for
    1/factor of each 100 ms period (a shorter period would cut its throughput but add only a
    few milliseconds to a call)."""

    def __init__(self, pid: int, factor: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.running_share, self.done = pid, 1.0 / factor, threading.Event()

    def run(self) -> None:
        period = 0.1
        while not self.done.is_set():
            os.kill(self.pid, signal.SIGSTOP)
            time.sleep(period * (1 - self.running_share))
            os.kill(self.pid, signal.SIGCONT)
            time.sleep(period * self.running_share)
        os.kill(self.pid, signal.SIGCONT)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def open_loop(address: str, rate: float, seconds: float) -> tuple[list[float], list[float], list[str]]:
    """Arrivals at a fixed rate whatever the answers (as traffic from many callers is)."""
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(4)]
    stubs = itertools.cycle([router_pb2_grpc.RouterStub(c) for c in channels])
    admitted, refused, codes = [], [], []

    async def one(seed: int):
        request = search_request(seed % 50)
        started = time.monotonic()
        try:
            await next(stubs).Score(request, timeout=2.0)
            admitted.append(time.monotonic() - started)
            codes.append("OK")
        except grpc.aio.AioRpcError as error:
            (refused if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else admitted).append(time.monotonic() - started)
            codes.append(error.code().name)

    tasks, start = [], time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()
    return admitted, refused, codes


def test_overload_at_three_times_capacity_is_refused_fast_and_the_admitted_keep_their_latency(mesh):
    router = mesh["router"]
    # Scores per second the route admits. The machine must keep headroom at 3x: on 2 cores, 60/s
    # (180 arrivals/s: ~0.6 of a core for this load generator, 0.6 for the router, more for the
    # rest of the mesh) left the cores nearly saturated, and the admitted p99 then measured the
    # machine's queue (2.8-3.2x on CI), not the router's.
    capacity = 30.0
    phase_s = 4.0  # 120 admitted per overloaded round: the p99 is not one sample's
    # The burst absorbs a 500 ms stall of this client or the router (a 2-core machine under load
    # has them): after one, the arrivals it held back come at once, and below the rate none of
    # them may be refused. At 3x the rate it adds only 15 admitted per round.
    burst = 15
    (router.state_dir / "routing.yaml").write_text(ROUTING % {"rate": capacity, "burst": burst})
    time.sleep(1.0)  # the router reloads its routing within its poll interval
    # Unloaded and overloaded phases alternate, and each condition's p99 is the median over its
    # rounds: on a shared 2-core machine one background burst (another mesh's periodic work, a
    # GC) lands in one phase only, and a single comparison would measure that burst, not the router.
    unloaded_p99s, admitted_p99s, refused_p99s, unloaded_codes, codes = [], [], [], [], []
    rss_before = _rss_kb(router.process.pid)
    for _ in range(5):
        time.sleep(0.6)  # the bucket refills (burst / rate = 500 ms) before traffic below the rate
        unloaded, _, some_codes = asyncio.run(open_loop(router.address, capacity * 0.8, phase_s))
        unloaded_p99s.append(float(np.percentile(unloaded, 99)))
        unloaded_codes += some_codes
        admitted, refused, some_codes = asyncio.run(open_loop(router.address, capacity * 3, phase_s))
        admitted_p99s.append(float(np.percentile(admitted, 99)))
        refused_p99s.append(float(np.percentile(refused, 99)) if refused else 0.0)
        codes += some_codes
    rss_after = _rss_kb(router.process.pid)  # after 16 s more at 3x than the first round: memory must not grow with it
    (router.state_dir / "routing.yaml").write_text(ROUTING % {"rate": 0, "burst": 0})
    unloaded_p99, admitted_p99, refused_p99 = (float(np.median(values)) for values in (unloaded_p99s, admitted_p99s, refused_p99s))
    print(f"\noverload: offered {capacity * 3:.0f}/s to a route admitting {capacity:.0f}/s: {codes.count('OK')} admitted "
          f"(p99 {admitted_p99 * 1000:.1f} ms vs unloaded p99 {unloaded_p99 * 1000:.1f} ms, medians of 5 alternating rounds: "
          f"{[round(v * 1000, 1) for v in admitted_p99s]} vs {[round(v * 1000, 1) for v in unloaded_p99s]}), "
          f"{codes.count('RESOURCE_EXHAUSTED')} refused (p99 {refused_p99 * 1000:.1f} ms), router RSS {rss_before} -> {rss_after} kB")
    assert unloaded_codes.count("OK") == len(unloaded_codes), Counter(unloaded_codes)  # below the rate, within the burst: all admitted
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"} and codes.count("RESOURCE_EXHAUSTED") > len(codes) / 2
    assert codes.count("OK") <= 5 * (capacity * phase_s * 1.1 + burst)  # per round: the rate over the phase, plus the burst
    # Each round's overloaded phase against the unloaded phase just before it (the machine's state
    # shared), median over rounds. The load generator at 3x still shares the mesh's cores (some of
    # the ratio is that); requests queued behind refusals or held by the bucket would take hundreds
    # of milliseconds.
    ratios = [admitted / unloaded for admitted, unloaded in zip(admitted_p99s, unloaded_p99s)]
    assert float(np.median(ratios)) <= 2.5, ratios
    assert refused_p99 < 0.05  # refused at once, not queued
    assert rss_after - rss_before < 30_000


def test_a_replica_ten_times_slower_gets_little_traffic_within_seconds(mesh):
    router, fast, slow = mesh["router"], mesh["fast"], mesh["slow"]
    asyncio.run(closed_loop(router.address, 8, 1.0))  # warm: both replicas sampled
    throttle = Throttle(slow.process.pid, 10)
    throttle.start()
    try:
        asyncio.run(closed_loop(router.address, 8, 2.0))  # a few seconds to notice
        before = picks(router)
        latencies, codes = asyncio.run(closed_loop(router.address, 8, 3.0))
        after = picks(router)
    finally:
        throttle.done.set()
        throttle.join()
    to_fast = after[fast.address] - before.get(fast.address, 0)
    to_slow = after[slow.address] - before.get(slow.address, 0)
    share = to_fast / (to_fast + to_slow)
    print(f"\nslow replica: {share:.1%} of {to_fast + to_slow:.0f} ModelInfer requests to the fast one; "
          f"{codes.count('OK')}/{len(codes)} Scores OK, p99 {np.percentile(latencies, 99) * 1000:.0f} ms")
    assert share >= 0.8 and codes.count("OK") == len(codes)


def test_a_replica_stopped_for_ten_seconds_under_load_costs_no_score(mesh):
    router, slow = mesh["router"], mesh["slow"]
    asyncio.run(closed_loop(router.address, 16, 1.0))  # warm, p95 learned

    def stop_for_ten_seconds():
        time.sleep(1.0)
        os.kill(slow.process.pid, signal.SIGSTOP)
        time.sleep(10.0)
        os.kill(slow.process.pid, signal.SIGCONT)

    stopper = threading.Thread(target=stop_for_ten_seconds, daemon=True)
    stopper.start()
    try:
        latencies, codes = asyncio.run(closed_loop(router.address, 16, 12.0, timeout=2.0))
    finally:
        stopper.join()
        os.kill(slow.process.pid, signal.SIGCONT)
    success = codes.count("OK") / len(codes)
    p99 = float(np.percentile(latencies, 99))
    print(f"\nSIGSTOP 10 s at concurrency 16: {codes.count('OK')}/{len(codes)} Scores OK ({success:.3%}; {Counter(codes)}), "
          f"p50 {np.percentile(latencies, 50) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (deadline 2000 ms)")
    assert success >= 0.999 and p99 < 2.0
