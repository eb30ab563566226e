"""Edits, deletions, reactions and replies as replicated state (protocol 4):
the `message_events`, `message_state` and `reactions` tables and the apply
functions of the entries that edit, delete and react to a message.

A message's state is kept beside it, never in a column of `messages`: the
message it answers, when it was last edited, whether it was deleted
(`message_state`, a row only for a message that has any), and who reacted
with which emoji (`reactions`). An edit changes `messages.body`; a deletion
empties it (the text is gone for everyone) and drops the reactions.

Each edit, deletion and reaction added or taken back is also an event row
(`message_events`) whose id is taken from the messages' own AUTOINCREMENT
sequence, so events and messages share one id order: a stream that resumes
after an id sees both in order, and a client tells them apart by id. An
event reaches the parties of a one-to-one conversation (`uid_a`, `uid_b`)
or the room's members who joined (by `conv`, as room messages do).

Who may: a user acts only on a message they may read (a party of its
one-to-one conversation, a member who joined its room); for any other the
answer is NO_SUCH_MESSAGE, as for one that does not exist. Edits are the
author's, within the entry's `window_us`; deletions the author's or an
admin's of the room.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage.rows import Applied, StoredMessage
from chatd.server.storage.tables import Tables

SCHEMA = """
CREATE TABLE IF NOT EXISTS message_events (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    target_id INTEGER NOT NULL,
    actor TEXT NOT NULL,
    actor_uid INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    conv INTEGER NOT NULL,
    uid_a INTEGER NOT NULL,
    uid_b INTEGER NOT NULL,
    body TEXT NOT NULL,
    time_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS message_events_conv ON message_events(conv, id);
CREATE INDEX IF NOT EXISTS message_events_a ON message_events(uid_a, id);
CREATE INDEX IF NOT EXISTS message_events_b ON message_events(uid_b, id);
CREATE TABLE IF NOT EXISTS message_state (
    id INTEGER PRIMARY KEY,
    reply_to INTEGER NOT NULL,
    edited_us INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reactions (
    message_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    emoji TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (message_id, uid, emoji)
) WITHOUT ROWID;
"""

# event kinds (chat.proto's Message.Kind)
EDIT, DELETE, REACT, UNREACT = 1, 2, 3, 4

_STATE = (
    "INSERT INTO message_state(id, reply_to, edited_us, deleted) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET "
)


@dataclass(frozen=True, slots=True)
class Target:
    """A message an entry acts on, as its actor may read it."""

    id: int
    sender_uid: int
    recipient: str
    recipient_uid: int
    conv: int
    time_us: int
    deleted: bool
    room: str  # its room's name ("": one-to-one)
    reach: list[str]  # who its events reach
    admin: bool  # the actor is an admin of its room


def target(t: Tables, uid: int, message_id: int) -> Target | None:
    """The message `message_id` if the user `uid` may read it (None: no
    such message, or not theirs to see)."""
    row = t.db.execute(
        "SELECT m.sender, m.sender_uid, m.recipient, m.recipient_uid, m.conv, m.time_us, "
        "coalesce(s.deleted, 0) FROM messages m LEFT JOIN message_state s ON s.id = m.id "
        "WHERE m.id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        return None
    sender, sender_uid, recipient, recipient_uid, conv, time_us, deleted = row
    if conv < 0:
        room = t.rooms.by_id.get(-conv)
        me = room.members.get(uid) if room is not None else None
        if room is None or me is None or not me.joined:
            return None
        reach, name, admin = room.joined_names(), room.name, me.admin
    else:
        if uid not in (sender_uid, recipient_uid):
            return None
        reach = list(dict.fromkeys((sender, recipient)))
        name, admin = "", False
    return Target(
        message_id,
        sender_uid,
        recipient,
        recipient_uid,
        conv,
        time_us,
        bool(deleted),
        name,
        reach,
        admin,
    )


def _event(
    t: Tables,
    out: Applied,
    kind: int,
    tg: Target,
    actor: str,
    actor_uid: int,
    body: str,
    time_us: int,
) -> None:
    """Writes the event row, its id the messages' next; the outcome says
    it, to be published to whom it reaches."""
    db = t.db
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    eid = max(int(row[0]) if row else 0, t.last_message_id) + 1
    if row is None:
        db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('messages', ?)", (eid,))
    else:
        db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'", (eid,))
    uid_a, uid_b = (0, 0) if tg.room else (tg.sender_uid, tg.recipient_uid)
    db.execute(
        "INSERT INTO message_events(id, kind, target_id, actor, actor_uid, recipient, conv, "
        "uid_a, uid_b, body, time_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (eid, kind, tg.id, actor, actor_uid, tg.recipient, tg.conv, uid_a, uid_b, body, time_us),
    )
    out.message_id = eid
    out.new_message = StoredMessage(
        eid, actor, tg.recipient, body, time_us, tg.room, kind=kind, target_id=tg.id
    )
    out.room_recipients = tg.reach

    def newest() -> None:
        t.last_message_id = eid

    out.after.append(newest)


def _acting(t: Tables, out: Applied, actor: str, message_id: int) -> tuple[int, Target] | None:
    """The actor's uid and the target it may act on (None: refused, the
    code in `out`)."""
    if (user := t.directory.known(out, actor, Code.NOT_LOGGED_IN)) is None:
        return None
    tg = target(t, user.uid, message_id)
    if tg is None or tg.deleted:
        out.code = Code.NO_SUCH_MESSAGE
        return None
    return user.uid, tg


def apply_edit_message(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.edit_message
    if (acting := _acting(t, out, op.actor, op.message_id)) is None:
        return out
    uid, tg = acting
    if tg.sender_uid != uid:
        out.code = Code.NOT_ALLOWED
        return out
    if op.window_us and entry.time_us - tg.time_us > op.window_us:
        out.code = Code.EDIT_WINDOW_PASSED
        return out
    t.db.execute("UPDATE messages SET body = ? WHERE id = ?", (op.body, tg.id))
    t.db.execute(_STATE + "edited_us = excluded.edited_us", (tg.id, 0, entry.time_us, 0))
    _event(t, out, EDIT, tg, op.actor, uid, op.body, entry.time_us)
    return out


def apply_delete_message(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.delete_message
    if (acting := _acting(t, out, op.actor, op.message_id)) is None:
        return out
    uid, tg = acting
    if tg.sender_uid != uid and not tg.admin:
        out.code = Code.NOT_ALLOWED
        return out
    t.db.execute("UPDATE messages SET body = '' WHERE id = ?", (tg.id,))
    t.db.execute(_STATE + "deleted = 1", (tg.id, 0, 0, 1))
    t.db.execute("DELETE FROM reactions WHERE message_id = ?", (tg.id,))
    _event(t, out, DELETE, tg, op.actor, uid, "", entry.time_us)
    return out


def apply_react(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.react
    if (acting := _acting(t, out, op.actor, op.message_id)) is None:
        return out
    uid, tg = acting
    db = t.db
    key = (tg.id, uid, op.emoji)
    there = db.execute(
        "SELECT 1 FROM reactions WHERE message_id = ? AND uid = ? AND emoji = ?", key
    ).fetchone()
    if op.remove:
        if there is None:
            return out  # nothing to take back: no event
        db.execute("DELETE FROM reactions WHERE message_id = ? AND uid = ? AND emoji = ?", key)
        _event(t, out, UNREACT, tg, op.actor, uid, op.emoji, entry.time_us)
        return out
    if there is not None:
        return out  # there already: no event
    if op.max_per_user:
        held = db.execute(
            "SELECT count(*) FROM reactions WHERE message_id = ? AND uid = ?", (tg.id, uid)
        ).fetchone()[0]
        if held >= op.max_per_user:
            out.code = Code.INVALID_REACTION
            return out
    _event(t, out, REACT, tg, op.actor, uid, op.emoji, entry.time_us)
    db.execute(
        "INSERT INTO reactions(message_id, uid, emoji, seq) VALUES (?, ?, ?, ?)",
        (*key, out.message_id),
    )
    return out


# -- what a Send of a reply and a room's deletion do here --


def reply_allowed(db: Any, reply_to: int, conv: int) -> bool:
    """Whether a new message of conversation `conv` may answer message
    `reply_to`: one of the same conversation (whose sender may read it)."""
    row = db.execute("SELECT conv FROM messages WHERE id = ?", (reply_to,)).fetchone()
    return row is not None and row[0] == conv


def record_reply(db: Any, message_id: int, reply_to: int) -> None:
    db.execute(_STATE + "reply_to = excluded.reply_to", (message_id, reply_to, 0, 0))


def forget_conversation(db: Any, conv: int) -> None:
    """Deletes the state and the events of a conversation's messages (a
    room deleted: before its messages go)."""
    db.execute(
        "DELETE FROM reactions WHERE message_id IN (SELECT id FROM messages WHERE conv = ?)",
        (conv,),
    )
    db.execute(
        "DELETE FROM message_state WHERE id IN (SELECT id FROM messages WHERE conv = ?)", (conv,)
    )
    db.execute("DELETE FROM message_events WHERE conv = ?", (conv,))


# -- reads (the reader connection) --


def inbox_events_sql() -> str:
    """The events a user's stream gets with after < id <= upto: of the
    one-to-one conversations they are a party of, and of the rooms they
    joined, from the join on. Arguments: uid, after, upto, uid, uid,
    after, upto, after, upto, uid. Columns as messages' inbox rows, then
    kind and target."""
    cols = "e.id, e.actor, e.recipient, e.body, e.time_us, e.conv, e.kind, e.target_id"
    return (
        f"SELECT {cols} FROM message_events e WHERE e.uid_a = ? AND e.id > ? AND e.id <= ? "
        "UNION ALL "
        f"SELECT {cols} FROM message_events e WHERE e.uid_b = ? AND e.uid_a != ? "
        "AND e.id > ? AND e.id <= ? "
        "UNION ALL "
        f"SELECT {cols} FROM room_members r JOIN message_events e ON e.conv = -r.room_id "
        "AND e.id > max(?, r.since_id) AND e.id <= ? WHERE r.uid = ? AND r.joined = 1"
    )


def with_state(db: Any, page: list[StoredMessage]) -> list[StoredMessage]:
    """The page's messages with their state filled in: the message each
    answers, edited, deleted, and reactions (per emoji in the order the
    first of it came, its users in the order they reacted)."""
    ids = json.dumps([m.id for m in page if not m.kind])
    if ids == "[]":
        return page
    state = {
        int(i): (int(r), bool(e), bool(d))
        for i, r, e, d in db.execute(
            "SELECT id, reply_to, edited_us, deleted FROM message_state "
            "WHERE id IN (SELECT value FROM json_each(?))",
            (ids,),
        )
    }
    reactions: dict[int, dict[str, list[str]]] = {}
    for mid, emoji, name in db.execute(
        "SELECT r.message_id, r.emoji, coalesce(u.username, '') FROM reactions r "
        "LEFT JOIN users u ON u.uid = r.uid "
        "WHERE r.message_id IN (SELECT value FROM json_each(?)) ORDER BY r.message_id, r.seq",
        (ids,),
    ):
        reactions.setdefault(int(mid), {}).setdefault(str(emoji), []).append(str(name))
    if not state and not reactions:
        return page
    out = []
    for m in page:
        reply_to, edited, deleted = state.get(m.id, (0, False, False))
        got = reactions.get(m.id, {})
        if reply_to or edited or deleted or got:
            m = replace(
                m,
                reply_to=reply_to,
                edited=edited,
                deleted=deleted,
                reactions=tuple((e, tuple(users)) for e, users in got.items()),
            )
        out.append(m)
    return out


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "edit_message": apply_edit_message,
    "delete_message": apply_delete_message,
    "react": apply_react,
}
