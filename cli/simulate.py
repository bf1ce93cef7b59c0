"""`scoremesh simulate`: drive the running mesh with the synthetic ads generator and send back the
outcomes its ground-truth model draws, so the learning loop can be watched end to end: Scores
through the router, outcomes through `Monitoring/Feedback`, quality from `Monitoring/GetQuality`.

With `--shift-after N`, the world changes after N requests: the click model drifts (an ad's
quality score, which raised clicks, now lowers them), so the trained models are wrong from then on.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import numpy as np

from domain.features.raw import RawBatch
from mesh import tls
from mesh.config import MeshSettings
from mesh.discovery import open_registry
from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc, router_pb2_grpc
from services.router.converters import score_request_to_proto
from training.synthetic import LABELS, make_world, sample_request, true_probabilities

DATA_TYPES = ("search", "display", "conversion")
QUALITY_REVERSAL = 4.4
"""The click model's drift: the quality score's effect on the click logit, +2.2, becomes -2.2."""


@dataclass
class Tally:
    scores: Counter = field(default_factory=Counter)
    feedback: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    candidates: int = 0
    """Distinct ads over the Scores that succeeded: each gets one outcome per label."""


def outcome_probabilities(context, candidates, world, shifted: bool) -> dict[str, np.ndarray]:
    """The ground truth's probability of each label for each candidate (drifted when `shifted`)."""
    batch = RawBatch.from_request(context, candidates)
    probabilities = true_probabilities(batch, world)
    if shifted:
        p = np.clip(probabilities["click"], 1e-9, 1 - 1e-9)
        logit = np.log(p / (1 - p)) - QUALITY_REVERSAL * (batch.quality_score - 0.5)
        probabilities["click"] = 1.0 / (1.0 + np.exp(-logit))
    return probabilities


async def simulate(settings: MeshSettings, requests: int, candidates: int, concurrency: int, seed: int, shift_after: int | None,
                   timeout: float = 5.0, progress=print, feedback_delay_s: float = 1.0) -> Tally:
    registry = open_registry(settings)
    routers, monitors = registry.resolve("router"), registry.resolve("monitoring")
    if not routers:
        raise RuntimeError(f"no healthy router (is `scoremesh up` running with state in {settings.state_dir}?)")
    if not monitors:
        raise RuntimeError("no healthy monitoring instance to send outcomes to")
    channels = tls.Channels(tls.for_cli(settings))
    router_channel = channels.aio(routers[0].address)
    # Scores' telemetry is spread over monitoring instances: every outcome goes to each, and
    # each joins the Scores it has (the others count it unknown).
    monitoring_channels = [channels.aio(m.address) for m in monitors]
    router = router_pb2_grpc.RouterStub(router_channel)
    world, rng, tally = make_world(0), np.random.default_rng(seed), Tally()
    queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
    numbers = itertools.count()

    async def caller() -> None:
        while (i := next(numbers)) < requests:
            context, ads = sample_request(candidates, DATA_TYPES[i % len(DATA_TYPES)], seed=seed * 1_000_003 + i)
            request_id = f"sim-{seed}-{i}"
            try:
                response = await router.Score(score_request_to_proto(request_id, context, ads), timeout=timeout)
            except grpc.aio.AioRpcError as error:
                tally.scores[error.code().name] += 1
                continue
            tally.scores["OK"] += 1
            tally.models[f"{response.model.name} v{response.model.version}"] += 1
            probabilities = outcome_probabilities(context, ads, world, shift_after is not None and i >= shift_after)
            first = sorted({ad_id: i for i, ad_id in reversed(list(enumerate(ads.ad_id)))}.values())  # an ad shown twice: one outcome
            tally.candidates += len(first)
            for label in LABELS:
                drawn = rng.random(len(ads)) < probabilities[label]
                for ad_id, positive in ((ads.ad_id[k], drawn[k]) for k in first):
                    outcome = monitoring_pb2.Outcome(request_id=request_id, ad_id=ad_id, label=label, positive=bool(positive))
                    await queue.put((time.monotonic(), outcome))
            if (i + 1) % max(1, requests // 10) == 0:
                progress(f"{i + 1}/{requests} Scores sent")

    # Outcomes in batches of up to 500, each batch to every monitoring instance's stream.
    fanout = [asyncio.Queue(maxsize=100) for _ in monitoring_channels]

    async def pump() -> None:
        done = False
        while not done:
            batch = []
            while len(batch) < 500 and (not batch or not queue.empty()):
                item = await queue.get()
                if item is None:
                    done = True
                    break
                # An outcome happens a while after its Score (and its Score's telemetry, sent in
                # batches, must reach monitoring first: an outcome that outruns it is unknown).
                await asyncio.sleep(max(0.0, item[0] + feedback_delay_s - time.monotonic()))
                batch.append(item[1])
            if batch:
                message = monitoring_pb2.FeedbackRequest(outcomes=batch)
                for q in fanout:
                    await q.put(message)
        for q in fanout:
            await q.put(None)

    async def stream(q: asyncio.Queue):
        while (message := await q.get()) is not None:
            yield message

    async def send(channel, q: asyncio.Queue):
        return await monitoring_pb2_grpc.MonitoringStub(channel).Feedback(stream(q), timeout=max(60.0, requests * 0.05))

    sending = [asyncio.create_task(send(c, q)) for c, q in zip(monitoring_channels, fanout)]
    pumping = asyncio.create_task(pump())
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    await queue.put(None)
    await pumping
    for answer in await asyncio.gather(*sending):
        for name in ("joined", "late", "unknown", "duplicate", "other_label"):
            tally.feedback[name] += getattr(answer, name)
    await router_channel.close()
    for channel in monitoring_channels:
        await channel.close()
    return tally


def quality_report(settings: MeshSettings, window_s: float = 3600.0) -> list[tuple[str, monitoring_pb2.GetQualityResponse]]:
    """Every ensemble's quality as each monitoring instance sees it."""
    out = []
    channels = tls.Channels(tls.for_cli(settings))
    for instance in open_registry(settings).resolve("monitoring"):
        with channels.sync(instance.address) as channel:
            stub = monitoring_pb2_grpc.MonitoringStub(channel)
            for model in ("ctr_ensemble", "cvr_ensemble", "quality_ensemble", "ctr_stacking"):
                view = stub.GetQuality(monitoring_pb2.GetQualityRequest(model_name=model, window_seconds=window_s), timeout=10)
                if view.labelled:
                    out.append((model, view))
    return out


def run(settings: MeshSettings, requests: int, candidates: int, concurrency: int, seed: int, shift_after: int | None) -> int:
    try:
        tally = asyncio.run(simulate(settings, requests, candidates, concurrency, seed, shift_after))
    except RuntimeError as error:
        print(f"scoremesh: {error}", file=sys.stderr)
        return 1
    print(f"Scores: {dict(tally.scores)}; by model: {dict(tally.models)}")
    print(f"outcomes: {dict(tally.feedback)}")
    for model, view in quality_report(settings):
        auc = "n/a" if math.isnan(view.auc) else f"{view.auc:.4f}"
        print(f"{model:<17} {view.labelled:>7} labelled  rate {view.positive_rate:.4f}  mean score {view.mean_score:.4f}  "
              f"AUC {auc}  log loss {view.log_loss:.4f}  ECE {view.calibration_error:.4f}")
    return 0 if tally.scores["OK"] else 1
