"""Dynamic batching: concurrent requests for one model version merged into one kernel call.

Policy (documented in the README):
- Greedy when idle: a request that finds the executor idle and nothing else coming is run at
  once, so at low load nobody waits for a batch to fill (the originals' flaw: 100 ms for a lone
  request); when batches run on the event loop (the CPU path) it runs right in the caller's
  task. While a batch runs, new requests queue and form the next batch.
- Waiting for more rows only pays when more are expected soon. The batcher keeps two EWMAs: the
  gap between arrivals, and the share of arrivals that came while other requests were still in
  flight (independent traffic, as opposed to one closed-loop caller whose next request only
  comes after this answer). It waits (up to the current delay, while below `max_batch_rows`)
  only when most arrivals overlap and the next is expected within the delay.
- The delay adapts to a latency SLO by AIMD (Clipper): after each batch, if the slowest request
  of the batch (queue + compute) stayed under `slo_s`, the delay grows by `delay_step_s` up to
  `max_queue_delay_s`; when it went over, the delay shrinks by 10%.
- The queue is bounded in rows: a request that does not fit is refused at once
  (ResourceExhausted) rather than queued without bound. A request whose deadline passed while
  queued is dropped before compute (DeadlineExceeded). If a merged batch fails, each request is
  run alone so a bad one fails by itself and never its batch mates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import torch

from domain.errors import DeadlineExceeded, MeshError, ResourceExhausted, Unavailable
from mesh.stalls import thread_stacks

log = logging.getLogger(__name__)

# The idle fast path runs a request at once only while requests arrive this many compute times
# apart or more: a batch mate is then unlikely, and waiting in the queue would only cost.
SPARSE_ARRIVALS = 4.0

Outputs = dict[str, torch.Tensor]
RunBatch = Callable[[torch.Tensor], Outputs]
# Runs a batch somewhere else (a GPU's dispatcher thread) and says how long the device computed:
# (outputs on the host, device seconds).
Executor = Callable[[RunBatch, torch.Tensor], Awaitable[tuple[Outputs, float]]]


@dataclass(frozen=True)
class BatchingPolicy:
    max_batch_rows: int = 1024
    """Most rows merged into one kernel call."""
    max_queue_delay_s: float = 0.005
    """Longest a request may be held for batch mates."""
    max_queue_rows: int = 16384
    """Rows that may wait; beyond, requests are refused at once."""
    slo_s: float = 0.025
    """Latency target (queue + compute) that the adaptive delay tracks."""
    delay_step_s: float = 0.0005
    """Additive increase of the delay after a batch within the SLO."""
    inline: bool = False
    """Run batches on the event loop's thread instead of a worker thread."""
    stall_report_s: float = 10.0
    """A batch computing off the loop (a GPU's dispatcher thread) for longer than this is logged
    once, with every other thread's stack: a device-side hang then says where it is stuck
    rather than showing only as callers' deadlines. The batch is not cancelled (a kernel cannot
    be interrupted)."""


@dataclass
class Timing:
    queue_s: float
    compute_s: float
    batch_rows: int


@dataclass
class _Pending:
    x: torch.Tensor
    deadline: float | None  # monotonic
    enqueued: float
    future: asyncio.Future = field(repr=False)


class DynamicBatcher:
    def __init__(self, run: RunBatch, policy: BatchingPolicy = BatchingPolicy(), name: str = "model",
                 executor: Executor | None = None) -> None:
        self.run = run
        self.executor = executor
        self.policy = policy
        self.name = name
        self.delay_s = policy.max_queue_delay_s / 2
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._gap_ewma_s = float("inf")
        self._compute_ewma_s = 0.0
        self._overlap_ewma = 0.0
        self._last_arrival: float | None = None
        self._closed = False
        self.in_flight = 0  # requests submitted and not yet answered
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker = asyncio.create_task(self._loop(), name=f"batcher-{name}")
        self.on_batch: Callable[[int, float], None] | None = None  # (rows, compute seconds: the device's where known)

    # ------------------------------------------------------------------ submit
    async def submit(self, x: torch.Tensor, deadline: float | None = None) -> tuple[Outputs, Timing]:
        if self._closed:
            raise Unavailable(f"{self.name} is unloading")
        rows = int(x.shape[0])
        if rows > self.policy.max_batch_rows:
            return await self._run_alone(x, deadline)
        if self._queued_rows + rows > self.policy.max_queue_rows:
            raise ResourceExhausted(
                f"{self.name}: queue full ({self._queued_rows} rows waiting, limit {self.policy.max_queue_rows}); retry later"
            )
        now = time.monotonic()
        if self._last_arrival is not None:
            gap = now - self._last_arrival
            self._gap_ewma_s = gap if self._gap_ewma_s == float("inf") else 0.8 * self._gap_ewma_s + 0.2 * gap
        self._last_arrival = now
        self._overlap_ewma = 0.8 * self._overlap_ewma + 0.2 * (1.0 if self.in_flight > 0 else 0.0)
        if self.policy.inline and self.in_flight == 0 and self._gap_ewma_s > SPARSE_ARRIVALS * self._compute_ewma_s:
            return self._run_now(x, rows)
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(x, deadline, now, future))
        self._queued_rows += rows
        self._track(+1)
        self._wakeup.set()
        try:
            return await future
        finally:
            self._track(-1)

    def _run_now(self, x: torch.Tensor, rows: int) -> tuple[Outputs, Timing]:
        """Nothing queued or running, arrivals sparse next to compute time, and batches run on
        the loop: compute in the caller's own task, with no queue, future or worker wake-up. (Under
        dense traffic this would starve batching: the loop is busy computing while others arrive,
        so they must queue and merge.)"""
        self._track(+1)
        try:
            started = time.monotonic()
            outputs = self.run(x)
            compute = time.monotonic() - started
        finally:
            self._track(-1)
        self._compute_ewma_s = 0.8 * self._compute_ewma_s + 0.2 * compute
        if self.on_batch is not None:
            self.on_batch(rows, compute)
        self._adapt(compute)
        return outputs, Timing(0.0, compute, rows)

    async def _run_alone(self, x: torch.Tensor, deadline: float | None) -> tuple[Outputs, Timing]:
        """A request bigger than a batch runs by itself, in slices of max_batch_rows."""
        self._track(+1)
        try:
            started = time.monotonic()
            parts = [(await self._compute(chunk))[0] for chunk in x.split(self.policy.max_batch_rows)]
            compute = time.monotonic() - started
            return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, Timing(0.0, compute, int(x.shape[0]))
        finally:
            self._track(-1)

    def _track(self, delta: int) -> None:
        self.in_flight += delta
        if self.in_flight == 0:
            self._idle.set()
        else:
            self._idle.clear()

    # ------------------------------------------------------------------ worker
    async def _loop(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._gather()
            batch = self._take()
            if not batch:
                continue
            try:
                await self._execute(batch)
            except Exception as error:
                # A bug after compute (statistics, the slicing of outputs) must cost this batch
                # only: were it to end this task, every later request would wait out its deadline
                # with nothing logged.
                log.error("%s: batch of %d requests failed after compute", self.name, len(batch), exc_info=error)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)

    async def _gather(self) -> None:
        """Wait for batch mates only while they are expected to come in time."""
        first = self._queue[0].enqueued
        while self._queued_rows < self.policy.max_batch_rows:
            left = first + self.delay_s - time.monotonic()
            if left <= 0 or self._overlap_ewma < 0.5 or self._gap_ewma_s > left:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[_Pending]:
        batch, rows, now = [], 0, time.monotonic()
        while self._queue and rows + int(self._queue[0].x.shape[0]) <= self.policy.max_batch_rows:
            item = self._queue.popleft()
            self._queued_rows -= int(item.x.shape[0])
            if item.future.done():  # the caller went away (cancelled)
                continue
            if item.deadline is not None and now >= item.deadline:
                item.future.set_exception(DeadlineExceeded(f"{self.name}: deadline passed after {now - item.enqueued:.3f}s in the queue"))
                continue
            batch.append(item)
            rows += int(item.x.shape[0])
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        started = time.monotonic()
        try:
            merged = batch[0].x if len(batch) == 1 else torch.cat([p.x for p in batch])
            outputs, device_s = await self._compute(merged)
        except Exception as error:
            if len(batch) == 1:
                self._fail(batch[0], error)
            else:  # isolate the culprit: each request alone
                log.warning("%s: batch of %d failed (%s); running its requests one by one", self.name, len(batch), error)
                for item in batch:
                    await self._execute([item])
            return
        compute = time.monotonic() - started  # what the batch's requests waited for (copies and sync included)
        self._compute_ewma_s = 0.8 * self._compute_ewma_s + 0.2 * compute
        rows = sum(int(p.x.shape[0]) for p in batch)
        if self.on_batch is not None:
            self.on_batch(rows, compute if device_s is None else device_s)
        offset, worst = 0, 0.0
        for item in batch:
            n = int(item.x.shape[0])
            if not item.future.done():
                mine = outputs if len(batch) == 1 else {k: v[offset : offset + n] for k, v in outputs.items()}
                item.future.set_result((mine, Timing(started - item.enqueued, compute, rows)))
            worst = max(worst, started - item.enqueued + compute)
            offset += n
        self._adapt(worst)

    async def _compute(self, x: torch.Tensor) -> tuple[Outputs, float | None]:
        """One batch through the executor (device seconds known), on the loop, or in a thread."""
        if self.executor is None and self.policy.inline:
            return self.run(x), None
        watch = asyncio.get_running_loop().call_later(self.policy.stall_report_s, self._report_stall, int(x.shape[0]), time.monotonic())
        try:
            if self.executor is not None:
                return await self.executor(self.run, x)
            return await asyncio.to_thread(self.run, x), None
        finally:
            watch.cancel()

    def _report_stall(self, rows: int, started: float) -> None:
        log.warning("%s: a batch of %d rows has been computing for %.1fs (still waiting); the other threads:\n%s",
                    self.name, rows, time.monotonic() - started, thread_stacks())

    def _fail(self, item: _Pending, error: Exception) -> None:
        if item.future.done():
            return
        if isinstance(error, MeshError):
            item.future.set_exception(error)
        else:
            log.error("%s: inference failed", self.name, exc_info=error)
            item.future.set_exception(error)

    def _adapt(self, worst_latency_s: float) -> None:
        """AIMD on the batching delay against the SLO."""
        if worst_latency_s > self.policy.slo_s:
            self.delay_s *= 0.9
        else:
            self.delay_s = min(self.policy.max_queue_delay_s, self.delay_s + self.policy.delay_step_s)

    # ------------------------------------------------------------------ lifecycle
    async def drain(self, timeout_s: float = 30.0) -> None:
        """Refuse new requests, let every queued and running one finish, stop the worker."""
        self._closed = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("%s: %d requests still in flight after %.0fs; cancelling", self.name, self.in_flight, timeout_s)
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(Unavailable(f"{self.name} was unloaded"))
