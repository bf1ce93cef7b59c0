"""The GPU side of serving: one dispatcher thread and one CUDA stream per device.

Every batch of every model version on a device is launched from this one thread, in order, on
this one stream. That rules out races by construction: the kernels' split scratch is per stream,
and nothing launches concurrently from two threads. The thread copies the batch to the device,
brackets the kernel with CUDA events (the compute time the batcher's statistics report is the
GPU's, not the launch's), copies the outputs into pinned host memory without blocking, and waits
for that copy itself, so the event loop never blocks on the GPU and gets host tensors back.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import torch

from services.inference.batching import Outputs, RunBatch


class GpuDispatcher:
    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gpu-dispatch-{self.device}")
        # High priority: PyTorch hands out streams round-robin from a pool per priority, so a
        # default-priority stream (the tuner's, taken per measurement while a new version loads)
        # could be this very stream, and a CUDA-graph capture on it would swallow serving's
        # launches. A pool of its own rules that out; and serving's blocks are then scheduled
        # ahead of a loading version's tuning.
        self._stream = torch.cuda.Stream(self.device, priority=-1)

    def _run(self, run: RunBatch, x: torch.Tensor) -> tuple[Outputs, float]:
        with torch.cuda.device(self.device), torch.cuda.stream(self._stream):
            started, finished = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            x = x.pin_memory().to(self.device, non_blocking=True) if x.device.type == "cpu" else x
            started.record(self._stream)
            outputs = run(x)
            finished.record(self._stream)
            host = {}
            for name, value in outputs.items():
                host[name] = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
                host[name].copy_(value, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self._stream)
            copied.synchronize()  # this thread waits, not the event loop
            return host, started.elapsed_time(finished) / 1e3

    async def __call__(self, run: RunBatch, x: torch.Tensor) -> tuple[Outputs, float]:
        """Run one batch on the device: (outputs on the host, GPU seconds of the kernel)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, run, x)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
