from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Entry(_message.Message):
    __slots__ = ("time_us", "create_account", "create_session", "end_session", "touch_session", "expire_sessions", "send_message", "take_undelivered", "mark_delivered", "delete_account", "noop", "create_room", "room_member", "mark_read", "set_password", "set_disabled", "end_user_sessions", "set_cluster_version", "delete_room", "edit_message", "delete_message", "react", "share_receipts", "set_profile", "file_chunk", "file_commit")
    TIME_US_FIELD_NUMBER: _ClassVar[int]
    CREATE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_SESSION_FIELD_NUMBER: _ClassVar[int]
    END_SESSION_FIELD_NUMBER: _ClassVar[int]
    TOUCH_SESSION_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SEND_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TAKE_UNDELIVERED_FIELD_NUMBER: _ClassVar[int]
    MARK_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    DELETE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    NOOP_FIELD_NUMBER: _ClassVar[int]
    CREATE_ROOM_FIELD_NUMBER: _ClassVar[int]
    ROOM_MEMBER_FIELD_NUMBER: _ClassVar[int]
    MARK_READ_FIELD_NUMBER: _ClassVar[int]
    SET_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    SET_DISABLED_FIELD_NUMBER: _ClassVar[int]
    END_USER_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SET_CLUSTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    DELETE_ROOM_FIELD_NUMBER: _ClassVar[int]
    EDIT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DELETE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REACT_FIELD_NUMBER: _ClassVar[int]
    SHARE_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    SET_PROFILE_FIELD_NUMBER: _ClassVar[int]
    FILE_CHUNK_FIELD_NUMBER: _ClassVar[int]
    FILE_COMMIT_FIELD_NUMBER: _ClassVar[int]
    time_us: int
    create_account: CreateAccount
    create_session: CreateSession
    end_session: EndSession
    touch_session: TouchSession
    expire_sessions: ExpireSessions
    send_message: SendMessage
    take_undelivered: TakeUndelivered
    mark_delivered: MarkDelivered
    delete_account: DeleteAccount
    noop: Noop
    create_room: CreateRoom
    room_member: RoomMember
    mark_read: MarkRead
    set_password: SetPassword
    set_disabled: SetDisabled
    end_user_sessions: EndUserSessions
    set_cluster_version: SetClusterVersion
    delete_room: DeleteRoom
    edit_message: EditMessage
    delete_message: DeleteMessage
    react: React
    share_receipts: ShareReceipts
    set_profile: SetProfile
    file_chunk: FileChunk
    file_commit: FileCommit
    def __init__(self, time_us: _Optional[int] = ..., create_account: _Optional[_Union[CreateAccount, _Mapping]] = ..., create_session: _Optional[_Union[CreateSession, _Mapping]] = ..., end_session: _Optional[_Union[EndSession, _Mapping]] = ..., touch_session: _Optional[_Union[TouchSession, _Mapping]] = ..., expire_sessions: _Optional[_Union[ExpireSessions, _Mapping]] = ..., send_message: _Optional[_Union[SendMessage, _Mapping]] = ..., take_undelivered: _Optional[_Union[TakeUndelivered, _Mapping]] = ..., mark_delivered: _Optional[_Union[MarkDelivered, _Mapping]] = ..., delete_account: _Optional[_Union[DeleteAccount, _Mapping]] = ..., noop: _Optional[_Union[Noop, _Mapping]] = ..., create_room: _Optional[_Union[CreateRoom, _Mapping]] = ..., room_member: _Optional[_Union[RoomMember, _Mapping]] = ..., mark_read: _Optional[_Union[MarkRead, _Mapping]] = ..., set_password: _Optional[_Union[SetPassword, _Mapping]] = ..., set_disabled: _Optional[_Union[SetDisabled, _Mapping]] = ..., end_user_sessions: _Optional[_Union[EndUserSessions, _Mapping]] = ..., set_cluster_version: _Optional[_Union[SetClusterVersion, _Mapping]] = ..., delete_room: _Optional[_Union[DeleteRoom, _Mapping]] = ..., edit_message: _Optional[_Union[EditMessage, _Mapping]] = ..., delete_message: _Optional[_Union[DeleteMessage, _Mapping]] = ..., react: _Optional[_Union[React, _Mapping]] = ..., share_receipts: _Optional[_Union[ShareReceipts, _Mapping]] = ..., set_profile: _Optional[_Union[SetProfile, _Mapping]] = ..., file_chunk: _Optional[_Union[FileChunk, _Mapping]] = ..., file_commit: _Optional[_Union[FileCommit, _Mapping]] = ...) -> None: ...

class CreateAccount(_message.Message):
    __slots__ = ("username", "password_hash", "unique_casefold")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_CASEFOLD_FIELD_NUMBER: _ClassVar[int]
    username: str
    password_hash: str
    unique_casefold: bool
    def __init__(self, username: _Optional[str] = ..., password_hash: _Optional[str] = ..., unique_casefold: _Optional[bool] = ...) -> None: ...

class CreateSession(_message.Message):
    __slots__ = ("username", "session_hash", "password_hash")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    SESSION_HASH_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    username: str
    session_hash: bytes
    password_hash: str
    def __init__(self, username: _Optional[str] = ..., session_hash: _Optional[bytes] = ..., password_hash: _Optional[str] = ...) -> None: ...

class EndSession(_message.Message):
    __slots__ = ("session_hash",)
    SESSION_HASH_FIELD_NUMBER: _ClassVar[int]
    session_hash: bytes
    def __init__(self, session_hash: _Optional[bytes] = ...) -> None: ...

class TouchSession(_message.Message):
    __slots__ = ("session_hash",)
    SESSION_HASH_FIELD_NUMBER: _ClassVar[int]
    session_hash: bytes
    def __init__(self, session_hash: _Optional[bytes] = ...) -> None: ...

class ExpireSessions(_message.Message):
    __slots__ = ("idle_since_us",)
    IDLE_SINCE_US_FIELD_NUMBER: _ClassVar[int]
    idle_since_us: int
    def __init__(self, idle_since_us: _Optional[int] = ...) -> None: ...

class SendMessage(_message.Message):
    __slots__ = ("sender", "recipient", "body", "request_id", "room", "reply_to", "file_id")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    sender: str
    recipient: str
    body: str
    request_id: str
    room: str
    reply_to: int
    file_id: str
    def __init__(self, sender: _Optional[str] = ..., recipient: _Optional[str] = ..., body: _Optional[str] = ..., request_id: _Optional[str] = ..., room: _Optional[str] = ..., reply_to: _Optional[int] = ..., file_id: _Optional[str] = ...) -> None: ...

class EditMessage(_message.Message):
    __slots__ = ("actor", "message_id", "body", "window_us")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_US_FIELD_NUMBER: _ClassVar[int]
    actor: str
    message_id: int
    body: str
    window_us: int
    def __init__(self, actor: _Optional[str] = ..., message_id: _Optional[int] = ..., body: _Optional[str] = ..., window_us: _Optional[int] = ...) -> None: ...

class DeleteMessage(_message.Message):
    __slots__ = ("actor", "message_id")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    actor: str
    message_id: int
    def __init__(self, actor: _Optional[str] = ..., message_id: _Optional[int] = ...) -> None: ...

class React(_message.Message):
    __slots__ = ("actor", "message_id", "emoji", "remove", "max_per_user")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_USER_FIELD_NUMBER: _ClassVar[int]
    actor: str
    message_id: int
    emoji: str
    remove: bool
    max_per_user: int
    def __init__(self, actor: _Optional[str] = ..., message_id: _Optional[int] = ..., emoji: _Optional[str] = ..., remove: _Optional[bool] = ..., max_per_user: _Optional[int] = ...) -> None: ...

class CreateRoom(_message.Message):
    __slots__ = ("creator", "name", "topic", "max_rooms")
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    MAX_ROOMS_FIELD_NUMBER: _ClassVar[int]
    creator: str
    name: str
    topic: str
    max_rooms: int
    def __init__(self, creator: _Optional[str] = ..., name: _Optional[str] = ..., topic: _Optional[str] = ..., max_rooms: _Optional[int] = ...) -> None: ...

class RoomMember(_message.Message):
    __slots__ = ("action", "actor", "room", "username", "max_members", "max_rooms", "max_invitations")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[RoomMember.Action]
        INVITE: _ClassVar[RoomMember.Action]
        JOIN: _ClassVar[RoomMember.Action]
        LEAVE: _ClassVar[RoomMember.Action]
        REMOVE: _ClassVar[RoomMember.Action]
        ADMIN: _ClassVar[RoomMember.Action]
        DECLINE: _ClassVar[RoomMember.Action]
    ACTION_UNSPECIFIED: RoomMember.Action
    INVITE: RoomMember.Action
    JOIN: RoomMember.Action
    LEAVE: RoomMember.Action
    REMOVE: RoomMember.Action
    ADMIN: RoomMember.Action
    DECLINE: RoomMember.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROOMS_FIELD_NUMBER: _ClassVar[int]
    MAX_INVITATIONS_FIELD_NUMBER: _ClassVar[int]
    action: RoomMember.Action
    actor: str
    room: str
    username: str
    max_members: int
    max_rooms: int
    max_invitations: int
    def __init__(self, action: _Optional[_Union[RoomMember.Action, str]] = ..., actor: _Optional[str] = ..., room: _Optional[str] = ..., username: _Optional[str] = ..., max_members: _Optional[int] = ..., max_rooms: _Optional[int] = ..., max_invitations: _Optional[int] = ...) -> None: ...

class DeleteRoom(_message.Message):
    __slots__ = ("actor", "room")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    actor: str
    room: str
    def __init__(self, actor: _Optional[str] = ..., room: _Optional[str] = ...) -> None: ...

class MarkRead(_message.Message):
    __slots__ = ("username", "peer", "room", "upto")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    UPTO_FIELD_NUMBER: _ClassVar[int]
    username: str
    peer: str
    room: str
    upto: int
    def __init__(self, username: _Optional[str] = ..., peer: _Optional[str] = ..., room: _Optional[str] = ..., upto: _Optional[int] = ...) -> None: ...

class ShareReceipts(_message.Message):
    __slots__ = ("username", "share")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    username: str
    share: bool
    def __init__(self, username: _Optional[str] = ..., share: _Optional[bool] = ...) -> None: ...

class TakeUndelivered(_message.Message):
    __slots__ = ("username", "limit", "max_bytes")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    username: str
    limit: int
    max_bytes: int
    def __init__(self, username: _Optional[str] = ..., limit: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class MarkDelivered(_message.Message):
    __slots__ = ("username", "message_ids")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    username: str
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, username: _Optional[str] = ..., message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DeleteAccount(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class SetPassword(_message.Message):
    __slots__ = ("username", "password_hash", "keep_session")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    KEEP_SESSION_FIELD_NUMBER: _ClassVar[int]
    username: str
    password_hash: str
    keep_session: bytes
    def __init__(self, username: _Optional[str] = ..., password_hash: _Optional[str] = ..., keep_session: _Optional[bytes] = ...) -> None: ...

class SetDisabled(_message.Message):
    __slots__ = ("username", "disabled")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    username: str
    disabled: bool
    def __init__(self, username: _Optional[str] = ..., disabled: _Optional[bool] = ...) -> None: ...

class EndUserSessions(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class SetClusterVersion(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class Noop(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class SetProfile(_message.Message):
    __slots__ = ("username", "display_name", "avatar_file_id")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    username: str
    display_name: str
    avatar_file_id: str
    def __init__(self, username: _Optional[str] = ..., display_name: _Optional[str] = ..., avatar_file_id: _Optional[str] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("file_id", "owner", "seq", "data", "thumbnail", "max_bytes", "idle_us")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    IDLE_US_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    owner: str
    seq: int
    data: bytes
    thumbnail: bool
    max_bytes: int
    idle_us: int
    def __init__(self, file_id: _Optional[str] = ..., owner: _Optional[str] = ..., seq: _Optional[int] = ..., data: _Optional[bytes] = ..., thumbnail: _Optional[bool] = ..., max_bytes: _Optional[int] = ..., idle_us: _Optional[int] = ...) -> None: ...

class FileCommit(_message.Message):
    __slots__ = ("file_id", "owner", "name", "content_type", "size", "sha256", "thumb_size", "thumb_sha256", "max_user_bytes", "abandon")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    THUMB_SIZE_FIELD_NUMBER: _ClassVar[int]
    THUMB_SHA256_FIELD_NUMBER: _ClassVar[int]
    MAX_USER_BYTES_FIELD_NUMBER: _ClassVar[int]
    ABANDON_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    owner: str
    name: str
    content_type: str
    size: int
    sha256: bytes
    thumb_size: int
    thumb_sha256: bytes
    max_user_bytes: int
    abandon: bool
    def __init__(self, file_id: _Optional[str] = ..., owner: _Optional[str] = ..., name: _Optional[str] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[bytes] = ..., thumb_size: _Optional[int] = ..., thumb_sha256: _Optional[bytes] = ..., max_user_bytes: _Optional[int] = ..., abandon: _Optional[bool] = ...) -> None: ...
