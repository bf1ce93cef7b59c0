from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_SEARCH: _ClassVar[DataType]
    DATA_TYPE_DISPLAY: _ClassVar[DataType]
    DATA_TYPE_CONVERSION: _ClassVar[DataType]
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_SEARCH: DataType
DATA_TYPE_DISPLAY: DataType
DATA_TYPE_CONVERSION: DataType

class User(_message.Message):
    __slots__ = ("user_id", "age", "gender", "location", "device_type")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    age: int
    gender: str
    location: str
    device_type: str
    def __init__(self, user_id: _Optional[str] = ..., age: _Optional[int] = ..., gender: _Optional[str] = ..., location: _Optional[str] = ..., device_type: _Optional[str] = ...) -> None: ...

class RequestContext(_message.Message):
    __slots__ = ("user", "hour", "day_of_week", "page_type")
    USER_FIELD_NUMBER: _ClassVar[int]
    HOUR_FIELD_NUMBER: _ClassVar[int]
    DAY_OF_WEEK_FIELD_NUMBER: _ClassVar[int]
    PAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    user: User
    hour: int
    day_of_week: int
    page_type: str
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., hour: _Optional[int] = ..., day_of_week: _Optional[int] = ..., page_type: _Optional[str] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("ad_id", "category", "bid_amount", "quality_score")
    AD_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BID_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    ad_id: str
    category: str
    bid_amount: float
    quality_score: float
    def __init__(self, ad_id: _Optional[str] = ..., category: _Optional[str] = ..., bid_amount: _Optional[float] = ..., quality_score: _Optional[float] = ...) -> None: ...
