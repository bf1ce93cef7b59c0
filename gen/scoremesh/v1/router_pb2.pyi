from scoremesh.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreRequest(_message.Message):
    __slots__ = ("request_id", "data_type", "context", "candidates")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    data_type: _common_pb2.DataType
    context: _common_pb2.RequestContext
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    def __init__(self, request_id: _Optional[str] = ..., data_type: _Optional[_Union[_common_pb2.DataType, str]] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ...) -> None: ...

class MemberScore(_message.Message):
    __slots__ = ("member", "score")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    member: str
    score: float
    def __init__(self, member: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class CandidateScore(_message.Message):
    __slots__ = ("ad_id", "score", "member_scores", "confidence", "bid", "explanation")
    AD_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_SCORES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    ad_id: str
    score: float
    member_scores: _containers.RepeatedCompositeFieldContainer[MemberScore]
    confidence: float
    bid: float
    explanation: str
    def __init__(self, ad_id: _Optional[str] = ..., score: _Optional[float] = ..., member_scores: _Optional[_Iterable[_Union[MemberScore, _Mapping]]] = ..., confidence: _Optional[float] = ..., bid: _Optional[float] = ..., explanation: _Optional[str] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("request_id", "model", "candidates", "trace_id", "route", "feature_schema_version", "features_degraded", "rule", "split_arm", "fallback_used", "config_version", "skipped_stages")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_DEGRADED_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_ARM_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_USED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_STAGES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: ModelRef
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateScore]
    trace_id: str
    route: str
    feature_schema_version: str
    features_degraded: bool
    rule: str
    split_arm: str
    fallback_used: bool
    config_version: str
    skipped_stages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[CandidateScore, _Mapping]]] = ..., trace_id: _Optional[str] = ..., route: _Optional[str] = ..., feature_schema_version: _Optional[str] = ..., features_degraded: _Optional[bool] = ..., rule: _Optional[str] = ..., split_arm: _Optional[str] = ..., fallback_used: _Optional[bool] = ..., config_version: _Optional[str] = ..., skipped_stages: _Optional[_Iterable[str]] = ...) -> None: ...

class ExplainRouteRequest(_message.Message):
    __slots__ = ("data_type", "context")
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    data_type: _common_pb2.DataType
    context: _common_pb2.RequestContext
    def __init__(self, data_type: _Optional[_Union[_common_pb2.DataType, str]] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ...) -> None: ...

class RuleEvaluation(_message.Message):
    __slots__ = ("rule", "matched", "failed_condition")
    RULE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    FAILED_CONDITION_FIELD_NUMBER: _ClassVar[int]
    rule: str
    matched: bool
    failed_condition: str
    def __init__(self, rule: _Optional[str] = ..., matched: _Optional[bool] = ..., failed_condition: _Optional[str] = ...) -> None: ...

class ExplainRouteResponse(_message.Message):
    __slots__ = ("route", "model_name", "reason", "rule", "evaluations", "split_arm", "model_version", "fallback_model", "config_version")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_ARM_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_MODEL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    route: str
    model_name: str
    reason: str
    rule: str
    evaluations: _containers.RepeatedCompositeFieldContainer[RuleEvaluation]
    split_arm: str
    model_version: str
    fallback_model: str
    config_version: str
    def __init__(self, route: _Optional[str] = ..., model_name: _Optional[str] = ..., reason: _Optional[str] = ..., rule: _Optional[str] = ..., evaluations: _Optional[_Iterable[_Union[RuleEvaluation, _Mapping]]] = ..., split_arm: _Optional[str] = ..., model_version: _Optional[str] = ..., fallback_model: _Optional[str] = ..., config_version: _Optional[str] = ...) -> None: ...

class GetRoutingConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRoutingConfigResponse(_message.Message):
    __slots__ = ("version", "yaml", "source")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    yaml: str
    source: str
    def __init__(self, version: _Optional[str] = ..., yaml: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class ApplyRoutingConfigRequest(_message.Message):
    __slots__ = ("yaml", "dry_run")
    YAML_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    dry_run: bool
    def __init__(self, yaml: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ApplyRoutingConfigResponse(_message.Message):
    __slots__ = ("version", "applied", "rules", "routes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    version: str
    applied: bool
    rules: int
    routes: int
    def __init__(self, version: _Optional[str] = ..., applied: _Optional[bool] = ..., rules: _Optional[int] = ..., routes: _Optional[int] = ...) -> None: ...
