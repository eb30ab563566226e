"""What apply and the reads hand out, shared by every table family: a
stored message, what applying one entry did (`Applied`), and the small
functions of rows every family uses (the time rows are stamped with, a
conversation's key, a message's size against an answer's byte bound)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chatd.contract import Code


@dataclass(frozen=True, slots=True)
class FileRef:
    """A committed file (chatd.server.storage.files), as a message carries it."""

    file_id: str
    name: str
    content_type: str
    size: int
    sha256: str  # hex
    has_thumbnail: bool


# Not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, four times the cost of a plain one's (21,600 against
# 5,200 instructions; every send makes one on every node, every read one a
# message). Nothing changes one once made; it hashes by value all the same.
@dataclass(unsafe_hash=True, slots=True)
class StoredMessage:
    id: int
    sender: str
    recipient: str  # a user, or for a room message the room's name
    body: str
    time_us: int
    room: str = ""  # the room's name, for a room message
    # an event (chatd.server.storage.edits): its kind (EDIT, DELETE, REACT,
    # UNREACT; 0: a message) and the message it is about; `sender` is who
    # did it, `body` the new text or the emoji
    kind: int = 0
    target_id: int = 0
    # a message's state, where a read fills it in (history, a stream's
    # backlog): the message it answers, whether edited or deleted, and its
    # reactions (emoji, the users who reacted with it, in order)
    reply_to: int = 0
    edited: bool = False
    deleted: bool = False
    reactions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    file: FileRef | None = None  # the file it carries (protocol 4)


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """A read marker that moved: `username` read the conversation with
    `peer`, or `room`, up to `upto`; told to `to` (the other parties who
    share receipts, none when `username` does not)."""

    username: str
    peer: str
    room: str
    upto: int
    to: tuple[str, ...]


@dataclass(slots=True)
class Applied:
    """What applying one entry did: its outcome for the client who asked."""

    index: int
    code: Code = Code.OK
    message_id: int = 0
    duplicate: bool = False
    new_message: StoredMessage | None = None
    messages: list[StoredMessage] = field(default_factory=list)
    ended_sessions: list[bytes] = field(default_factory=list)
    deleted_user: str | None = None
    new_uid: int = 0
    # who a new room message reaches (the members who joined); None: the
    # message's recipient alone
    room_recipients: list[str] | None = None
    # an event made (an edit, a deletion, a reaction): the parties of its
    # one-to-one conversation, or its room's members, in room_recipients
    receipt: ReadReceipt | None = None  # a read marker that moved
    # cache changes to make once the entry's SQL held, in order (each table
    # family's apply functions add their own)
    after: list[Callable[[], None]] = field(default_factory=list, compare=False, repr=False)


def now_us() -> int:
    """The time rows are stamped with: microseconds since the epoch."""
    return time.time_ns() // 1000


def conversation_key(uid_a: int, uid_b: int) -> int:
    low, high = sorted((uid_a, uid_b))
    return (low << 32) | high


def message_bytes(sender: str, recipient: str, body: str) -> int:
    """What a message counts against an answer's byte bound: its names and
    body, and 32 bytes for the rest of it."""
    return len(sender.encode()) + len(recipient.encode()) + len(body.encode()) + 32
