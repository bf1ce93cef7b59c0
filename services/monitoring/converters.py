"""scoremesh.v1 Monitoring messages <-> the telemetry store's types. Pure functions."""

from __future__ import annotations

import math

import numpy as np

from domain.errors import InvalidArgument, quote
from domain.models.ensemble_weights import WeightsVersion
from scoremesh.v1 import monitoring_pb2
from services.monitoring.alerts import Incident
from services.monitoring.drift import DriftReport, FeatureDrift
from services.monitoring.experiments import ArmResult
from services.monitoring.feedback import LABELS, Outcome, Scored
from services.monitoring.live import DriftResult
from services.monitoring.quality import QualityView
from services.monitoring.slo import ObjectiveStatus
from services.monitoring.windows import Record, WindowView

DEFAULT_WINDOW_S = 300.0
REPORTERS = ("router", "inference")
MAX_NAME_LENGTH = 128
# "OK" or a gRPC status name: statuses become metric labels, so only these are accepted.
STATUSES = frozenset((
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
))


def records_from_proto(batch: monitoring_pb2.ReportRequest) -> list[Record]:
    """The records of one Report batch; a record with a latency or time that is not a finite
    number is refused whole (naming it), never stored."""
    records = []
    for i, r in enumerate(batch.records):
        for name in ("latency_ms", "timestamp", "inference_ms", "inference_attempt_ms"):
            value = getattr(r, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidArgument(f"records[{i}].{name}: must be a finite number >= 0 (got {value})")
        status = r.status or "OK"
        if status not in STATUSES:
            raise InvalidArgument(f"records[{i}].status: must be OK or a gRPC status name (got {quote(status)})")
        if len(r.model_name) > MAX_NAME_LENGTH:
            raise InvalidArgument(f"records[{i}].model_name: at most {MAX_NAME_LENGTH} characters (got {quote(r.model_name)})")
        if len(r.model_version) > MAX_NAME_LENGTH:
            raise InvalidArgument(f"records[{i}].model_version: at most {MAX_NAME_LENGTH} characters (got {quote(r.model_version)})")
        if r.candidates < 0:
            raise InvalidArgument(f"records[{i}].candidates: must be >= 0 (got {r.candidates})")
        service = r.service or "router"
        if service not in REPORTERS:
            raise InvalidArgument(f"records[{i}].service: must be one of {', '.join(REPORTERS)} (got {quote(service)})")
        # A router's record is keyed by the replica that answered; an inference record by its reporter.
        instance = r.inference_instance_id if service == "router" else r.instance_id
        if r.inference_stalled and (service != "router" or not instance):
            raise InvalidArgument(f"records[{i}].inference_stalled: a router's event naming the replica in inference_instance_id")
        records.append(Record(r.model_name, status, r.latency_ms, r.timestamp, r.model_version, r.candidates, r.inference_ms,
                              r.route[:100], r.split_arm[:100], service, instance[:100],
                              r.inference_attempt_ms if service == "router" else 0.0, service == "router" and r.inference_outrun,
                              r.inference_stalled))
    return records


def slo_request_from_proto(request: monitoring_pb2.GetSLORequest) -> tuple[float, str, str, str, str, str]:
    """(window in seconds, model name, version, route, split arm — "" means every one —, and
    the reporting service, router by default)."""
    window = request.window_seconds
    if not math.isfinite(window) or window < 0:
        raise InvalidArgument(f"window_seconds: must be a finite number >= 0 (got {window})")
    service = request.service or "router"
    if service not in REPORTERS:
        raise InvalidArgument(f"service: must be one of {', '.join(REPORTERS)} (got {quote(service)})")
    return window or DEFAULT_WINDOW_S, request.model_name, request.model_version, request.route, request.split_arm, service


def objective_to_proto(status: ObjectiveStatus) -> monitoring_pb2.ObjectiveStatus:
    o = status.objective
    return monitoring_pb2.ObjectiveStatus(
        name=o.name, kind=o.kind, target=o.target, threshold_ms=o.threshold_ms, budget_remaining=status.budget_remaining,
        windows=[monitoring_pb2.BurnWindow(factor=w.factor, long_seconds=w.long_s, short_seconds=w.short_s, long_burn_rate=w.long_burn,
                                           short_burn_rate=w.short_burn, firing=w.firing) for w in status.windows],
        firing=bool(status.firing),
    )


def slo_to_proto(view: WindowView, total_records: int, objectives: list[ObjectiveStatus] = ()) -> monitoring_pb2.GetSLOResponse:
    return monitoring_pb2.GetSLOResponse(
        requests=view.requests,
        availability=view.availability,
        error_rate=view.error_rate,
        p50_ms=view.p50_ms,
        p95_ms=view.p95_ms,
        p99_ms=view.p99_ms,
        requests_per_second=view.requests_per_second,
        total_records=total_records,
        objectives=[objective_to_proto(s) for s in objectives],
    )


MAX_FEATURES = 65_536


def live_samples_from_proto(batch: monitoring_pb2.ReportRequest) -> list[tuple[str, str, float, np.ndarray | None, np.ndarray]]:
    """(model, version, timestamp, input row, scores) of each record, for drift; a row or score
    that is not finite is refused whole (naming it)."""
    samples = []
    for i, r in enumerate(batch.records):
        if r.features_raw:
            if len(r.features_raw) % 4:
                raise InvalidArgument(f"records[{i}].features_raw: float32 values, 4 bytes each (got {len(r.features_raw)} bytes)")
            row = np.frombuffer(r.features_raw, dtype="<f4")
            name = "features_raw"
        else:
            row = np.fromiter(r.features, dtype=np.float32, count=len(r.features))
            name = "features"
        if len(row) > MAX_FEATURES:
            raise InvalidArgument(f"records[{i}].{name}: at most {MAX_FEATURES} values (got {len(row)})")
        scores = np.fromiter(r.scores, dtype=np.float64, count=len(r.scores))
        for field, values in ((name, row), ("scores", scores)):
            if not np.isfinite(values).all():
                raise InvalidArgument(f"records[{i}].{field}: every value must be a finite number")
        if r.service in ("", "router") and not r.inference_stalled:  # Scores carry the rows and scores drift is judged on
            samples.append((r.model_name, r.model_version, r.timestamp, row if len(row) else None, scores))
    return samples


def drift_request_from_proto(request: monitoring_pb2.GetDriftRequest) -> tuple[str, str, float]:
    if not request.model_name:
        raise InvalidArgument("model_name: required")
    if len(request.model_name) > MAX_NAME_LENGTH or len(request.model_version) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"model_name, model_version: at most {MAX_NAME_LENGTH} characters (got {quote(request.model_name)})")
    window = request.window_seconds
    if not math.isfinite(window) or window < 0:
        raise InvalidArgument(f"window_seconds: must be a finite number >= 0 (got {window})")
    return request.model_name, request.model_version, window or DEFAULT_WINDOW_S


def _feature_to_proto(f: FeatureDrift) -> monitoring_pb2.FeatureDrift:
    return monitoring_pb2.FeatureDrift(name=f.name, psi=f.psi, psi_threshold=f.psi_threshold, ks_statistic=f.ks_statistic,
                                       ks_p_value=f.ks_p_value, drifted=f.drifted)


def drift_to_proto(result: DriftResult) -> monitoring_pb2.GetDriftResponse:
    features: DriftReport = result.features
    response = monitoring_pb2.GetDriftResponse(
        model_name=result.model, model_version=result.version, samples=features.samples, judged=features.judged,
        features=[_feature_to_proto(f) for f in features.features],
        drifted=[f.name for f in features.drifted] + (["score"] if result.scores.drifted else []),
    )
    if result.scores.features:
        response.scores.CopyFrom(_feature_to_proto(result.scores.features[0]))
    return response


def incident_to_proto(incident: Incident) -> monitoring_pb2.Incident:
    return monitoring_pb2.Incident(
        rule=incident.rule, target=incident.target, severity=incident.severity, message=incident.message, count=incident.count,
        first_seen=incident.first_seen, last_seen=incident.last_seen, status=incident.status, resolved_at=incident.resolved_at,
        signal=incident.signal, value=incident.value,
    )


def incidents_request_from_proto(request: monitoring_pb2.ListIncidentsRequest) -> tuple[bool, int]:
    if request.limit < 0 or request.limit > 1000:
        raise InvalidArgument(f"limit: must be in [0, 1000] (got {request.limit})")
    return request.open_only, request.limit or 100


MAX_KEY_LENGTH = 256
MAX_OUTCOMES = 10_000
DEFAULT_QUALITY_WINDOW_S = 3600.0


def scored_from_proto(batch: monitoring_pb2.ReportRequest) -> list[tuple[str, Scored]]:
    """(request_id, what was scored) of each successful Score in a batch that names its
    candidates; member scores that do not fit the candidates and members, or are not finite,
    are refused whole (naming the record)."""
    scored = []
    for i, r in enumerate(batch.records):
        if r.service not in ("", "router") or r.status not in ("", "OK") or not r.ad_ids:
            continue
        n, m = len(r.ad_ids), len(r.member_names)
        if len(r.scores) != n:
            raise InvalidArgument(f"records[{i}].scores: one per ad_id ({n}), got {len(r.scores)}")
        if len(r.member_scores) != n * m:
            raise InvalidArgument(f"records[{i}].member_scores: len(ad_ids) x len(member_names) = {n * m} values, got {len(r.member_scores)}")
        members = np.fromiter(r.member_scores, dtype=np.float64, count=n * m).reshape(n, m)
        if not np.isfinite(members).all():
            raise InvalidArgument(f"records[{i}].member_scores: every value must be a finite number")
        scored.append((r.request_id, Scored(r.model_name, r.model_version, r.route[:100], r.split_arm[:100], r.timestamp,
                                            tuple(r.ad_ids), np.fromiter(r.scores, dtype=np.float64, count=n), tuple(r.member_names), members)))
    return scored


def outcomes_from_proto(request: monitoring_pb2.FeedbackRequest) -> list[Outcome]:
    if len(request.outcomes) > MAX_OUTCOMES:
        raise InvalidArgument(f"outcomes: at most {MAX_OUTCOMES} per message (got {len(request.outcomes)})")
    outcomes = []
    for i, o in enumerate(request.outcomes):
        for name in ("request_id", "ad_id"):
            value = getattr(o, name)
            if not value or len(value) > MAX_KEY_LENGTH:
                raise InvalidArgument(f"outcomes[{i}].{name}: 1 to {MAX_KEY_LENGTH} characters (got {quote(value)})")
        if o.label not in LABELS:
            raise InvalidArgument(f"outcomes[{i}].label: must be one of {', '.join(LABELS)} (got {quote(o.label)})")
        if not math.isfinite(o.timestamp) or o.timestamp < 0:
            raise InvalidArgument(f"outcomes[{i}].timestamp: must be a finite number >= 0 (got {o.timestamp})")
        outcomes.append(Outcome(o.request_id, o.ad_id, o.label, o.positive, o.timestamp))
    return outcomes


def feedback_to_proto(counts) -> monitoring_pb2.FeedbackResponse:
    return monitoring_pb2.FeedbackResponse(joined=counts["joined"], late=counts["late"], unknown=counts["unknown"],
                                           duplicate=counts["duplicate"], other_label=counts["other_label"])


def quality_request_from_proto(request: monitoring_pb2.GetQualityRequest) -> tuple[float, str, str, str, str]:
    """(window in seconds, model, version, route, split arm; "" means every one)."""
    if not request.model_name:
        raise InvalidArgument("model_name: required")
    for name in ("model_name", "model_version", "route", "split_arm"):
        if len(getattr(request, name)) > MAX_NAME_LENGTH:
            raise InvalidArgument(f"{name}: at most {MAX_NAME_LENGTH} characters (got {quote(getattr(request, name))})")
    window = request.window_seconds
    if not math.isfinite(window) or window < 0:
        raise InvalidArgument(f"window_seconds: must be a finite number >= 0 (got {window})")
    return window or DEFAULT_QUALITY_WINDOW_S, request.model_name, request.model_version, request.route, request.split_arm


def quality_to_proto(view: QualityView) -> monitoring_pb2.GetQualityResponse:
    return monitoring_pb2.GetQualityResponse(
        labelled=view.labelled, positives=view.positives, positive_rate=view.positive_rate, mean_score=view.mean_score,
        auc=view.auc, log_loss=view.log_loss, calibration_error=view.calibration_error,
    )


WEIGHTING_ACTIONS = ("enable", "disable", "rollback")


def weighting_request_from_proto(request) -> tuple[str, str, str]:
    """(model, action, reason) of a SetWeighting; the model alone of a GetWeighting."""
    if not request.model_name:
        raise InvalidArgument("model_name: required")
    if len(request.model_name) > MAX_NAME_LENGTH or "/" in request.model_name or request.model_name.startswith("."):
        raise InvalidArgument(f"model_name: a model's name (got {quote(request.model_name)})")
    action = getattr(request, "action", "")
    if isinstance(request, monitoring_pb2.SetWeightingRequest):
        if action not in WEIGHTING_ACTIONS:
            raise InvalidArgument(f"action: must be one of {', '.join(WEIGHTING_ACTIONS)} (got {quote(action)})")
        if len(request.reason) > 500:
            raise InvalidArgument(f"reason: at most 500 characters (got {quote(request.reason)})")
    return request.model_name, action, getattr(request, "reason", "")


def _weights_to_proto(version: WeightsVersion) -> monitoring_pb2.WeightsVersion:
    return monitoring_pb2.WeightsVersion(number=version.number, weights=version.weights, source=version.source, reason=version.reason,
                                         created_at=version.created_at)


def weighting_to_proto(model: str, enabled: bool, versions) -> monitoring_pb2.WeightingStatus:
    return monitoring_pb2.WeightingStatus(model_name=model, enabled=enabled, versions=[
        monitoring_pb2.VersionWeighting(model_version=version, current=_weights_to_proto(current), outcomes_learned=outcomes,
                                        history=[_weights_to_proto(v) for v in past])
        for version, current, outcomes, past in versions])


def experiment_request_from_proto(request: monitoring_pb2.GetExperimentRequest) -> tuple[str, float]:
    if len(request.route) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"route: at most {MAX_NAME_LENGTH} characters (got {quote(request.route)})")
    window = request.window_seconds
    if not math.isfinite(window) or window < 0:
        raise InvalidArgument(f"window_seconds: must be a finite number >= 0 (got {window})")
    return request.route, window or DEFAULT_QUALITY_WINDOW_S


def _estimate(interval) -> monitoring_pb2.Estimate:
    return monitoring_pb2.Estimate(value=interval.value, low=interval.low, high=interval.high)


def experiment_to_proto(routes: dict[str, list[ArmResult]]) -> monitoring_pb2.GetExperimentResponse:
    return monitoring_pb2.GetExperimentResponse(routes=[
        monitoring_pb2.RouteExperiment(route=route, arms=[
            monitoring_pb2.ArmResult(arm=a.arm, models=list(a.models), outcomes=a.outcomes, positives=a.positives,
                                     positive_rate=_estimate(a.positive_rate), log_loss=_estimate(a.log_loss), auc=_estimate(a.auc),
                                     log_loss_p_value=a.log_loss_p_value, positive_rate_p_value=a.positive_rate_p_value, verdict=a.verdict)
            for a in arms])
        for route, arms in sorted(routes.items())])
