"""`scoremesh.v1.Monitoring`: protobuf in, protobuf out; the work is in windows.py and slo.py."""

from __future__ import annotations

import asyncio
import collections

from prometheus_client import Counter

from domain.errors import FailedPrecondition

from scoremesh.v1 import monitoring_pb2, monitoring_pb2_grpc
from services.monitoring import converters
from services.monitoring.alerts import Alerting, Incident
from mesh.admin_auth import check_bearer
from mesh.handlers import header
from services.monitoring.experiments import analyse
from services.monitoring.feedback import FeedbackJoiner
from services.monitoring.learning import OnlineLearning
from services.monitoring.live import Baselines, LiveSamples, judge
from services.monitoring.quality import QualityWindows, quality_of
from services.monitoring.slo import Objective, evaluate
from services.monitoring.windows import TelemetryWindows

OUTCOMES = Counter("scoremesh_feedback_outcomes_total", "Feedback outcomes, by how they ended: joined, late, unknown, duplicate, "
                   "other_label.", ["result"])
RECORDS = Counter("scoremesh_monitoring_records_total", "Telemetry records accepted, by reporting service.", ["service", "model", "status"])


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServicer):
    def __init__(self, windows: TelemetryWindows, objectives: list[Objective], window_scale: float = 1.0,
                 live: LiveSamples | None = None, baselines: Baselines | None = None, alerting: Alerting | None = None,
                 feedback: FeedbackJoiner | None = None, quality: QualityWindows | None = None,
                 learning: OnlineLearning | None = None, admin_token: str | None = None) -> None:
        self.windows = windows
        self.feedback, self.quality, self.learning, self.admin_token = feedback, quality, learning, admin_token
        self.alerting = alerting
        # Scores and candidates per model since the cost tracker last read them (services.monitoring.cost).
        self.scores: dict[str, int] = {}
        self.candidates: dict[str, int] = {}
        self._watchers: set[asyncio.Queue] = set()
        self.live = live
        self.baselines = baselines
        self.objectives = objectives
        self.window_scale = window_scale

    async def Report(self, request_iterator, context):
        accepted = 0
        async for batch in request_iterator:
            samples = converters.live_samples_from_proto(batch) if self.live is not None else ()
            scored = converters.scored_from_proto(batch) if self.feedback is not None else ()
            for record in converters.records_from_proto(batch):
                self.windows.add(record)
                if record.status == "OK" and record.model_name and record.service == "router":  # Scores, counted once
                    self.scores[record.model_name] = self.scores.get(record.model_name, 0) + 1
                    self.candidates[record.model_name] = self.candidates.get(record.model_name, 0) + record.candidates
                RECORDS.labels(record.service, record.model_name, record.status).inc()
                accepted += 1
            for sample in samples:
                self.live.add(*sample)
            for request_id, score in scored:
                self.feedback.scored.add(request_id, score)
        return monitoring_pb2.ReportResponse(accepted=accepted)

    async def Feedback(self, request_iterator, context):
        if self.feedback is None or self.quality is None:
            raise FailedPrecondition("feedback is not joined by this instance")
        total: collections.Counter[str] = collections.Counter()
        async for batch in request_iterator:
            outcomes = converters.outcomes_from_proto(batch)
            candidates, counts = self.feedback.match(outcomes)
            added = await asyncio.to_thread(self.feedback.store.add, candidates) if candidates else []  # SQLite: off the event loop
            joined, counts = self.feedback.settle(candidates, added, counts)
            for j in joined:
                self.quality.add(j)
            if self.learning is not None and joined:
                self.learning.feed(joined)
            total.update(counts)
            for result, count in counts.items():
                OUTCOMES.labels(result).inc(count)
        return converters.feedback_to_proto(total)

    async def GetQuality(self, request, context):
        if self.quality is None:
            raise FailedPrecondition("feedback is not joined by this instance")
        window_s, model, version, route, arm = converters.quality_request_from_proto(request)
        chosen = self.quality.select(window_s, model, version, route, arm)  # on the loop, where joins are added
        return converters.quality_to_proto(await asyncio.to_thread(quality_of, chosen))

    async def GetSLO(self, request, context):
        window_s, model_name, version, route, arm, service = converters.slo_request_from_proto(request)
        statuses = [evaluate(self.windows, o, self.window_scale, model_name, version) for o in self.objectives]
        view = self.windows.view(window_s, model_name, version, route=route, split_arm=arm, service=service)
        return converters.slo_to_proto(view, self.windows.total, statuses)

    async def GetDrift(self, request, context):
        model, version, window_s = converters.drift_request_from_proto(request)
        if self.live is None or self.baselines is None:
            raise FailedPrecondition("drift is not tracked by this instance")
        # KS and PSI over up to 20,000 x dim values: off the event loop.
        result = await asyncio.to_thread(judge, self.live, self.baselines, model, version, window_s)
        return converters.drift_to_proto(result)

    async def GetExperiment(self, request, context):
        if self.quality is None:
            raise FailedPrecondition("feedback is not joined by this instance")
        route, window_s = converters.experiment_request_from_proto(request)

        by_route: dict[str, list] = {}
        for j in self.quality.select(window_s, route=route):  # on the loop, where joins are added
            by_route.setdefault(j.route, []).append(j)
        # The tests over many outcomes: off the loop.
        analysed = await asyncio.to_thread(lambda: {name: analyse(rows) for name, rows in by_route.items()})
        return converters.experiment_to_proto(analysed)

    async def GetWeighting(self, request, context):
        model, _, _ = converters.weighting_request_from_proto(request)
        return monitoring_pb2.GetWeightingResponse(status=await self._weighting(model))

    async def SetWeighting(self, request, context):
        check_bearer(header(context, "authorization"), self.admin_token, "weighting changes")
        model, action, reason = converters.weighting_request_from_proto(request)
        learning = self._learning()
        reason = reason or f"{action} by an operator"
        # On the event loop, as feedback is learned from (a few small files: no thread, no lock).
        if action == "rollback":
            learning.rollback(model, reason)
        else:
            learning.set_enabled(model, action == "enable", reason)
        return monitoring_pb2.SetWeightingResponse(status=await self._weighting(model))

    def _learning(self) -> OnlineLearning:
        if self.learning is None:
            raise FailedPrecondition("online weighting is not run by this instance")
        return self.learning

    async def _weighting(self, model: str) -> monitoring_pb2.WeightingStatus:
        enabled, versions = self._learning().status(model)
        return converters.weighting_to_proto(model, enabled, versions)

    def publish(self, incidents: list[Incident]) -> None:
        """Hand changed incidents to every WatchAlerts stream (a slow watcher's queue is bounded:
        it loses the oldest changes, never blocks the others)."""
        for queue in self._watchers:
            for incident in incidents:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(incident)

    async def WatchAlerts(self, request, context):
        if self.alerting is None:
            raise FailedPrecondition("alerting is not configured on this instance")
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._watchers.add(queue)
        try:
            for incident in reversed(await asyncio.to_thread(self.alerting.store.list, False)):  # oldest first
                yield monitoring_pb2.WatchAlertsResponse(incident=converters.incident_to_proto(incident))
            while True:
                yield monitoring_pb2.WatchAlertsResponse(incident=converters.incident_to_proto(await queue.get()))
        finally:
            self._watchers.discard(queue)

    async def ListIncidents(self, request, context):
        open_only, limit = converters.incidents_request_from_proto(request)
        if self.alerting is None:
            raise FailedPrecondition("alerting is not configured on this instance")
        incidents = await asyncio.to_thread(self.alerting.store.list, not open_only, limit)
        return monitoring_pb2.ListIncidentsResponse(incidents=[converters.incident_to_proto(i) for i in incidents])

    def take_usage(self) -> tuple[dict[str, int], dict[str, int]]:
        """Scores and candidates per model since the last call (and start again from zero)."""
        scores, candidates = self.scores, self.candidates
        self.scores, self.candidates = {}, {}
        return scores, candidates
