"""How far each member's room messages were handed out, and the read
markers: the `room_delivered` and `read_markers` tables, and the apply
function of MarkRead.

For a member who was not connected, GetMessages hands room messages out as
it does messages to the user, and `room_delivered` records how far
(acknowledgements move it too). Read markers record, per user and
conversation (a peer or a room), the message id read up to. These tables
have no cache: apply and the reads query them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage import receipts
from chatd.server.storage.rooms import Db
from chatd.server.storage.rows import Applied, ReadReceipt, conversation_key
from chatd.server.storage.tables import Tables

SCHEMA = """
CREATE TABLE IF NOT EXISTS room_delivered (
    uid INTEGER NOT NULL,
    room_id INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    PRIMARY KEY (uid, room_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_markers (
    uid INTEGER NOT NULL,
    conv INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    PRIMARY KEY (uid, conv)
) WITHOUT ROWID;
"""


# A member's room messages not yet handed out: after the join and after
# what GetMessages or an acknowledgement already delivered, and not the
# member's own (it has those).
_UNDELIVERED = (
    "FROM room_members r JOIN messages m ON m.conv = -r.room_id "
    "AND m.id > max(r.since_id, coalesce((SELECT upto FROM room_delivered d "
    "WHERE d.uid = r.uid AND d.room_id = r.room_id), 0)) AND m.sender_uid != r.uid "
    "WHERE r.uid = ? AND r.joined = 1"
)


def undelivered(db: Db, uid: int, limit: int) -> list[tuple[Any, ...]]:
    """Up to `limit` of the member's undelivered room messages, oldest first:
    (id, sender, recipient, body, time_us, conv) rows."""
    rows: list[tuple[Any, ...]] = db.execute(  # type: ignore[attr-defined]
        f"SELECT m.id, m.sender, m.recipient, m.body, m.time_us, m.conv {_UNDELIVERED} "
        "ORDER BY m.id LIMIT ?",
        (uid, limit),
    ).fetchall()
    return rows


def undelivered_among(db: Db, uid: int, ids_json: str) -> list[tuple[int, int]]:
    """(id, room id) of those of the ids (a JSON list) that are the member's
    undelivered room messages."""
    rows = db.execute(  # type: ignore[attr-defined]
        f"SELECT m.id, r.room_id {_UNDELIVERED} "
        "AND m.id IN (SELECT value FROM json_each(?)) ORDER BY m.id",
        (uid, ids_json),
    ).fetchall()
    return [(int(a), int(b)) for a, b in rows]


def mark_delivered(db: Db, uid: int, upto: dict[int, int]) -> None:
    """The member's room messages are delivered up to upto[room id]."""
    for room_id, mid in sorted(upto.items()):
        db.execute(
            "INSERT INTO room_delivered(uid, room_id, upto) VALUES (?, ?, ?) "
            "ON CONFLICT(uid, room_id) DO UPDATE SET upto = max(upto, excluded.upto)",
            (uid, room_id, mid),
        )


def apply_mark_read(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    """Moves the user's read marker of a conversation forward to `op.upto`;
    a marker that moved is a receipt for the conversation's other parties
    (chatd.server.storage.receipts)."""
    op = entry.mark_read
    if (user := t.directory.known(out, op.username, Code.NOT_LOGGED_IN)) is None:
        return out
    if op.room:
        room = t.rooms.find(op.room)
        if room is None:
            out.code = Code.NO_SUCH_ROOM
            return out
        if user.uid not in room.members:
            out.code = Code.NOT_A_MEMBER
            return out
        conv = room.conv
        others = {m.uid: m.name for m in room.members.values() if m.joined}
    else:
        if (peer := t.directory.known(out, op.peer)) is None:
            return out
        conv = conversation_key(user.uid, peer.uid)
        others = {peer.uid: peer.username}
    before = t.db.execute(
        "SELECT upto FROM read_markers WHERE uid = ? AND conv = ?", (user.uid, conv)
    ).fetchone()
    t.db.execute(
        "INSERT INTO read_markers(uid, conv, upto) VALUES (?, ?, ?) "
        "ON CONFLICT(uid, conv) DO UPDATE SET upto = max(upto, excluded.upto)",
        (user.uid, conv, op.upto),
    )
    others.pop(user.uid, None)
    if (before is None or before[0] < op.upto) and others:
        told = receipts.sharing(t.db, [user.uid, *sorted(others)])
        to = tuple(others[uid] for uid in sorted(others) if uid in told)
        if user.uid in told and to:
            out.receipt = ReadReceipt(user.username, op.peer, op.room, op.upto, to)
    return out


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "mark_read": apply_mark_read,
}
