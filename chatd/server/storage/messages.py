"""Messages as replicated state: the `messages` and `request_ids` tables and
the apply functions of the entries that send a message, hand out a user's
undelivered ones and mark them delivered.

A one-to-one message is stored with its conversation's key (a positive
`conv`, `rows.conversation_key`) and is undelivered until GetMessages or an
acknowledgement hands it out; a room message (chatd.server.storage.rooms)
with the room's negative id, delivered per member by
chatd.server.storage.delivery. A Send's request id remembers the message it
made, for a retry, for REQUEST_ID_TTL_US. A reply's link to the message it
answers is chatd.server.storage.edits's. The one cache of this family is
the store's `last_message_id`, the newest id ever assigned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage import delivery, edits, files, room_rules
from chatd.server.storage.rooms import Room
from chatd.server.storage.rows import Applied, StoredMessage, conversation_key, message_bytes
from chatd.server.storage.tables import Tables

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender TEXT NOT NULL,
    sender_uid INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    recipient_uid INTEGER NOT NULL,
    conv INTEGER NOT NULL,
    body TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_inbox ON messages(recipient_uid, id);
CREATE INDEX IF NOT EXISTS messages_conv ON messages(conv, id);
CREATE INDEX IF NOT EXISTS messages_undelivered ON messages(recipient_uid, id)
    WHERE delivered = 0;
CREATE TABLE IF NOT EXISTS request_ids (
    seq INTEGER PRIMARY KEY,
    sender_uid INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    time_us INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS request_ids_key ON request_ids(sender_uid, request_id);
CREATE INDEX IF NOT EXISTS request_ids_time ON request_ids(time_us);
"""

# Request ids (for Send retries) are kept for this long, and at most this many
# (the newest); pruning runs at every REQUEST_ID_PRUNE_EVERY-th request id.
REQUEST_ID_TTL_US = 24 * 3600 * 1_000_000
REQUEST_ID_KEEP = 100_000
REQUEST_ID_PRUNE_EVERY = 1000


def within(rows: list[Any], max_bytes: int) -> list[Any]:
    """The first rows (id, sender, recipient, body, time) within
    `max_bytes` (message_bytes each); at least one."""
    total = 0
    for n, row in enumerate(rows):
        total += message_bytes(row[1], row[2], row[3])
        if total > max_bytes and n > 0:
            return rows[:n]
    return rows


def row_message(row: tuple[Any, ...]) -> StoredMessage:
    """(id, sender, recipient, body, time_us[, conv[, kind, target_id]]): a
    negative conv is a room's, whose name the recipient column holds; an
    event's row has its kind and target."""
    room = row[2] if len(row) > 5 and row[5] < 0 else ""
    if len(row) > 7 and row[6]:
        return StoredMessage(
            row[0], row[1], row[2], row[3], row[4], room, kind=row[6], target_id=row[7]
        )
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], room)


def apply_send_message(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.send_message
    if (sender := t.directory.known(out, op.sender, Code.NOT_LOGGED_IN)) is None:
        return out
    room: Room | None = None
    if op.room:
        out.code, room = room_rules.apply_message_to(t.rooms, op.room, sender.uid)
        if room is None:
            return out
        to_name, to_uid, conv = room.name, 0, room.conv
    else:
        if (recipient := t.directory.known(out, op.recipient, Code.NO_SUCH_RECIPIENT)) is None:
            return out
        to_name, to_uid = recipient.username, recipient.uid
        conv = conversation_key(sender.uid, recipient.uid)
    db = t.db
    # (each read of a protobuf field makes a new Python object: read once)
    request_id, reply_to, file_id, time_us = op.request_id, op.reply_to, op.file_id, entry.time_us
    if request_id:
        row = db.execute(
            "SELECT message_id FROM request_ids WHERE sender_uid = ? AND request_id = ?",
            (sender.uid, request_id),
        ).fetchone()
        if row is not None:
            out.message_id = row[0]
            out.duplicate = True
            return out
    if reply_to and not edits.reply_allowed(db, reply_to, conv):
        out.code = Code.NO_SUCH_MESSAGE
        return out
    file = None
    if file_id and (file := files.own_file(db, sender.uid, file_id)) is None:
        out.code = Code.NO_SUCH_FILE  # none, not committed, or another's
        return out
    # a room message is in no one's undelivered inbox (delivered = 1):
    # its members' streams read it by their rooms
    body = op.body
    cur = db.execute(
        "INSERT INTO messages(sender, sender_uid, recipient, recipient_uid, conv, body, "
        "time_us, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (sender.username, sender.uid, to_name, to_uid, conv, body, time_us, int(room is not None)),
    )
    mid = int(cur.lastrowid or 0)
    out.message_id = mid
    if reply_to:
        edits.record_reply(db, mid, reply_to)
    if file is not None:
        files.attach(db, mid, file.file_id)
    out.new_message = StoredMessage(
        mid,
        sender.username,
        to_name,
        body,
        time_us,
        room.name if room else "",
        reply_to=reply_to,
        file=file,
    )
    if room is not None:
        out.room_recipients = room.joined_names()
    if request_id:
        seq = db.execute(
            "INSERT INTO request_ids(sender_uid, request_id, message_id, time_us) "
            "VALUES (?, ?, ?, ?)",
            (sender.uid, request_id, mid, time_us),
        ).lastrowid
        if seq and seq % REQUEST_ID_PRUNE_EVERY == 0:
            db.execute(
                "DELETE FROM request_ids WHERE seq <= ? OR time_us < ?",
                (seq - REQUEST_ID_KEEP, time_us - REQUEST_ID_TTL_US),
            )

    def newest() -> None:
        t.last_message_id = mid

    out.after.append(newest)
    return out


def apply_take_undelivered(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.take_undelivered
    if (user := t.directory.known(out, op.username, Code.NOT_LOGGED_IN)) is None:
        return out
    db = t.db
    rows = db.execute(
        "SELECT id, sender, recipient, body, time_us, conv FROM messages "
        "WHERE recipient_uid = ? AND delivered = 0 ORDER BY id LIMIT ?",
        (user.uid, op.limit),
    ).fetchall()
    rows = sorted(rows + delivery.undelivered(db, user.uid, op.limit))[: op.limit]
    if op.max_bytes:
        rows = within(rows, op.max_bytes)
    direct = [r[0] for r in rows if r[5] >= 0]
    if direct:
        db.execute(
            "UPDATE messages SET delivered = 1 WHERE recipient_uid = ? AND delivered = 0 "
            "AND id <= ?",
            (user.uid, direct[-1]),
        )
    delivery.mark_delivered(db, user.uid, {-r[5]: r[0] for r in rows if r[5] < 0})
    # with each one's state, as history shows it (the message it answers,
    # edited...), and its file
    out.messages = files.with_files(db, edits.with_state(db, [row_message(r) for r in rows]))
    return out


def apply_mark_delivered(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.mark_delivered
    if (user := t.directory.known(out, op.username, Code.NOT_LOGGED_IN)) is None:
        return out
    t.db.executemany(
        "UPDATE messages SET delivered = 1 WHERE id = ? AND recipient_uid = ?",
        [(mid, user.uid) for mid in op.message_ids],
    )
    upto: dict[int, int] = {}
    for mid, room_id in delivery.undelivered_among(
        t.db, user.uid, json.dumps(list(op.message_ids))
    ):
        upto[room_id] = max(upto.get(room_id, 0), mid)
    delivery.mark_delivered(t.db, user.uid, upto)
    return out


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "send_message": apply_send_message,
    "take_undelivered": apply_take_undelivered,
    "mark_delivered": apply_mark_delivered,
}
