from scoremesh.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClearCacheRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ClearCacheResponse(_message.Message):
    __slots__ = ("entries_dropped",)
    ENTRIES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    entries_dropped: int
    def __init__(self, entries_dropped: _Optional[int] = ...) -> None: ...

class ExtractRequest(_message.Message):
    __slots__ = ("request_id", "data_type", "context", "candidates", "schema_version", "typed_values")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    TYPED_VALUES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    data_type: _common_pb2.DataType
    context: _common_pb2.RequestContext
    candidates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Candidate]
    schema_version: str
    typed_values: bool
    def __init__(self, request_id: _Optional[str] = ..., data_type: _Optional[_Union[_common_pb2.DataType, str]] = ..., context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[_common_pb2.Candidate, _Mapping]]] = ..., schema_version: _Optional[str] = ..., typed_values: _Optional[bool] = ...) -> None: ...

class ExtractResponse(_message.Message):
    __slots__ = ("schema_name", "schema_version", "rows", "cols", "values", "store_degraded", "store_status", "raw_values")
    SCHEMA_NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    STORE_DEGRADED_FIELD_NUMBER: _ClassVar[int]
    STORE_STATUS_FIELD_NUMBER: _ClassVar[int]
    RAW_VALUES_FIELD_NUMBER: _ClassVar[int]
    schema_name: str
    schema_version: str
    rows: int
    cols: int
    values: _containers.RepeatedScalarFieldContainer[float]
    store_degraded: bool
    store_status: str
    raw_values: bytes
    def __init__(self, schema_name: _Optional[str] = ..., schema_version: _Optional[str] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., values: _Optional[_Iterable[float]] = ..., store_degraded: _Optional[bool] = ..., store_status: _Optional[str] = ..., raw_values: _Optional[bytes] = ...) -> None: ...

class GetSchemaRequest(_message.Message):
    __slots__ = ("schema_version",)
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: str
    def __init__(self, schema_version: _Optional[str] = ...) -> None: ...

class FeatureDescription(_message.Message):
    __slots__ = ("name", "kind", "sources", "first_column", "column_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    FIRST_COLUMN_FIELD_NUMBER: _ClassVar[int]
    COLUMN_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    sources: _containers.RepeatedScalarFieldContainer[str]
    first_column: int
    column_count: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., sources: _Optional[_Iterable[str]] = ..., first_column: _Optional[int] = ..., column_count: _Optional[int] = ...) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ("schema_name", "schema_version", "column_names", "features", "versions", "schema_yaml")
    SCHEMA_NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    COLUMN_NAMES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_YAML_FIELD_NUMBER: _ClassVar[int]
    schema_name: str
    schema_version: str
    column_names: _containers.RepeatedScalarFieldContainer[str]
    features: _containers.RepeatedCompositeFieldContainer[FeatureDescription]
    versions: _containers.RepeatedScalarFieldContainer[str]
    schema_yaml: str
    def __init__(self, schema_name: _Optional[str] = ..., schema_version: _Optional[str] = ..., column_names: _Optional[_Iterable[str]] = ..., features: _Optional[_Iterable[_Union[FeatureDescription, _Mapping]]] = ..., versions: _Optional[_Iterable[str]] = ..., schema_yaml: _Optional[str] = ...) -> None: ...
