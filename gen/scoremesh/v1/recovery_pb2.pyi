from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchedInstance(_message.Message):
    __slots__ = ("service", "instance_id", "address", "healthy", "consecutive_failures")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_id: str
    address: str
    healthy: bool
    consecutive_failures: int
    def __init__(self, service: _Optional[str] = ..., instance_id: _Optional[str] = ..., address: _Optional[str] = ..., healthy: _Optional[bool] = ..., consecutive_failures: _Optional[int] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("instances", "rolled_back")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[WatchedInstance]
    rolled_back: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, instances: _Optional[_Iterable[_Union[WatchedInstance, _Mapping]]] = ..., rolled_back: _Optional[_Iterable[str]] = ...) -> None: ...

class RecoveryAction(_message.Message):
    __slots__ = ("action_id", "timestamp", "action", "service", "instance_id", "reason", "outcome", "duration_seconds", "trigger", "dry_run")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    action_id: str
    timestamp: float
    action: str
    service: str
    instance_id: str
    reason: str
    outcome: str
    duration_seconds: float
    trigger: str
    dry_run: bool
    def __init__(self, action_id: _Optional[str] = ..., timestamp: _Optional[float] = ..., action: _Optional[str] = ..., service: _Optional[str] = ..., instance_id: _Optional[str] = ..., reason: _Optional[str] = ..., outcome: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., trigger: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ListActionsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListActionsResponse(_message.Message):
    __slots__ = ("actions",)
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[RecoveryAction]
    def __init__(self, actions: _Optional[_Iterable[_Union[RecoveryAction, _Mapping]]] = ...) -> None: ...

class TriggerRequest(_message.Message):
    __slots__ = ("action", "instance_id", "reason", "dry_run", "target")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    action: str
    instance_id: str
    reason: str
    dry_run: bool
    target: str
    def __init__(self, action: _Optional[str] = ..., instance_id: _Optional[str] = ..., reason: _Optional[str] = ..., dry_run: _Optional[bool] = ..., target: _Optional[str] = ...) -> None: ...

class TriggerResponse(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: RecoveryAction
    def __init__(self, action: _Optional[_Union[RecoveryAction, _Mapping]] = ...) -> None: ...

class WatchActionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchActionsResponse(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: RecoveryAction
    def __init__(self, action: _Optional[_Union[RecoveryAction, _Mapping]] = ...) -> None: ...
