"""The GPU dispatcher on a real GPU: host outputs equal to the reference, device time from CUDA
events, concurrent versions launched from one thread without mixing their results, and serving
left untouched by a version tuning beside it."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from kernels.dispatch import score_ensemble
from tests.kernels.test_fused_scoring import make_ensemble

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def runner(packed):
    def run(x):
        out = score_ensemble(x, packed, precision="tf32")
        return {"score": out.score, "member_scores": out.member_scores, "confidence": out.confidence}
    return run


def test_batches_from_many_versions_come_back_on_the_host_and_right():
    from services.inference.gpu_dispatch import GpuDispatcher

    dispatcher = GpuDispatcher("cuda")
    models = [make_ensemble(99, hidden, method, seed=i) for i, (hidden, method) in
              enumerate([((0, 32), "weighted_average"), ((8, 16), "averaging"), ((0, 24, 8), "dynamic")])]
    on_device = [m.to("cuda") for m in models]
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


def test_serving_stays_right_while_another_version_tunes_beside_it():
    """Tuning captures CUDA graphs on streams it takes from PyTorch's pool, a hundred of them
    here: none may be the dispatcher's (a capture would swallow its launches), and none of its
    captures may make serving's calls fail."""
    from kernels.tuning import buckets_up_to, tune
    from services.inference.gpu_dispatch import GpuDispatcher

    dispatcher = GpuDispatcher("cuda")
    model = make_ensemble(99, (0, 32), "weighted_average", seed=0)
    serving, loading = model.to("cuda"), make_ensemble(99, (64, 64), "averaging", seed=1).to("cuda")
    x = torch.randn(64, 99)
    expected = score_ensemble(x, model, backend="reference")
    tuned = threading.Event()

    def load() -> None:
        try:
            tune(loading, torch.float32, "cuda", buckets_up_to(64), None, "tf32")
        finally:
            tuned.set()

    async def scenario():
        await dispatcher(runner(serving), x)  # compiled before the race
        tuner = threading.Thread(target=load)
        tuner.start()
        results = []
        while not tuned.is_set():
            results.append(await dispatcher(runner(serving), x))
        tuner.join()
        return results

    try:
        results = asyncio.run(scenario())
    finally:
        dispatcher.close()
    assert len(results) > 10
    for outputs, _ in results:
        torch.testing.assert_close(outputs["score"], expected.score, atol=2e-3, rtol=0)
