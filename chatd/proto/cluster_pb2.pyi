from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckMasterRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckMasterResponse(_message.Message):
    __slots__ = ("node_id", "role", "epoch", "master_id", "master_address", "last_index", "last_epoch")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MASTER_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: str
    epoch: int
    master_id: str
    master_address: str
    last_index: int
    last_epoch: int
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[str] = ..., epoch: _Optional[int] = ..., master_id: _Optional[str] = ..., master_address: _Optional[str] = ..., last_index: _Optional[int] = ..., last_epoch: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemberStatus(_message.Message):
    __slots__ = ("node_id", "address", "role", "in_sync", "applied_index", "lag", "alive")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    role: str
    in_sync: bool
    applied_index: int
    lag: int
    alive: bool
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ..., role: _Optional[str] = ..., in_sync: _Optional[bool] = ..., applied_index: _Optional[int] = ..., lag: _Optional[int] = ..., alive: _Optional[bool] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node_id", "role", "epoch", "master", "applied_index", "digest", "members", "commit_index", "address", "master_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MASTER_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: str
    epoch: int
    master: str
    applied_index: int
    digest: str
    members: _containers.RepeatedCompositeFieldContainer[MemberStatus]
    commit_index: int
    address: str
    master_id: str
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[str] = ..., epoch: _Optional[int] = ..., master: _Optional[str] = ..., applied_index: _Optional[int] = ..., digest: _Optional[str] = ..., members: _Optional[_Iterable[_Union[MemberStatus, _Mapping]]] = ..., commit_index: _Optional[int] = ..., address: _Optional[str] = ..., master_id: _Optional[str] = ...) -> None: ...
