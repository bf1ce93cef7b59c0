from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListProcessesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ManagedProcess(_message.Message):
    __slots__ = ("service", "instance_id", "pid", "running", "restarts", "spare")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    SPARE_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_id: str
    pid: int
    running: bool
    restarts: int
    spare: bool
    def __init__(self, service: _Optional[str] = ..., instance_id: _Optional[str] = ..., pid: _Optional[int] = ..., running: _Optional[bool] = ..., restarts: _Optional[int] = ..., spare: _Optional[bool] = ...) -> None: ...

class ListProcessesResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ManagedProcess]
    def __init__(self, processes: _Optional[_Iterable[_Union[ManagedProcess, _Mapping]]] = ...) -> None: ...

class RestartInstanceRequest(_message.Message):
    __slots__ = ("instance_id", "reason")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    reason: str
    def __init__(self, instance_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RestartInstanceResponse(_message.Message):
    __slots__ = ("process",)
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    process: ManagedProcess
    def __init__(self, process: _Optional[_Union[ManagedProcess, _Mapping]] = ...) -> None: ...

class AddReplicaRequest(_message.Message):
    __slots__ = ("service", "reason", "max_replicas")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    service: str
    reason: str
    max_replicas: int
    def __init__(self, service: _Optional[str] = ..., reason: _Optional[str] = ..., max_replicas: _Optional[int] = ...) -> None: ...

class AddReplicaResponse(_message.Message):
    __slots__ = ("process",)
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    process: ManagedProcess
    def __init__(self, process: _Optional[_Union[ManagedProcess, _Mapping]] = ...) -> None: ...
