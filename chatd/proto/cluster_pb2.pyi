from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogPos(_message.Message):
    __slots__ = ("epoch", "index")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    index: int
    def __init__(self, epoch: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class ClusterMember(_message.Message):
    __slots__ = ("node_id", "address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class MembershipInfo(_message.Message):
    __slots__ = ("epoch", "seq", "members", "in_sync", "retired", "quorum")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    seq: int
    members: _containers.RepeatedCompositeFieldContainer[ClusterMember]
    in_sync: _containers.RepeatedScalarFieldContainer[str]
    retired: _containers.RepeatedScalarFieldContainer[str]
    quorum: str
    def __init__(self, epoch: _Optional[int] = ..., seq: _Optional[int] = ..., members: _Optional[_Iterable[_Union[ClusterMember, _Mapping]]] = ..., in_sync: _Optional[_Iterable[str]] = ..., retired: _Optional[_Iterable[str]] = ..., quorum: _Optional[str] = ...) -> None: ...

class RegisterSlaveRequest(_message.Message):
    __slots__ = ("node_id", "epoch", "address", "last")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    address: str
    last: LogPos
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., address: _Optional[str] = ..., last: _Optional[_Union[LogPos, _Mapping]] = ...) -> None: ...

class RegisterSlaveResponse(_message.Message):
    __slots__ = ("node_id", "epoch", "ok", "master_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    MASTER_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    ok: bool
    master_id: str
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., ok: _Optional[bool] = ..., master_id: _Optional[str] = ...) -> None: ...

class HeartBeatRequest(_message.Message):
    __slots__ = ("node_id", "epoch")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class HeartBeatResponse(_message.Message):
    __slots__ = ("node_id", "epoch", "role", "master_id", "commit_index", "applied_index")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MASTER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    role: str
    master_id: str
    commit_index: int
    applied_index: int
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., role: _Optional[str] = ..., master_id: _Optional[str] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ...) -> None: ...

class CheckMasterRequest(_message.Message):
    __slots__ = ("node_id", "epoch")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class CheckMasterResponse(_message.Message):
    __slots__ = ("node_id", "epoch", "role", "master_id", "master_address", "last", "eligible", "membership")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MASTER_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    role: str
    master_id: str
    master_address: str
    last: LogPos
    eligible: bool
    membership: MembershipInfo
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., role: _Optional[str] = ..., master_id: _Optional[str] = ..., master_address: _Optional[str] = ..., last: _Optional[_Union[LogPos, _Mapping]] = ..., eligible: _Optional[bool] = ..., membership: _Optional[_Union[MembershipInfo, _Mapping]] = ...) -> None: ...

class UpdateBatch(_message.Message):
    __slots__ = ("prev", "count", "entry_epoch", "commit", "in_sync", "entries", "echo")
    PREV_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ECHO_FIELD_NUMBER: _ClassVar[int]
    prev: LogPos
    count: int
    entry_epoch: int
    commit: int
    in_sync: bool
    entries: _containers.RepeatedScalarFieldContainer[bytes]
    echo: int
    def __init__(self, prev: _Optional[_Union[LogPos, _Mapping]] = ..., count: _Optional[int] = ..., entry_epoch: _Optional[int] = ..., commit: _Optional[int] = ..., in_sync: _Optional[bool] = ..., entries: _Optional[_Iterable[bytes]] = ..., echo: _Optional[int] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("data", "last", "pos", "total_bytes")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    POS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    last: bool
    pos: LogPos
    total_bytes: int
    def __init__(self, data: _Optional[bytes] = ..., last: _Optional[bool] = ..., pos: _Optional[_Union[LogPos, _Mapping]] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class AcceptUpdatesRequest(_message.Message):
    __slots__ = ("node_id", "epoch", "batch", "snapshot")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    batch: UpdateBatch
    snapshot: SnapshotChunk
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., batch: _Optional[_Union[UpdateBatch, _Mapping]] = ..., snapshot: _Optional[_Union[SnapshotChunk, _Mapping]] = ...) -> None: ...

class AcceptUpdatesResponse(_message.Message):
    __slots__ = ("node_id", "epoch", "ok", "durable", "diverged", "snapshot_installed", "probe")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DURABLE_FIELD_NUMBER: _ClassVar[int]
    DIVERGED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    ok: bool
    durable: LogPos
    diverged: bool
    snapshot_installed: bool
    probe: int
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., ok: _Optional[bool] = ..., durable: _Optional[_Union[LogPos, _Mapping]] = ..., diverged: _Optional[bool] = ..., snapshot_installed: _Optional[bool] = ..., probe: _Optional[int] = ...) -> None: ...

class NewMasterRequest(_message.Message):
    __slots__ = ("node_id", "epoch", "membership", "last")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    membership: MembershipInfo
    last: LogPos
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., membership: _Optional[_Union[MembershipInfo, _Mapping]] = ..., last: _Optional[_Union[LogPos, _Mapping]] = ...) -> None: ...

class UpdateSlavesRequest(_message.Message):
    __slots__ = ("node_id", "epoch", "membership")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    membership: MembershipInfo
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., membership: _Optional[_Union[MembershipInfo, _Mapping]] = ...) -> None: ...

class UpdateAck(_message.Message):
    __slots__ = ("node_id", "epoch", "version_epoch", "version_seq", "ok")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VERSION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    VERSION_SEQ_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    version_epoch: int
    version_seq: int
    ok: bool
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., version_epoch: _Optional[int] = ..., version_seq: _Optional[int] = ..., ok: _Optional[bool] = ...) -> None: ...

class DigestReport(_message.Message):
    __slots__ = ("node_id", "epoch", "index", "log_digest", "state_digest", "min_in_sync", "web_origin")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LOG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MIN_IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    WEB_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    index: int
    log_digest: bytes
    state_digest: bytes
    min_in_sync: int
    web_origin: str
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., index: _Optional[int] = ..., log_digest: _Optional[bytes] = ..., state_digest: _Optional[bytes] = ..., min_in_sync: _Optional[int] = ..., web_origin: _Optional[str] = ...) -> None: ...

class WebOrigin(_message.Message):
    __slots__ = ("node_id", "origin")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    origin: str
    def __init__(self, node_id: _Optional[str] = ..., origin: _Optional[str] = ...) -> None: ...

class DigestAck(_message.Message):
    __slots__ = ("node_id", "epoch", "compared", "agrees", "web_origins")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FIELD_NUMBER: _ClassVar[int]
    AGREES_FIELD_NUMBER: _ClassVar[int]
    WEB_ORIGINS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    epoch: int
    compared: bool
    agrees: bool
    web_origins: _containers.RepeatedCompositeFieldContainer[WebOrigin]
    def __init__(self, node_id: _Optional[str] = ..., epoch: _Optional[int] = ..., compared: _Optional[bool] = ..., agrees: _Optional[bool] = ..., web_origins: _Optional[_Iterable[_Union[WebOrigin, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemberStatus(_message.Message):
    __slots__ = ("node_id", "address", "role", "in_sync", "applied_index", "lag", "alive", "left_reason", "min_in_sync", "applied_unknown", "web_origin")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    LEFT_REASON_FIELD_NUMBER: _ClassVar[int]
    MIN_IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    APPLIED_UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    WEB_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    role: str
    in_sync: bool
    applied_index: int
    lag: int
    alive: bool
    left_reason: str
    min_in_sync: int
    applied_unknown: bool
    web_origin: str
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ..., role: _Optional[str] = ..., in_sync: _Optional[bool] = ..., applied_index: _Optional[int] = ..., lag: _Optional[int] = ..., alive: _Optional[bool] = ..., left_reason: _Optional[str] = ..., min_in_sync: _Optional[int] = ..., applied_unknown: _Optional[bool] = ..., web_origin: _Optional[str] = ...) -> None: ...

class StateDivergence(_message.Message):
    __slots__ = ("node_id", "index", "state_digest", "master_state_digest")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MASTER_STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    index: int
    state_digest: str
    master_state_digest: str
    def __init__(self, node_id: _Optional[str] = ..., index: _Optional[int] = ..., state_digest: _Optional[str] = ..., master_state_digest: _Optional[str] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node_id", "role", "epoch", "master", "applied_index", "log_digest", "members", "commit_index", "address", "master_id", "state_digest", "diverged", "quorum", "peer_address", "master_peer_address", "members_seen_by", "rolled_back", "rollback_files", "min_in_sync", "writes_refused", "web_origin")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LOG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MASTER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DIVERGED_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MASTER_PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_SEEN_BY_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FILES_FIELD_NUMBER: _ClassVar[int]
    MIN_IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    WRITES_REFUSED_FIELD_NUMBER: _ClassVar[int]
    WEB_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: str
    epoch: int
    master: str
    applied_index: int
    log_digest: str
    members: _containers.RepeatedCompositeFieldContainer[MemberStatus]
    commit_index: int
    address: str
    master_id: str
    state_digest: str
    diverged: _containers.RepeatedCompositeFieldContainer[StateDivergence]
    quorum: str
    peer_address: str
    master_peer_address: str
    members_seen_by: str
    rolled_back: int
    rollback_files: int
    min_in_sync: int
    writes_refused: bool
    web_origin: str
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[str] = ..., epoch: _Optional[int] = ..., master: _Optional[str] = ..., applied_index: _Optional[int] = ..., log_digest: _Optional[str] = ..., members: _Optional[_Iterable[_Union[MemberStatus, _Mapping]]] = ..., commit_index: _Optional[int] = ..., address: _Optional[str] = ..., master_id: _Optional[str] = ..., state_digest: _Optional[str] = ..., diverged: _Optional[_Iterable[_Union[StateDivergence, _Mapping]]] = ..., quorum: _Optional[str] = ..., peer_address: _Optional[str] = ..., master_peer_address: _Optional[str] = ..., members_seen_by: _Optional[str] = ..., rolled_back: _Optional[int] = ..., rollback_files: _Optional[int] = ..., min_in_sync: _Optional[int] = ..., writes_refused: _Optional[bool] = ..., web_origin: _Optional[str] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackupChunk(_message.Message):
    __slots__ = ("data", "index", "epoch", "state_digest", "total_bytes", "last")
    DATA_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    index: int
    epoch: int
    state_digest: str
    total_bytes: int
    last: bool
    def __init__(self, data: _Optional[bytes] = ..., index: _Optional[int] = ..., epoch: _Optional[int] = ..., state_digest: _Optional[str] = ..., total_bytes: _Optional[int] = ..., last: _Optional[bool] = ...) -> None: ...

class UserAdminRequest(_message.Message):
    __slots__ = ("action", "username", "pattern", "password")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[UserAdminRequest.Action]
        LIST: _ClassVar[UserAdminRequest.Action]
        SHOW: _ClassVar[UserAdminRequest.Action]
        DISABLE: _ClassVar[UserAdminRequest.Action]
        ENABLE: _ClassVar[UserAdminRequest.Action]
        DELETE: _ClassVar[UserAdminRequest.Action]
        RESET_PASSWORD: _ClassVar[UserAdminRequest.Action]
        LOGOUT: _ClassVar[UserAdminRequest.Action]
    ACTION_UNSPECIFIED: UserAdminRequest.Action
    LIST: UserAdminRequest.Action
    SHOW: UserAdminRequest.Action
    DISABLE: UserAdminRequest.Action
    ENABLE: UserAdminRequest.Action
    DELETE: UserAdminRequest.Action
    RESET_PASSWORD: UserAdminRequest.Action
    LOGOUT: UserAdminRequest.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    action: UserAdminRequest.Action
    username: str
    pattern: str
    password: str
    def __init__(self, action: _Optional[_Union[UserAdminRequest.Action, str]] = ..., username: _Optional[str] = ..., pattern: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class AccountInfo(_message.Message):
    __slots__ = ("username", "created_us", "disabled", "sessions", "online", "last_active_us", "disabled_since_us", "messages_received", "undelivered", "rooms")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_US_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVE_US_FIELD_NUMBER: _ClassVar[int]
    DISABLED_SINCE_US_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    UNDELIVERED_FIELD_NUMBER: _ClassVar[int]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    username: str
    created_us: int
    disabled: bool
    sessions: int
    online: bool
    last_active_us: int
    disabled_since_us: int
    messages_received: int
    undelivered: int
    rooms: int
    def __init__(self, username: _Optional[str] = ..., created_us: _Optional[int] = ..., disabled: _Optional[bool] = ..., sessions: _Optional[int] = ..., online: _Optional[bool] = ..., last_active_us: _Optional[int] = ..., disabled_since_us: _Optional[int] = ..., messages_received: _Optional[int] = ..., undelivered: _Optional[int] = ..., rooms: _Optional[int] = ...) -> None: ...

class UserAdminResponse(_message.Message):
    __slots__ = ("ok", "error", "accounts", "sessions_ended")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_ENDED_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    accounts: _containers.RepeatedCompositeFieldContainer[AccountInfo]
    sessions_ended: int
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., accounts: _Optional[_Iterable[_Union[AccountInfo, _Mapping]]] = ..., sessions_ended: _Optional[int] = ...) -> None: ...

class ResendRequest(_message.Message):
    __slots__ = ("sender", "recipient", "room", "body", "request_id")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    sender: str
    recipient: str
    room: str
    body: str
    request_id: str
    def __init__(self, sender: _Optional[str] = ..., recipient: _Optional[str] = ..., room: _Optional[str] = ..., body: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResendResponse(_message.Message):
    __slots__ = ("ok", "error", "message_id", "duplicate", "error_code")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    message_id: int
    duplicate: bool
    error_code: int
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., message_id: _Optional[int] = ..., duplicate: _Optional[bool] = ..., error_code: _Optional[int] = ...) -> None: ...
