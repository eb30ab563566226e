"""Account administration as replicated state: a user's new password, an
operator's disable/enable and "log out everywhere" (log entries SetPassword,
SetDisabled, EndUserSessions), deleting an account (DeleteAccount), and
what an operator reads of accounts. Owns the `disabled_accounts` table; the
cache it changes is the directory's (chatd.server.storage.users).

Like every family of apply (the kinds in chatd.server.storage.apply), each
rule reads only the entry and the state before it and runs inside the
entry's savepoint; the sessions it ended go in `Applied.ended_sessions` (the
store ends their streams and drops them from the cache once the SQL held),
its other cache changes in `Applied.after`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage import room_rules
from chatd.server.storage.rows import Applied
from chatd.server.storage.tables import Tables

SCHEMA = """
CREATE TABLE IF NOT EXISTS disabled_accounts (
    uid INTEGER PRIMARY KEY,
    since_us INTEGER NOT NULL
);
"""


def _end_sessions(db: sqlite3.Connection, uid: int, keep: bytes = b"") -> list[bytes]:
    rows = db.execute("SELECT hash FROM sessions WHERE uid = ? AND hash != ?", (uid, keep))
    ended = [bytes(r[0]) for r in rows.fetchall()]
    db.execute("DELETE FROM sessions WHERE uid = ? AND hash != ?", (uid, keep))
    return ended


def apply_set_password(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.set_password
    if (user := t.directory.known(out, op.username)) is not None:
        t.db.execute(
            "UPDATE users SET password_hash = ? WHERE uid = ?", (op.password_hash, user.uid)
        )
        out.ended_sessions += _end_sessions(t.db, user.uid, op.keep_session)
        out.after.append(lambda: setattr(user, "password_hash", op.password_hash))
    return out


def apply_set_disabled(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.set_disabled
    if (user := t.directory.known(out, op.username)) is not None:
        if not op.disabled:
            t.db.execute("DELETE FROM disabled_accounts WHERE uid = ?", (user.uid,))
        else:
            t.db.execute(
                "INSERT OR IGNORE INTO disabled_accounts(uid, since_us) VALUES (?, ?)",
                (user.uid, entry.time_us),
            )
            out.ended_sessions += _end_sessions(t.db, user.uid)
        out.after.append(lambda: setattr(user, "disabled", op.disabled))
    return out


def apply_end_user_sessions(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    if (user := t.directory.known(out, entry.end_user_sessions.username)) is not None:
        out.ended_sessions += _end_sessions(t.db, user.uid)
    return out


def apply_delete_account(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    name = entry.delete_account.username
    if (user := t.directory.known(out, name, Code.NOT_LOGGED_IN)) is None:
        return out
    db, rooms = t.db, t.rooms
    if (gone := room_rules.apply_user_gone(rooms, db, user.uid, t.cluster_version)) is not None:
        out.after.append(gone)
    rows = db.execute("SELECT hash FROM sessions WHERE uid = ?", (user.uid,)).fetchall()
    out.ended_sessions.extend(r[0] for r in rows)
    db.execute("DELETE FROM sessions WHERE uid = ?", (user.uid,))
    db.execute("DELETE FROM messages WHERE recipient_uid = ? AND delivered = 0", (user.uid,))
    db.execute("DELETE FROM request_ids WHERE sender_uid = ?", (user.uid,))
    db.execute("DELETE FROM room_members WHERE uid = ?", (user.uid,))
    db.execute("DELETE FROM room_delivered WHERE uid = ?", (user.uid,))
    db.execute("DELETE FROM read_markers WHERE uid = ?", (user.uid,))
    db.execute("DELETE FROM disabled_accounts WHERE uid = ?", (user.uid,))
    db.execute("DELETE FROM receipt_settings WHERE uid = ?", (user.uid,))
    db.execute("UPDATE users SET deleted = 1 WHERE uid = ?", (user.uid,))
    out.deleted_user = name
    out.after.append(lambda: rooms.drop_user(user.uid))
    return out


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "set_password": apply_set_password,
    "set_disabled": apply_set_disabled,
    "end_user_sessions": apply_end_user_sessions,
    "delete_account": apply_delete_account,
}


def disabled_uids(db: sqlite3.Connection) -> set[int]:
    return {int(r[0]) for r in db.execute("SELECT uid FROM disabled_accounts")}


@dataclass(frozen=True, slots=True)
class AccountCounts:
    """What `chatd users show` adds to the cached facts: from the tables."""

    created_us: int
    disabled_since_us: int  # 0: not disabled
    messages_received: int
    undelivered: int
    rooms: int


def account_counts(db: sqlite3.Connection, uid: int) -> AccountCounts:
    def one(sql: str) -> int:
        row = db.execute(sql, (uid,)).fetchone()
        return int(row[0] or 0) if row else 0

    return AccountCounts(
        created_us=one("SELECT created_us FROM users WHERE uid = ?"),
        disabled_since_us=one("SELECT since_us FROM disabled_accounts WHERE uid = ?"),
        messages_received=one("SELECT count(*) FROM messages WHERE recipient_uid = ?"),
        undelivered=one("SELECT count(*) FROM messages WHERE recipient_uid = ? AND delivered = 0"),
        rooms=one("SELECT count(*) FROM room_members WHERE uid = ? AND joined = 1"),
    )
