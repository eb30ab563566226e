import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadChunk(_message.Message):
    __slots__ = ("session_id", "name", "content_type", "total_size", "data")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    content_type: str
    total_size: int
    data: bytes
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., content_type: _Optional[str] = ..., total_size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadResult(_message.Message):
    __slots__ = ("error_code", "error_message", "file")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    file: FileRef
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., file: _Optional[_Union[FileRef, _Mapping]] = ...) -> None: ...

class FileRef(_message.Message):
    __slots__ = ("file_id", "name", "content_type", "size", "has_thumbnail", "sha256")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    HAS_THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    name: str
    content_type: str
    size: int
    has_thumbnail: bool
    sha256: str
    def __init__(self, file_id: _Optional[str] = ..., name: _Optional[str] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ..., has_thumbnail: _Optional[bool] = ..., sha256: _Optional[str] = ...) -> None: ...

class FileRequest(_message.Message):
    __slots__ = ("session_id", "file_id", "thumbnail", "offset")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    file_id: str
    thumbnail: bool
    offset: int
    def __init__(self, session_id: _Optional[str] = ..., file_id: _Optional[str] = ..., thumbnail: _Optional[bool] = ..., offset: _Optional[int] = ...) -> None: ...

class FileData(_message.Message):
    __slots__ = ("error_code", "error_message", "file", "data")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    file: FileRef
    data: bytes
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., file: _Optional[_Union[FileRef, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ProfileRequest(_message.Message):
    __slots__ = ("session_id", "display_name", "avatar_file_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    display_name: str
    avatar_file_id: str
    def __init__(self, session_id: _Optional[str] = ..., display_name: _Optional[str] = ..., avatar_file_id: _Optional[str] = ...) -> None: ...

class ProfilesRequest(_message.Message):
    __slots__ = ("session_id", "usernames")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    usernames: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., usernames: _Optional[_Iterable[str]] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("username", "display_name", "avatar_file_id")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    username: str
    display_name: str
    avatar_file_id: str
    def __init__(self, username: _Optional[str] = ..., display_name: _Optional[str] = ..., avatar_file_id: _Optional[str] = ...) -> None: ...

class Profiles(_message.Message):
    __slots__ = ("error_code", "error_message", "profile")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    profile: _containers.RepeatedCompositeFieldContainer[Profile]
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., profile: _Optional[_Iterable[_Union[Profile, _Mapping]]] = ...) -> None: ...

class EditMessageRequest(_message.Message):
    __slots__ = ("session_id", "message_id", "message")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message_id: int
    message: str
    def __init__(self, session_id: _Optional[str] = ..., message_id: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class MessageRequest(_message.Message):
    __slots__ = ("session_id", "message_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message_id: int
    def __init__(self, session_id: _Optional[str] = ..., message_id: _Optional[int] = ...) -> None: ...

class ReactRequest(_message.Message):
    __slots__ = ("session_id", "message_id", "emoji", "remove")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message_id: int
    emoji: str
    remove: bool
    def __init__(self, session_id: _Optional[str] = ..., message_id: _Optional[int] = ..., emoji: _Optional[str] = ..., remove: _Optional[bool] = ...) -> None: ...

class ReceiptsRequest(_message.Message):
    __slots__ = ("session_id", "peer", "room")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    peer: str
    room: str
    def __init__(self, session_id: _Optional[str] = ..., peer: _Optional[str] = ..., room: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("username", "upto", "peer", "room")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    UPTO_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    username: str
    upto: int
    peer: str
    room: str
    def __init__(self, username: _Optional[str] = ..., upto: _Optional[int] = ..., peer: _Optional[str] = ..., room: _Optional[str] = ...) -> None: ...

class Receipts(_message.Message):
    __slots__ = ("error_code", "error_message", "receipt", "not_sharing")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    NOT_SHARING_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    receipt: _containers.RepeatedCompositeFieldContainer[Receipt]
    not_sharing: bool
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., receipt: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., not_sharing: _Optional[bool] = ...) -> None: ...

class ShareReceiptsRequest(_message.Message):
    __slots__ = ("session_id", "share")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    share: bool
    def __init__(self, session_id: _Optional[str] = ..., share: _Optional[bool] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("session_id", "query", "peer", "room", "before_message_id", "limit")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    BEFORE_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    query: str
    peer: str
    room: str
    before_message_id: int
    limit: int
    def __init__(self, session_id: _Optional[str] = ..., query: _Optional[str] = ..., peer: _Optional[str] = ..., room: _Optional[str] = ..., before_message_id: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchResults(_message.Message):
    __slots__ = ("error_code", "error_message", "message", "next_before_id")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NEXT_BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    message: _containers.RepeatedCompositeFieldContainer[Message]
    next_before_id: int
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., message: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., next_before_id: _Optional[int] = ...) -> None: ...

class SearchUsersRequest(_message.Message):
    __slots__ = ("session_id", "prefix", "limit")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    prefix: str
    limit: int
    def __init__(self, session_id: _Optional[str] = ..., prefix: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ChangePasswordRequest(_message.Message):
    __slots__ = ("session_id", "old_password", "new_password")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    old_password: str
    new_password: str
    def __init__(self, session_id: _Optional[str] = ..., old_password: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class Unread(_message.Message):
    __slots__ = ("peer", "count", "last_message_id")
    PEER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    peer: str
    count: int
    last_message_id: int
    def __init__(self, peer: _Optional[str] = ..., count: _Optional[int] = ..., last_message_id: _Optional[int] = ...) -> None: ...

class UnreadCounts(_message.Message):
    __slots__ = ("error_code", "error_message", "unread")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UNREAD_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    unread: _containers.RepeatedCompositeFieldContainer[Unread]
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., unread: _Optional[_Iterable[_Union[Unread, _Mapping]]] = ...) -> None: ...

class RoomRequest(_message.Message):
    __slots__ = ("session_id", "room", "topic")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    room: str
    topic: str
    def __init__(self, session_id: _Optional[str] = ..., room: _Optional[str] = ..., topic: _Optional[str] = ...) -> None: ...

class RoomMemberRequest(_message.Message):
    __slots__ = ("session_id", "room", "username")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    room: str
    username: str
    def __init__(self, session_id: _Optional[str] = ..., room: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class Room(_message.Message):
    __slots__ = ("name", "topic", "members", "unread", "joined", "admin", "creator")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    UNREAD_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    topic: str
    members: int
    unread: int
    joined: bool
    admin: bool
    creator: str
    def __init__(self, name: _Optional[str] = ..., topic: _Optional[str] = ..., members: _Optional[int] = ..., unread: _Optional[int] = ..., joined: _Optional[bool] = ..., admin: _Optional[bool] = ..., creator: _Optional[str] = ...) -> None: ...

class Rooms(_message.Message):
    __slots__ = ("error_code", "error_message", "room")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    room: _containers.RepeatedCompositeFieldContainer[Room]
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., room: _Optional[_Iterable[_Union[Room, _Mapping]]] = ...) -> None: ...

class RoomMember(_message.Message):
    __slots__ = ("username", "online", "joined", "admin")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    username: str
    online: bool
    joined: bool
    admin: bool
    def __init__(self, username: _Optional[str] = ..., online: _Optional[bool] = ..., joined: _Optional[bool] = ..., admin: _Optional[bool] = ...) -> None: ...

class RoomMembers(_message.Message):
    __slots__ = ("error_code", "error_message", "member")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    member: _containers.RepeatedCompositeFieldContainer[RoomMember]
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., member: _Optional[_Iterable[_Union[RoomMember, _Mapping]]] = ...) -> None: ...

class RoomHistoryRequest(_message.Message):
    __slots__ = ("session_id", "room", "before_message_id", "limit")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    BEFORE_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    room: str
    before_message_id: int
    limit: int
    def __init__(self, session_id: _Optional[str] = ..., room: _Optional[str] = ..., before_message_id: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class MarkReadRequest(_message.Message):
    __slots__ = ("session_id", "peer", "room", "upto")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    UPTO_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    peer: str
    room: str
    upto: int
    def __init__(self, session_id: _Optional[str] = ..., peer: _Optional[str] = ..., room: _Optional[str] = ..., upto: _Optional[int] = ...) -> None: ...

class ClientFrame(_message.Message):
    __slots__ = ("open", "send", "ack", "typing")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    open: OpenFrame
    send: SendFrame
    ack: AckFrame
    typing: TypingFrame
    def __init__(self, open: _Optional[_Union[OpenFrame, _Mapping]] = ..., send: _Optional[_Union[SendFrame, _Mapping]] = ..., ack: _Optional[_Union[AckFrame, _Mapping]] = ..., typing: _Optional[_Union[TypingFrame, _Mapping]] = ...) -> None: ...

class TypingFrame(_message.Message):
    __slots__ = ("peer", "room")
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    peer: str
    room: str
    def __init__(self, peer: _Optional[str] = ..., room: _Optional[str] = ...) -> None: ...

class OpenFrame(_message.Message):
    __slots__ = ("session_id", "after_message_id", "live_only", "sends_only", "events")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    SENDS_ONLY_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    after_message_id: int
    live_only: bool
    sends_only: bool
    events: bool
    def __init__(self, session_id: _Optional[str] = ..., after_message_id: _Optional[int] = ..., live_only: _Optional[bool] = ..., sends_only: _Optional[bool] = ..., events: _Optional[bool] = ...) -> None: ...

class SendFrame(_message.Message):
    __slots__ = ("request_id", "to", "message", "room", "reply_to", "file_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    to: str
    message: str
    room: str
    reply_to: int
    file_id: str
    def __init__(self, request_id: _Optional[str] = ..., to: _Optional[str] = ..., message: _Optional[str] = ..., room: _Optional[str] = ..., reply_to: _Optional[int] = ..., file_id: _Optional[str] = ...) -> None: ...

class AckFrame(_message.Message):
    __slots__ = ("message_ids",)
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("message", "result", "typing", "receipt")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    message: Message
    result: SendResult
    typing: Typing
    receipt: Receipt
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ..., result: _Optional[_Union[SendResult, _Mapping]] = ..., typing: _Optional[_Union[Typing, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class Typing(_message.Message):
    __slots__ = ("from_", "peer", "room", "expires_ms")
    FROM__FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    from_: str
    peer: str
    room: str
    expires_ms: int
    def __init__(self, from_: _Optional[str] = ..., peer: _Optional[str] = ..., room: _Optional[str] = ..., expires_ms: _Optional[int] = ...) -> None: ...

class SendResult(_message.Message):
    __slots__ = ("request_id", "message_id", "error_code", "error_message", "status", "retry_after_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    message_id: int
    error_code: int
    error_message: str
    status: int
    retry_after_ms: int
    def __init__(self, request_id: _Optional[str] = ..., message_id: _Optional[int] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., status: _Optional[int] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("username", "password")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("username", "password")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class ServerResponse(_message.Message):
    __slots__ = ("error_code", "error_message", "session_id", "message_id")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    session_id: str
    message_id: int
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., session_id: _Optional[str] = ..., message_id: _Optional[int] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("to", "message", "session_id", "request_id", "room", "reply_to", "file_id")
    TO_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    to: str
    message: str
    session_id: str
    request_id: str
    room: str
    reply_to: int
    file_id: str
    def __init__(self, to: _Optional[str] = ..., message: _Optional[str] = ..., session_id: _Optional[str] = ..., request_id: _Optional[str] = ..., room: _Optional[str] = ..., reply_to: _Optional[int] = ..., file_id: _Optional[str] = ...) -> None: ...

class ReceiveRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("session_id", "username", "before_message_id", "limit")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    BEFORE_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    username: str
    before_message_id: int
    limit: int
    def __init__(self, session_id: _Optional[str] = ..., username: _Optional[str] = ..., before_message_id: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class AcknowledgeReceivedMessagesRequest(_message.Message):
    __slots__ = ("session_id", "message_ids")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, session_id: _Optional[str] = ..., message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DeleteAccountRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("from_", "message", "message_id", "time_stamp", "to", "room", "reply_to", "edited", "deleted", "reactions", "kind", "target_id", "file")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MESSAGE: _ClassVar[Message.Kind]
        EDIT: _ClassVar[Message.Kind]
        DELETE: _ClassVar[Message.Kind]
        REACT: _ClassVar[Message.Kind]
        UNREACT: _ClassVar[Message.Kind]
    MESSAGE: Message.Kind
    EDIT: Message.Kind
    DELETE: Message.Kind
    REACT: Message.Kind
    UNREACT: Message.Kind
    FROM__FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_STAMP_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    EDITED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    REACTIONS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    from_: str
    message: str
    message_id: int
    time_stamp: _timestamp_pb2.Timestamp
    to: str
    room: str
    reply_to: int
    edited: bool
    deleted: bool
    reactions: _containers.RepeatedCompositeFieldContainer[Reaction]
    kind: Message.Kind
    target_id: int
    file: FileRef
    def __init__(self, from_: _Optional[str] = ..., message: _Optional[str] = ..., message_id: _Optional[int] = ..., time_stamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to: _Optional[str] = ..., room: _Optional[str] = ..., reply_to: _Optional[int] = ..., edited: _Optional[bool] = ..., deleted: _Optional[bool] = ..., reactions: _Optional[_Iterable[_Union[Reaction, _Mapping]]] = ..., kind: _Optional[_Union[Message.Kind, str]] = ..., target_id: _Optional[int] = ..., file: _Optional[_Union[FileRef, _Mapping]] = ...) -> None: ...

class Reaction(_message.Message):
    __slots__ = ("emoji", "users")
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    emoji: str
    users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, emoji: _Optional[str] = ..., users: _Optional[_Iterable[str]] = ...) -> None: ...

class Messages(_message.Message):
    __slots__ = ("error_code", "error_message", "message")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    error_code: int
    error_message: str
    message: _containers.RepeatedCompositeFieldContainer[Message]
    def __init__(self, error_code: _Optional[int] = ..., error_message: _Optional[str] = ..., message: _Optional[_Iterable[_Union[Message, _Mapping]]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class User(_message.Message):
    __slots__ = ("username", "status")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    username: str
    status: str
    def __init__(self, username: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class Users(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: _containers.RepeatedCompositeFieldContainer[User]
    def __init__(self, user: _Optional[_Iterable[_Union[User, _Mapping]]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("session_id", "after_message_id", "live_only", "events")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    after_message_id: int
    live_only: bool
    events: bool
    def __init__(self, session_id: _Optional[str] = ..., after_message_id: _Optional[int] = ..., live_only: _Optional[bool] = ..., events: _Optional[bool] = ...) -> None: ...
