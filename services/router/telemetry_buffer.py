"""Telemetry leaves the hot path through a bounded buffer.

`offer` never blocks and never fails: when the buffer is full (monitoring slow or absent) the
record is dropped and counted. A background sender drains it in batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


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
