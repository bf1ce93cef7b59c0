from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TelemetryRecord(_message.Message):
    __slots__ = ("request_id", "model_name", "model_version", "status", "latency_ms", "features_ms", "inference_ms", "candidates", "scores", "timestamp", "features", "route", "split_arm", "service", "instance_id", "inference_instance_id", "inference_attempt_ms", "inference_outrun", "ad_ids", "member_names", "member_scores", "features_raw", "inference_stalled")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_ARM_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_ATTEMPT_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_OUTRUN_FIELD_NUMBER: _ClassVar[int]
    AD_IDS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_NAMES_FIELD_NUMBER: _ClassVar[int]
    MEMBER_SCORES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_RAW_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_STALLED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_name: str
    model_version: str
    status: str
    latency_ms: float
    features_ms: float
    inference_ms: float
    candidates: int
    scores: _containers.RepeatedScalarFieldContainer[float]
    timestamp: float
    features: _containers.RepeatedScalarFieldContainer[float]
    route: str
    split_arm: str
    service: str
    instance_id: str
    inference_instance_id: str
    inference_attempt_ms: float
    inference_outrun: bool
    ad_ids: _containers.RepeatedScalarFieldContainer[str]
    member_names: _containers.RepeatedScalarFieldContainer[str]
    member_scores: _containers.RepeatedScalarFieldContainer[float]
    features_raw: bytes
    inference_stalled: bool
    def __init__(self, request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., status: _Optional[str] = ..., latency_ms: _Optional[float] = ..., features_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., candidates: _Optional[int] = ..., scores: _Optional[_Iterable[float]] = ..., timestamp: _Optional[float] = ..., features: _Optional[_Iterable[float]] = ..., route: _Optional[str] = ..., split_arm: _Optional[str] = ..., service: _Optional[str] = ..., instance_id: _Optional[str] = ..., inference_instance_id: _Optional[str] = ..., inference_attempt_ms: _Optional[float] = ..., inference_outrun: _Optional[bool] = ..., ad_ids: _Optional[_Iterable[str]] = ..., member_names: _Optional[_Iterable[str]] = ..., member_scores: _Optional[_Iterable[float]] = ..., features_raw: _Optional[bytes] = ..., inference_stalled: _Optional[bool] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[TelemetryRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[TelemetryRecord, _Mapping]]] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...

class GetSLORequest(_message.Message):
    __slots__ = ("model_name", "window_seconds", "model_version", "route", "split_arm", "service")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_ARM_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    window_seconds: float
    model_version: str
    route: str
    split_arm: str
    service: str
    def __init__(self, model_name: _Optional[str] = ..., window_seconds: _Optional[float] = ..., model_version: _Optional[str] = ..., route: _Optional[str] = ..., split_arm: _Optional[str] = ..., service: _Optional[str] = ...) -> None: ...

class GetSLOResponse(_message.Message):
    __slots__ = ("requests", "availability", "error_rate", "p50_ms", "p95_ms", "p99_ms", "requests_per_second", "total_records", "objectives")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RECORDS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    requests: int
    availability: float
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests_per_second: float
    total_records: int
    objectives: _containers.RepeatedCompositeFieldContainer[ObjectiveStatus]
    def __init__(self, requests: _Optional[int] = ..., availability: _Optional[float] = ..., error_rate: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., requests_per_second: _Optional[float] = ..., total_records: _Optional[int] = ..., objectives: _Optional[_Iterable[_Union[ObjectiveStatus, _Mapping]]] = ...) -> None: ...

class ObjectiveStatus(_message.Message):
    __slots__ = ("name", "kind", "target", "threshold_ms", "budget_remaining", "windows", "firing")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_REMAINING_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    FIRING_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    target: float
    threshold_ms: float
    budget_remaining: float
    windows: _containers.RepeatedCompositeFieldContainer[BurnWindow]
    firing: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., target: _Optional[float] = ..., threshold_ms: _Optional[float] = ..., budget_remaining: _Optional[float] = ..., windows: _Optional[_Iterable[_Union[BurnWindow, _Mapping]]] = ..., firing: _Optional[bool] = ...) -> None: ...

class BurnWindow(_message.Message):
    __slots__ = ("factor", "long_seconds", "short_seconds", "long_burn_rate", "short_burn_rate", "firing")
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    LONG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SHORT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LONG_BURN_RATE_FIELD_NUMBER: _ClassVar[int]
    SHORT_BURN_RATE_FIELD_NUMBER: _ClassVar[int]
    FIRING_FIELD_NUMBER: _ClassVar[int]
    factor: float
    long_seconds: float
    short_seconds: float
    long_burn_rate: float
    short_burn_rate: float
    firing: bool
    def __init__(self, factor: _Optional[float] = ..., long_seconds: _Optional[float] = ..., short_seconds: _Optional[float] = ..., long_burn_rate: _Optional[float] = ..., short_burn_rate: _Optional[float] = ..., firing: _Optional[bool] = ...) -> None: ...

class GetDriftRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "window_seconds")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    window_seconds: float
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class FeatureDrift(_message.Message):
    __slots__ = ("name", "psi", "psi_threshold", "ks_statistic", "ks_p_value", "drifted")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    PSI_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    KS_STATISTIC_FIELD_NUMBER: _ClassVar[int]
    KS_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    DRIFTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    psi: float
    psi_threshold: float
    ks_statistic: float
    ks_p_value: float
    drifted: bool
    def __init__(self, name: _Optional[str] = ..., psi: _Optional[float] = ..., psi_threshold: _Optional[float] = ..., ks_statistic: _Optional[float] = ..., ks_p_value: _Optional[float] = ..., drifted: _Optional[bool] = ...) -> None: ...

class GetDriftResponse(_message.Message):
    __slots__ = ("model_name", "model_version", "samples", "judged", "features", "scores", "drifted")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    JUDGED_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    DRIFTED_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    samples: int
    judged: bool
    features: _containers.RepeatedCompositeFieldContainer[FeatureDrift]
    scores: FeatureDrift
    drifted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., samples: _Optional[int] = ..., judged: _Optional[bool] = ..., features: _Optional[_Iterable[_Union[FeatureDrift, _Mapping]]] = ..., scores: _Optional[_Union[FeatureDrift, _Mapping]] = ..., drifted: _Optional[_Iterable[str]] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("rule", "target", "severity", "message", "count", "first_seen", "last_seen", "status", "resolved_at", "signal", "value")
    RULE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    rule: str
    target: str
    severity: str
    message: str
    count: int
    first_seen: float
    last_seen: float
    status: str
    resolved_at: float
    signal: str
    value: float
    def __init__(self, rule: _Optional[str] = ..., target: _Optional[str] = ..., severity: _Optional[str] = ..., message: _Optional[str] = ..., count: _Optional[int] = ..., first_seen: _Optional[float] = ..., last_seen: _Optional[float] = ..., status: _Optional[str] = ..., resolved_at: _Optional[float] = ..., signal: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchAlertsResponse(_message.Message):
    __slots__ = ("incident",)
    INCIDENT_FIELD_NUMBER: _ClassVar[int]
    incident: Incident
    def __init__(self, incident: _Optional[_Union[Incident, _Mapping]] = ...) -> None: ...

class ListIncidentsRequest(_message.Message):
    __slots__ = ("open_only", "limit")
    OPEN_ONLY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    open_only: bool
    limit: int
    def __init__(self, open_only: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents",)
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("request_id", "ad_id", "label", "positive", "timestamp")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AD_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    ad_id: str
    label: str
    positive: bool
    timestamp: float
    def __init__(self, request_id: _Optional[str] = ..., ad_id: _Optional[str] = ..., label: _Optional[str] = ..., positive: _Optional[bool] = ..., timestamp: _Optional[float] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("joined", "late", "unknown", "duplicate", "other_label")
    JOINED_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    OTHER_LABEL_FIELD_NUMBER: _ClassVar[int]
    joined: int
    late: int
    unknown: int
    duplicate: int
    other_label: int
    def __init__(self, joined: _Optional[int] = ..., late: _Optional[int] = ..., unknown: _Optional[int] = ..., duplicate: _Optional[int] = ..., other_label: _Optional[int] = ...) -> None: ...

class GetQualityRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "route", "split_arm", "window_seconds")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_ARM_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    route: str
    split_arm: str
    window_seconds: float
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., route: _Optional[str] = ..., split_arm: _Optional[str] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class GetQualityResponse(_message.Message):
    __slots__ = ("labelled", "positives", "positive_rate", "mean_score", "auc", "log_loss", "calibration_error")
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    POSITIVES_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_SCORE_FIELD_NUMBER: _ClassVar[int]
    AUC_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    labelled: int
    positives: int
    positive_rate: float
    mean_score: float
    auc: float
    log_loss: float
    calibration_error: float
    def __init__(self, labelled: _Optional[int] = ..., positives: _Optional[int] = ..., positive_rate: _Optional[float] = ..., mean_score: _Optional[float] = ..., auc: _Optional[float] = ..., log_loss: _Optional[float] = ..., calibration_error: _Optional[float] = ...) -> None: ...

class GetWeightingRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class SetWeightingRequest(_message.Message):
    __slots__ = ("model_name", "action", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    action: str
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., action: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WeightsVersion(_message.Message):
    __slots__ = ("number", "weights", "source", "reason", "created_at")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    number: int
    weights: _containers.ScalarMap[str, float]
    source: str
    reason: str
    created_at: float
    def __init__(self, number: _Optional[int] = ..., weights: _Optional[_Mapping[str, float]] = ..., source: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[float] = ...) -> None: ...

class VersionWeighting(_message.Message):
    __slots__ = ("model_version", "current", "outcomes_learned", "history")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    current: WeightsVersion
    outcomes_learned: int
    history: _containers.RepeatedCompositeFieldContainer[WeightsVersion]
    def __init__(self, model_version: _Optional[str] = ..., current: _Optional[_Union[WeightsVersion, _Mapping]] = ..., outcomes_learned: _Optional[int] = ..., history: _Optional[_Iterable[_Union[WeightsVersion, _Mapping]]] = ...) -> None: ...

class WeightingStatus(_message.Message):
    __slots__ = ("model_name", "enabled", "versions")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    enabled: bool
    versions: _containers.RepeatedCompositeFieldContainer[VersionWeighting]
    def __init__(self, model_name: _Optional[str] = ..., enabled: _Optional[bool] = ..., versions: _Optional[_Iterable[_Union[VersionWeighting, _Mapping]]] = ...) -> None: ...

class GetWeightingResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WeightingStatus
    def __init__(self, status: _Optional[_Union[WeightingStatus, _Mapping]] = ...) -> None: ...

class SetWeightingResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WeightingStatus
    def __init__(self, status: _Optional[_Union[WeightingStatus, _Mapping]] = ...) -> None: ...

class GetExperimentRequest(_message.Message):
    __slots__ = ("route", "window_seconds")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    route: str
    window_seconds: float
    def __init__(self, route: _Optional[str] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class Estimate(_message.Message):
    __slots__ = ("value", "low", "high")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    value: float
    low: float
    high: float
    def __init__(self, value: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class ArmResult(_message.Message):
    __slots__ = ("arm", "models", "outcomes", "positives", "positive_rate", "log_loss", "auc", "log_loss_p_value", "positive_rate_p_value", "verdict")
    ARM_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    POSITIVES_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_RATE_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_FIELD_NUMBER: _ClassVar[int]
    AUC_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_RATE_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    arm: str
    models: _containers.RepeatedScalarFieldContainer[str]
    outcomes: int
    positives: int
    positive_rate: Estimate
    log_loss: Estimate
    auc: Estimate
    log_loss_p_value: float
    positive_rate_p_value: float
    verdict: str
    def __init__(self, arm: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., outcomes: _Optional[int] = ..., positives: _Optional[int] = ..., positive_rate: _Optional[_Union[Estimate, _Mapping]] = ..., log_loss: _Optional[_Union[Estimate, _Mapping]] = ..., auc: _Optional[_Union[Estimate, _Mapping]] = ..., log_loss_p_value: _Optional[float] = ..., positive_rate_p_value: _Optional[float] = ..., verdict: _Optional[str] = ...) -> None: ...

class RouteExperiment(_message.Message):
    __slots__ = ("route", "arms")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    route: str
    arms: _containers.RepeatedCompositeFieldContainer[ArmResult]
    def __init__(self, route: _Optional[str] = ..., arms: _Optional[_Iterable[_Union[ArmResult, _Mapping]]] = ...) -> None: ...

class GetExperimentResponse(_message.Message):
    __slots__ = ("routes",)
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[RouteExperiment]
    def __init__(self, routes: _Optional[_Iterable[_Union[RouteExperiment, _Mapping]]] = ...) -> None: ...
