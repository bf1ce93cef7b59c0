from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TelemetryRecord(_message.Message):
    __slots__ = ("request_id", "model_name", "model_version", "status", "latency_ms", "features_ms", "inference_ms", "candidates", "scores", "timestamp")
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
    def __init__(self, request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., status: _Optional[str] = ..., latency_ms: _Optional[float] = ..., features_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., candidates: _Optional[int] = ..., scores: _Optional[_Iterable[float]] = ..., timestamp: _Optional[float] = ...) -> None: ...

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
    __slots__ = ("model_name", "window_seconds")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    window_seconds: float
    def __init__(self, model_name: _Optional[str] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class GetSLOResponse(_message.Message):
    __slots__ = ("requests", "availability", "error_rate", "p50_ms", "p95_ms", "p99_ms", "requests_per_second", "total_records")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RECORDS_FIELD_NUMBER: _ClassVar[int]
    requests: int
    availability: float
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests_per_second: float
    total_records: int
    def __init__(self, requests: _Optional[int] = ..., availability: _Optional[float] = ..., error_rate: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., requests_per_second: _Optional[float] = ..., total_records: _Optional[int] = ...) -> None: ...
