"""The values the client library hands to its callers: messages, users and
connection events, and how they are read off the wire.

Imports: the generated protobuf modules only (every other module of the
client may import this one)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from chatd.proto import chat_pb2

# a Message's kind: a message, or an event about the message `target_id`
MESSAGE, EDIT, DELETE, REACT, UNREACT = "message", "edit", "delete", "react", "unreact"
_KINDS = {0: MESSAGE, 1: EDIT, 2: DELETE, 3: REACT, 4: UNREACT}


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file a message carries (or an upload made): download it by its id."""

    file_id: str
    name: str
    content_type: str  # what the node found in its bytes
    size: int
    has_thumbnail: bool
    sha256: str  # hex


def file_of(f: chat_pb2.FileRef) -> FileRef:
    return FileRef(f.file_id, f.name, f.content_type, f.size, f.has_thumbnail, f.sha256)


@dataclass(frozen=True, slots=True)
class Message:
    """A message, or (`kind` other than MESSAGE) an event about the message
    `target_id`: its sender is who did it, its body the new text (EDIT) or
    the emoji (REACT, UNREACT). `applied` brings a message up to date with
    an event."""

    id: int
    sender: str
    recipient: str  # a user, or the room for a room message
    body: str
    time: datetime
    room: str = ""  # the room, for a room message
    kind: str = MESSAGE
    target_id: int = 0
    reply_to: int = 0  # the message this one answers (0: none)
    edited: bool = False
    deleted: bool = False  # (its body is then "")
    # (emoji, the users who reacted with it, in order), in the order they came
    reactions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    file: FileRef | None = None  # the file it carries

    @property
    def event(self) -> bool:
        return self.kind != MESSAGE


def applied(m: Message, event: Message) -> Message:
    """`m` with `event` (an edit, deletion or reaction of it) applied, as
    the node's history would show it after."""
    if event.target_id != m.id:
        return m
    if event.kind == EDIT:
        return replace(m, body=event.body, edited=True)
    if event.kind == DELETE:
        return replace(m, body="", deleted=True, reactions=())
    reactions = {emoji: list(users) for emoji, users in m.reactions}
    users = reactions.setdefault(event.body, [])
    if event.kind == REACT and event.sender not in users:
        users.append(event.sender)
    elif event.kind == UNREACT and event.sender in users:
        users.remove(event.sender)
    kept = tuple((e, tuple(u)) for e, u in reactions.items() if u)
    return replace(m, reactions=kept)


@dataclass(frozen=True, slots=True)
class Typing:
    """`sender` is typing to me (`peer`, my name) or in `room`: show it
    until `until` (the event loop's time), or until a message from
    `sender` arrives there."""

    sender: str
    peer: str
    room: str
    until: float


@dataclass(frozen=True, slots=True)
class Receipt:
    """`username` has read up to message id `upto`: of its conversation
    with `peer` (me, on a live receipt; as asked, from list_receipts), or
    of `room`."""

    username: str
    upto: int
    peer: str = ""
    room: str = ""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    online: bool


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """`state` is "connected" (first answer, or a new node after a failure),
    "lost" (a node stopped answering; retrying) or "gave-up"."""

    state: str
    address: str
    detail: str = ""


def header(metadata: Any, key: str) -> str | None:
    """The value of metadata `key` (None when absent or empty)."""
    for k, value in metadata or ():
        if k == key and value:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


def message_of(m: chat_pb2.Message) -> Message:
    ts = m.time_stamp
    when = datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=UTC)
    return Message(
        m.message_id,
        m.from_,
        m.to,
        m.message,
        when,
        m.room,
        _KINDS.get(m.kind, MESSAGE),
        m.target_id,
        m.reply_to,
        m.edited,
        m.deleted,
        tuple((r.emoji, tuple(r.users)) for r in m.reactions),
        file_of(m.file) if m.HasField("file") else None,
    )
