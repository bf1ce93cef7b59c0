"""Telemetry leaves the hot path through a bounded buffer, and reaches monitoring over Report
streams (the router's and inference's).

`offer` never blocks and never fails: when the buffer is full (monitoring slow or absent) the
record is dropped and counted. A background sender drains it in batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class TelemetryBuffer:
    def __init__(self, capacity: int = 10_000, on_drop: Callable[[], None] | None = None) -> None:
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=capacity)
        self._on_drop = on_drop
        self.dropped = 0
        self.accepted = 0

    def offer(self, record: dict[str, Any]) -> bool:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return False
        self.accepted += 1
        return True

    async def next_batch(self, max_records: int = 256, max_wait_s: float = 0.2) -> list[dict[str, Any]]:
        """Wait for at least one record, let more gather for `max_wait_s`, then take up to
        `max_records`: one wake-up per batch, not one per record."""
        batch = [await self._queue.get()]
        if self._queue.qsize() + 1 < max_records:
            await asyncio.sleep(max_wait_s)
        while len(batch) < max_records and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    def __len__(self) -> int:
        return self._queue.qsize()


async def stream_telemetry(monitoring, buffer: TelemetryBuffer, to_proto: Callable[[list[dict[str, Any]]], Any],
                           on_sent: Callable[[int], None] | None = None, refresh_s: float = 1.0) -> None:
    """Drain `buffer` into one Report stream per monitoring instance (mesh.client.ServiceClient
    `monitoring`): batches go round-robin to the streams whose small queue has room, so
    telemetry spreads over the instances and a slow one takes less. A stream that ends is
    reopened on the next refresh; with no stream, records wait in the buffer (and are dropped,
    counted, when it is full)."""
    queues: dict[str, asyncio.Queue] = {}
    streams: dict[str, asyncio.Task] = {}
    room = asyncio.Event()  # set when a stream took a batch or a new stream opened

    async def follow(address: str, queue: asyncio.Queue) -> None:
        async def batches():
            while True:
                batch = await queue.get()
                room.set()
                yield to_proto(batch)
                if on_sent is not None:
                    on_sent(len(batch))

        try:
            await monitoring.stub(address).Report(batches())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # any end of the stream: reopened on the next refresh
            log.warning("telemetry stream to monitoring %s ended: %s", address, error)
            monitoring.invalidate()

    async def refresh() -> None:
        while True:
            try:
                instances = await monitoring.instances()
            except Exception as error:
                log.warning("no monitoring instances to send telemetry to: %s", error)
                instances = []
            for instance in instances:
                task = streams.get(instance.address)
                if task is None or task.done():
                    queues[instance.address] = asyncio.Queue(maxsize=2)
                    streams[instance.address] = asyncio.create_task(follow(instance.address, queues[instance.address]),
                                                                    name=f"telemetry-{instance.address}")
                    room.set()
            for address in [a for a, task in streams.items() if task.done()]:
                del streams[address], queues[address]
            if not instances:
                monitoring.invalidate()
            await asyncio.sleep(refresh_s)

    refresher = asyncio.create_task(refresh(), name="telemetry-refresh")
    turn = 0
    try:
        while True:
            batch = await buffer.next_batch()
            while True:  # the next stream with room; none: wait for one (the buffer keeps filling meanwhile)
                free = [queues[a] for a in sorted(queues) if not streams[a].done() and not queues[a].full()]
                if free:
                    free[turn % len(free)].put_nowait(batch)
                    turn += 1
                    break
                room.clear()
                await room.wait()
    finally:
        refresher.cancel()
        for task in streams.values():
            task.cancel()
