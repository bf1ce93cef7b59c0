"""The pipeline engine with plain coroutines as stages: DAG concurrency, conditions, kinds,
cancellation, per-stage timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest

from domain.errors import MeshError, Unavailable
from domain.request import Context
from services.router import pipeline
from services.router.routing_config import STAGE_OUTPUTS, Stage
from services.router.rules import FIELDS, RequestView, compile_condition


def state() -> pipeline.PipelineRun:
    return pipeline.PipelineRun(RequestView(Context("search")))


def run(stages, implementations, timeout=2.0):
    run_state = state()
    seen = []

    async def go():
        await pipeline.run(tuple(stages), implementations, run_state, time.monotonic() + timeout, lambda *a: seen.append(a))

    asyncio.run(go())
    return run_state, seen


def test_independent_stages_run_concurrently_and_dependents_wait():
    log = []

    def stage(name, seconds):
        async def body(spec, timeout):
            log.append(f"{name} start")
            await asyncio.sleep(seconds)
            log.append(f"{name} end")

        return body

    started = time.monotonic()
    result, seen = run(
        [Stage("a"), Stage("b"), Stage("c", depends_on=("a", "b"))],
        {"a": stage("a", 0.2), "b": stage("b", 0.2), "c": stage("c", 0.0)},
    )
    elapsed = time.monotonic() - started
    assert elapsed < 0.35  # a and b overlapped
    assert log.index("c start") > max(log.index("a end"), log.index("b end"))
    assert result.outcomes == {"a": "ok", "b": "ok", "c": "ok"} and {s for s, _, _ in seen} == {"a", "b", "c"}


async def failing(spec, timeout):
    raise Unavailable("down")


async def fine(spec, timeout):
    return None


def test_a_soft_failure_is_listed_and_its_dependents_skipped():
    result, _ = run([Stage("a", kind="soft"), Stage("b", depends_on=("a",), kind="soft"), Stage("c")],
                    {"a": failing, "b": fine, "c": fine})
    assert result.outcomes == {"a": "failed", "b": "skipped", "c": "ok"}
    assert result.skipped == ["a", "b"]


def test_an_optional_failure_is_silent():
    result, _ = run([Stage("a", kind="optional"), Stage("c")], {"a": failing, "c": fine})
    assert result.outcomes == {"a": "failed", "c": "ok"} and result.skipped == []


def test_a_hard_failure_ends_the_request_and_cancels_what_still_runs():
    cancelled = []

    async def long(spec, timeout):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def fail_soon(spec, timeout):
        await asyncio.sleep(0.05)
        raise Unavailable("down")

    started = time.monotonic()
    with pytest.raises(pipeline.StageFailed) as raised:
        run([Stage("slow"), Stage("bad")], {"slow": long, "bad": fail_soon})
    assert time.monotonic() - started < 1.0 and cancelled == [True]
    assert raised.value.status == "UNAVAILABLE" and raised.value.info["stage"] == "bad" and raised.value.message == "bad: down"


def test_a_condition_on_earlier_outputs_decides_whether_a_stage_runs():
    when = compile_condition({"field": "model_inference.confidence_mean", "op": "gt", "value": 0.5}, "when", set(FIELDS) | set(STAGE_OUTPUTS))

    def producing(value):
        async def body(spec, timeout):
            run_state.outputs["model_inference.confidence_mean"] = value

        return body

    for value, expected in ((0.9, "ok"), (0.2, "skipped")):
        run_state = state()

        async def go():
            await pipeline.run((Stage("model_inference"), Stage("post", depends_on=("model_inference",), when=when)),
                               {"model_inference": producing(value), "post": fine}, run_state, time.monotonic() + 1)

        asyncio.run(go())
        assert run_state.outcomes["post"] == expected and run_state.skipped == []


def test_a_stage_times_out_within_its_share_of_the_deadline():
    async def slow(spec, timeout):
        await asyncio.sleep(2)

    started = time.monotonic()
    with pytest.raises(MeshError) as raised:
        run([Stage("a", timeout_share=0.25)], {"a": slow}, timeout=0.8)
    assert raised.value.status == "DEADLINE_EXCEEDED" and time.monotonic() - started < 0.5


def test_on_error_skip_lets_even_a_hard_stage_be_passed_over():
    result, _ = run([Stage("a", on_error="skip"), Stage("b", depends_on=("a",)), Stage("c")], {"a": failing, "b": fine, "c": fine})
    assert result.outcomes == {"a": "failed", "b": "skipped", "c": "ok"} and result.skipped == []
