"""The values the client library hands to its callers: messages, users and
connection events, and how they are read off the wire.

Imports: the generated protobuf modules only (every other module of the
client may import this one)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chatd.proto import chat_pb2


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    sender: str
    recipient: str  # a user, or the room for a room message
    body: str
    time: datetime
    room: str = ""  # the room, for a room message


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
    return Message(m.message_id, m.from_, m.to, m.message, when, m.room)
