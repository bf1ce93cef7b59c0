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
    __slots__ = ("request_id", "model", "candidates", "trace_id", "route", "feature_schema_version", "features_degraded")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_DEGRADED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: ModelRef
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateScore]
    trace_id: str
    route: str
    feature_schema_version: str
    features_degraded: bool
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[CandidateScore, _Mapping]]] = ..., trace_id: _Optional[str] = ..., route: _Optional[str] = ..., feature_schema_version: _Optional[str] = ..., features_degraded: _Optional[bool] = ...) -> None: ...

class ExplainRouteRequest(_message.Message):
    __slots__ = ("data_type", "context")
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    data_type: _common_pb2.DataType
    context: _common_pb2.RequestContext
    def __init__(self, data_type: _Optional[_Union[_common_pb2.DataType, str]] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ...) -> None: ...

class ExplainRouteResponse(_message.Message):
    __slots__ = ("route", "model_name", "reason")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    route: str
    model_name: str
    reason: str
    def __init__(self, route: _Optional[str] = ..., model_name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
