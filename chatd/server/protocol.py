"""The cluster protocol's version, and what a cluster of mixed versions may
write (a rolling upgrade).

Every call one node makes to another carries `chatd-protocol: N` (metadata),
and a slave answers the master's log stream with its own in the stream's
first headers. A node of before versions (chatd up to c87a30d, and 4e557bd,
the oldest a cluster is upgraded from) sends none: it speaks version 1.

    1  log entries: accounts, sessions, one-to-one messages, taking and
       marking delivered, account deletion, noops.
    2  rooms and room messages, read markers, password changes and an
       operator's account changes; CreateAccount's case-insensitive
       uniqueness and TakeUndelivered's byte bound.
    3  room deletion (DeleteRoom) and declining an invitation (RoomMember
       DECLINE); and new room rules from the entry that raised the
       cluster to 3 on (chatd.server.storage.room_rules): invitations wait outside the
       invitee's room quota, bounded by RoomMember.max_invitations, and a
       room nobody has joined any more goes away.
    4  editing, deleting and reacting to a message (EditMessage,
       DeleteMessage, React: chatd.server.storage.edits), replies
       (SendMessage.reply_to), whether a user shares read receipts
       (ShareReceipts), files (FileChunk, FileCommit, SendMessage.file_id:
       chatd.server.storage.files) and profiles (SetProfile).

The master writes only what every member can apply alike: while a member
speaks an older version (or has not yet been heard from since this node
became master), entries of a newer kind are refused (the client hears
UNAVAILABLE, "the cluster is being upgraded", and tries again), and entries
of an old kind are written in the old form (an old node would ignore the
new fields and apply them differently). A slave whose master speaks a newer
version than it knows applies nothing of it: it says so in one log line and
stays out of sync until it is upgraded.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatd.proto import log_pb2

VERSION = 4
HEADER = "chatd-protocol"

# entry kinds (Entry's `op`) by the version that first wrote them
_SINCE_2 = frozenset(
    {"create_room", "room_member", "mark_read", "set_password", "set_disabled", "end_user_sessions"}
)
_SINCE_3 = frozenset({"delete_room"})
_SINCE_4 = frozenset(
    {
        "edit_message",
        "delete_message",
        "react",
        "share_receipts",
        "set_profile",
        "file_chunk",
        "file_commit",
    }
)


def of(metadata: Iterable[tuple[str, str | bytes]] | None) -> int:
    """The protocol version a peer's metadata says (1: none said)."""
    for key, value in metadata or ():
        if key == HEADER:
            try:
                return int(value)
            except ValueError:
                return 1
    return 1


def metadata() -> tuple[tuple[str, str], ...]:
    return ((HEADER, str(VERSION)),)


def writable(entry: log_pb2.Entry, version: int) -> bool:
    """Whether a cluster whose oldest member speaks `version` can apply it."""
    kind = entry.WhichOneof("op")
    if version < 4 and (
        kind in _SINCE_4
        or (kind == "send_message" and (entry.send_message.reply_to or entry.send_message.file_id))
    ):
        return False  # (a reply is refused, not sent without its link; a file likewise)
    if version < 3 and (
        kind in _SINCE_3
        or (kind == "room_member" and entry.room_member.action == log_pb2.RoomMember.DECLINE)
    ):
        return False
    if version >= 2:
        return True
    if kind in _SINCE_2:
        return False
    return not (kind == "send_message" and entry.send_message.room)


def fit(entry: log_pb2.Entry, version: int) -> None:
    """Puts a writable entry in the form a cluster whose oldest member speaks
    `version` applies alike: without the fields it does not know (a node
    of 1 would ignore them, and apply the entry otherwise; a node of 2
    would ignore the invitation bound, which the rules of 2 do not use)."""
    kind = entry.WhichOneof("op")
    if version < 3 and kind == "room_member":
        entry.room_member.max_invitations = 0
    if version >= 2:
        return
    if kind == "create_account":  # names differing only in case: not refused
        entry.create_account.unique_casefold = False
    elif kind == "create_session":  # the login's password: not checked again
        entry.create_session.password_hash = ""
    elif kind == "take_undelivered":  # no byte bound (the count must be small)
        entry.take_undelivered.max_bytes = 0
