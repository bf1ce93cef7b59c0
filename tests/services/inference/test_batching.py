"""The dynamic batcher with a plain function as the model (no gRPC, no kernels)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from domain.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from services.inference.batching import BatchingPolicy, DynamicBatcher


class Model:
    """Doubles its input; records every batch; can be held (gate) or made to fail on NaN."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.gate.wait(10)
        if torch.isnan(x).any():
            raise RuntimeError("NaN in batch")
        self.batches.append(int(x.shape[0]))
        return {"score": x[:, 0] * 2, "member_scores": x * 2}


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_lone_request_is_not_held_for_the_delay():
    async def scenario():
        batcher = DynamicBatcher(Model(), BatchingPolicy(max_queue_delay_s=2.0))
        started = time.monotonic()
        out, timing = await batcher.submit(torch.ones(3, 2))
        elapsed = time.monotonic() - started
        await batcher.drain()
        return out, timing, elapsed

    out, timing, elapsed = run(scenario())
    assert out["score"].tolist() == [2.0, 2.0, 2.0] and timing.batch_rows == 3
    assert elapsed < 1.0  # nowhere near the 2 s delay: nobody else was coming


def test_concurrent_requests_merge_and_each_gets_its_own_rows():
    model = Model()

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(max_batch_rows=32, max_queue_delay_s=0.05))
        model.gate.clear()  # hold the first batch so the rest queue up behind it
        first = asyncio.create_task(batcher.submit(torch.zeros(1, 2)))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit(torch.full((3, 2), float(i)))) for i in range(1, 21)]
        await asyncio.sleep(0.05)
        model.gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.drain()
        return results

    results = run(scenario())
    assert model.batches[0] == 1 and all(rows <= 32 for rows in model.batches)
    assert sum(model.batches) == 61 and len(model.batches) < 21  # merged, not one call each
    for i, (out, timing) in enumerate(results[1:], start=1):
        assert out["score"].tolist() == [2.0 * i] * 3 and out["member_scores"].shape == (3, 2)
        assert timing.batch_rows > 3


def test_a_full_queue_refuses_at_once():
    model = Model()

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(max_batch_rows=4, max_queue_rows=6))
        model.gate.clear()
        running = asyncio.create_task(batcher.submit(torch.ones(4, 2)))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(batcher.submit(torch.ones(3, 2))) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(ResourceExhausted, match=r"queue full \(6 rows waiting, limit 6\)"):
            await batcher.submit(torch.ones(1, 2))
        model.gate.set()
        await asyncio.gather(running, *queued)
        await batcher.drain()

    run(scenario())


def test_an_expired_request_is_dropped_before_compute():
    model = Model()

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(max_batch_rows=8))
        model.gate.clear()
        running = asyncio.create_task(batcher.submit(torch.ones(2, 2)))
        await asyncio.sleep(0.05)
        late = asyncio.create_task(batcher.submit(torch.ones(5, 2), deadline=time.monotonic() + 0.01))
        await asyncio.sleep(0.05)
        model.gate.set()
        await running
        with pytest.raises(DeadlineExceeded, match="deadline passed after"):
            await late
        await batcher.drain()

    run(scenario())
    assert 5 not in model.batches and 7 not in model.batches


def test_a_malformed_request_fails_alone():
    model = Model()

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(max_batch_rows=64))
        model.gate.clear()
        blocker = asyncio.create_task(batcher.submit(torch.ones(1, 2)))
        await asyncio.sleep(0.05)
        good = [asyncio.create_task(batcher.submit(torch.ones(2, 2))) for _ in range(3)]
        bad = asyncio.create_task(batcher.submit(torch.full((2, 2), float("nan"))))
        await asyncio.sleep(0.02)
        model.gate.set()
        await blocker
        outcomes = await asyncio.gather(*good, bad, return_exceptions=True)
        await batcher.drain()
        return outcomes

    *good, bad = run(scenario())
    assert all(out["score"].tolist() == [2.0, 2.0] for out, _ in good)
    assert isinstance(bad, RuntimeError) and "NaN" in str(bad)


def test_drain_finishes_in_flight_work_then_refuses():
    model = Model()

    async def scenario():
        batcher = DynamicBatcher(model)
        model.gate.clear()
        in_flight = asyncio.create_task(batcher.submit(torch.ones(2, 2)))
        await asyncio.sleep(0.05)
        draining = asyncio.create_task(batcher.drain())
        await asyncio.sleep(0.05)
        assert not draining.done()  # waits for the request in flight
        model.gate.set()
        out, _ = await in_flight
        await draining
        with pytest.raises(Unavailable, match="unloading"):
            await batcher.submit(torch.ones(1, 2))
        return out

    assert run(scenario())["score"].tolist() == [2.0, 2.0]


def test_delay_adapts_by_aimd_against_the_slo():
    async def scenario():
        batcher = DynamicBatcher(Model(), BatchingPolicy(max_queue_delay_s=0.01, slo_s=0.02, delay_step_s=0.001))
        start = batcher.delay_s
        batcher._adapt(0.005)  # within the SLO: additive increase
        grown = batcher.delay_s
        for _ in range(20):
            batcher._adapt(0.005)
        capped = batcher.delay_s
        batcher._adapt(0.05)  # over the SLO: multiplicative decrease
        shrunk = batcher.delay_s
        await batcher.drain()
        return start, grown, capped, shrunk

    start, grown, capped, shrunk = run(scenario())
    assert grown == pytest.approx(start + 0.001) and capped == pytest.approx(0.01) and shrunk == pytest.approx(0.009)


def test_a_request_bigger_than_a_batch_runs_in_slices():
    model = Model()

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(max_batch_rows=4))
        out, timing = await batcher.submit(torch.arange(20, dtype=torch.float32).reshape(10, 2))
        await batcher.drain()
        return out

    out = run(scenario())
    assert model.batches == [4, 4, 2] and out["score"].tolist() == [4.0 * i for i in range(10)]


def test_a_closed_loop_caller_is_never_held():
    # One caller sending its next request only after each answer: nobody can join its batch,
    # so however long the allowed delay, no request waits for one.
    model = Model()

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(max_queue_delay_s=1.0, delay_step_s=0.5))
        queued = []
        started = time.monotonic()
        for _ in range(10):
            _, timing = await batcher.submit(torch.ones(2, 2))
            queued.append(timing.queue_s)
        elapsed = time.monotonic() - started
        await batcher.drain()
        return queued, elapsed

    queued, elapsed = run(scenario())
    assert max(queued) < 0.5 and elapsed < 2.0 and model.batches == [2] * 10


class SlowModel(Model):
    """Takes `seconds` of CPU per batch, as a model on the event loop does."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def __call__(self, x):
        until = time.perf_counter() + self.seconds
        while time.perf_counter() < until:
            pass
        return super().__call__(x)


def test_on_the_loop_sparse_requests_run_at_once_and_dense_ones_still_merge():
    """Batches computed on the event loop (the CPU path): a request arriving long after the
    last one runs in its own task right away; a burst of concurrent ones merges into batches."""
    model = SlowModel(0.002)

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(max_batch_rows=64, max_queue_delay_s=0.005, inline=True))
        for _ in range(3):  # sparse: 20 ms apart, 10x the compute time
            await batcher.submit(torch.ones(1, 2))
            await asyncio.sleep(0.02)
        sparse = list(model.batches)
        await asyncio.gather(*(batcher.submit(torch.ones(1, 2)) for _ in range(40)))  # a burst
        await batcher.drain()
        return sparse, model.batches[len(sparse):]

    sparse, dense = run(scenario())
    assert sparse == [1, 1, 1]
    assert sum(dense) == 40 and max(dense) >= 10, dense  # merged, not 40 batches of one


class DeviceExecutor:
    """Stands in for the GPU dispatcher: runs each batch in its own thread and reports the
    device time its (fake) CUDA events measured."""

    def __init__(self, device_s: float) -> None:
        self.device_s = device_s
        self.calls = 0

    async def __call__(self, run, x):
        self.calls += 1
        return await asyncio.to_thread(run, x), self.device_s


def test_an_executor_runs_every_batch_and_its_device_time_is_what_statistics_get():
    model, executor = Model(), DeviceExecutor(0.000123)
    recorded = []

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(max_batch_rows=4), executor=executor)
        batcher.on_batch = lambda rows, compute: recorded.append((rows, compute))
        small, _ = await batcher.submit(torch.ones(3, 2))
        big, timing = await batcher.submit(torch.arange(20, dtype=torch.float32).reshape(10, 2))  # in slices
        await batcher.drain()
        return small, big, timing

    small, big, timing = run(scenario())
    assert executor.calls == 4 and model.batches == [3, 4, 4, 2]
    assert recorded == [(3, 0.000123)]  # a merged batch: the device's time, not the wall clock's
    assert small["score"].tolist() == [2.0] * 3 and big["score"].tolist() == [4.0 * i for i in range(10)]
    assert timing.batch_rows == 10


def test_a_batch_stuck_on_the_device_thread_is_reported_with_where_it_is_stuck(caplog):
    """A hang off the loop (a GPU dispatcher waiting forever) is logged once with the stuck
    thread's stack while callers wait, instead of showing only as their deadlines; the batch
    still finishes when the device does."""
    model, executor = Model(), DeviceExecutor(0.001)
    model.gate.clear()

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(stall_report_s=0.1), name="stuck v1", executor=executor)
        request = asyncio.create_task(batcher.submit(torch.ones(2, 2)))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if "computing" in caplog.text:
                break
        reported = caplog.text
        model.gate.set()
        outputs, _ = await request
        await batcher.drain()
        return reported, outputs

    with caplog.at_level("WARNING", logger="services.inference.batching"):
        reported, outputs = run(scenario())
    assert "stuck v1: a batch of 2 rows has been computing for" in reported
    assert "in __call__\n    self.gate.wait(10)" in reported  # the stuck thread's own frame
    assert outputs["score"].tolist() == [2.0, 2.0]
    assert caplog.text.count("has been computing") == 1


def test_a_failure_after_compute_fails_that_batch_and_the_batcher_keeps_serving(caplog):
    model, batches = Model(), []

    def record(rows, compute):
        batches.append(rows)
        if len(batches) == 1:
            raise ValueError("statistics bug")

    async def scenario():
        batcher = DynamicBatcher(model, BatchingPolicy(), name="m v1", executor=DeviceExecutor(0.001))
        batcher.on_batch = record
        with pytest.raises(ValueError, match="statistics bug"):
            await asyncio.wait_for(batcher.submit(torch.ones(1, 2)), 5)
        outputs, _ = await asyncio.wait_for(batcher.submit(torch.ones(1, 2)), 5)
        await batcher.drain()
        return outputs

    with caplog.at_level("ERROR", logger="services.inference.batching"):
        outputs = run(scenario())
    assert outputs["score"].tolist() == [2.0]
    assert "m v1: batch of 1 requests failed after compute" in caplog.text and "statistics bug" in caplog.text
