"""Running a pipeline: stages as a DAG (no gRPC here).

Stages run layer by layer: a stage starts once every stage it depends on is done, and the stages
of one layer (independent of each other) run concurrently; a linear pipeline runs with no task
per stage. Before it runs, its condition is tested on the request and on what earlier stages
produced (a false condition skips it). It gets a share (`timeout_share`) of the time left in the
request, never more. Its error policy was applied by its implementation (retry: more attempts
by the mesh client, within its budget — the one layer that retries; fallback: the route's
fallback ensemble). An error that remains then decides by the stage's kind:
- hard: the Score fails, with the stage named in the message and in the status details, and
  every stage still running is cancelled;
- soft: the Score goes on and says the stage was skipped (degraded);
- optional (or on_error: skip): the Score goes on without it.
A stage whose dependency did not complete is skipped. Per-stage latency and outcome are
reported through `on_stage`; `span` opens a trace span around each stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from domain.errors import DeadlineExceeded, InvalidArgument, MeshError
from services.router.routing_config import Stage
from services.router.rules import RequestView

OK, SKIPPED, FAILED = "ok", "skipped", "failed"

StageRun = Callable[[Stage, float], Awaitable[None]]
"""An implementation: runs the stage within `timeout` seconds, writing into the shared state."""


@dataclass
class PipelineRun:
    view: RequestView
    outputs: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    """Soft stages that failed or did not run: the response lists them."""


class StageFailed(MeshError):
    """A hard stage failed: the original status, the stage named in message and details."""

    def __init__(self, stage: str, error: MeshError) -> None:
        message = error.message if isinstance(error, InvalidArgument) else f"{stage}: {error.message}"
        super().__init__(message, error.reason or "STAGE_FAILED", {**error.info, "stage": stage})
        self.status = error.status
        self.retry_after_s = error.retry_after_s
        self.stage = stage


@functools.lru_cache(maxsize=64)
def layers(stages: tuple[Stage, ...]) -> tuple[tuple[Stage, ...], ...]:
    """The stages grouped so that every stage's dependencies are in earlier groups (computed
    once per pipeline): each group's stages can run together."""
    placed: dict[str, int] = {}
    for stage in stages:  # dependencies are listed before their dependents (validated)
        placed[stage.name] = 1 + max((placed[d] for d in stage.depends_on), default=-1)
    return tuple(tuple(s for s in stages if placed[s.name] == level) for level in range(max(placed.values()) + 1))


async def run(stages: tuple[Stage, ...], implementations: dict[str, StageRun], state: PipelineRun, deadline: float,
              on_stage: Callable[[str, str, float], None] = lambda *_: None,
              span: Callable[[str], AbstractContextManager] = lambda _: contextlib.nullcontext()) -> None:
    for layer in layers(stages):
        if len(layer) == 1:  # the common, linear case: no task, no future
            await _stage(layer[0], implementations[layer[0].name], state, deadline, on_stage, span)
            continue
        tasks = [asyncio.create_task(_stage(s, implementations[s.name], state, deadline, on_stage, span), name=f"stage-{s.name}") for s in layer]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            for task in tasks:  # a hard failure ends the request: nothing of it is left running
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _stage(stage: Stage, implementation: StageRun, state: PipelineRun, deadline: float, on_stage, span) -> str:
    if any(state.outcomes.get(d) != OK for d in stage.depends_on):
        return _record(stage, state, SKIPPED, 0.0, on_stage, degraded=stage.kind == "soft")
    if stage.when is not None:
        view = RequestView(state.view.context, state.view.categories, state.outputs)
        if not stage.when.matches(view):
            return _record(stage, state, SKIPPED, 0.0, on_stage, degraded=False)
    left = deadline - time.monotonic()
    if left <= 0:
        error: MeshError = DeadlineExceeded("the request's deadline passed before this stage")
    else:
        started = time.monotonic()
        try:
            with span(f"stage {stage.name}"):
                async with asyncio.timeout(left * stage.timeout_share):  # in this task: wait_for would start one per stage
                    await implementation(stage, left * stage.timeout_share)
            return _record(stage, state, OK, time.monotonic() - started, on_stage)
        except TimeoutError:
            error = DeadlineExceeded(f"did not finish within its {left * stage.timeout_share * 1000:.0f} ms")
        except MeshError as caught:
            error = caught
        _record(stage, state, FAILED, time.monotonic() - started, on_stage, degraded=stage.kind == "soft")
        if stage.kind == "hard" and stage.on_error != "skip" and not isinstance(error, InvalidArgument):
            raise StageFailed(stage.name, error) from None
        if isinstance(error, InvalidArgument):  # the caller's request: never degraded into an answer
            raise StageFailed(stage.name, error) from None
        return FAILED
    _record(stage, state, FAILED, 0.0, on_stage, degraded=stage.kind == "soft")
    if stage.kind == "hard" and stage.on_error != "skip":
        raise StageFailed(stage.name, error)
    return FAILED


def _record(stage: Stage, state: PipelineRun, outcome: str, seconds: float, on_stage, degraded: bool = False) -> str:
    state.outcomes[stage.name] = outcome
    if degraded:
        state.skipped.append(stage.name)
    on_stage(stage.name, outcome, seconds)
    return outcome
