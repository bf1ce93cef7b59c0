"""The GPU dispatcher on a real GPU: host outputs equal to the reference, device time from CUDA
events, and concurrent versions launched from one thread without mixing their results."""

from __future__ import annotations

import asyncio

import pytest
import torch

from kernels.dispatch import score_ensemble
from tests.kernels.test_fused_scoring import make_ensemble

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_batches_from_many_versions_come_back_on_the_host_and_right():
    from services.inference.gpu_dispatch import GpuDispatcher

    dispatcher = GpuDispatcher("cuda")
    models = [make_ensemble(99, hidden, method, seed=i) for i, (hidden, method) in
              enumerate([((0, 32), "weighted_average"), ((8, 16), "averaging"), ((0, 24, 8), "dynamic")])]
    on_device = [m.to("cuda") for m in models]

    def runner(packed):
        def run(x):
            out = score_ensemble(x, packed, precision="tf32")
            return {"score": out.score, "member_scores": out.member_scores, "confidence": out.confidence}
        return run

    inputs = [torch.randn(n, 99) for n in (1, 37, 1024) for _ in models]

    async def scenario():
        # Compile first, for every shape below (an untuned batch size picks its own blocks): the
        # timings below are then the kernel's alone.
        for i, x in enumerate(inputs):
            await dispatcher(runner(on_device[i % 3]), x)
        return await asyncio.gather(*(dispatcher(runner(on_device[i % 3]), x) for i, x in enumerate(inputs)))

    try:
        results = asyncio.run(scenario())
    finally:
        dispatcher.close()
    for i, ((outputs, device_s), x) in enumerate(zip(results, inputs)):
        expected = score_ensemble(x, models[i % 3], backend="reference")
        assert outputs["score"].device.type == "cpu" and outputs["score"].is_pinned()
        torch.testing.assert_close(outputs["score"], expected.score, atol=2e-3, rtol=0)
        torch.testing.assert_close(outputs["member_scores"], expected.member_scores, atol=2e-3, rtol=0)
        assert 0 < device_s < 0.1
