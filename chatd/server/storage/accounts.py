"""Account administration as replicated state: a user's new password, an
operator's disable/enable and "log out everywhere" (log entries SetPassword,
SetDisabled, EndUserSessions), and what an operator reads of accounts.

Like the rest of apply (chatd.server.storage.store), each rule reads only the entry
and the state before it. Each `apply_*` runs inside the entry's savepoint
and returns the session hashes it ended; the store ends their streams and
updates its caches once the SQL held.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

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


def apply_set_password(
    db: sqlite3.Connection, uid: int, password_hash: str, keep: bytes
) -> list[bytes]:
    db.execute("UPDATE users SET password_hash = ? WHERE uid = ?", (password_hash, uid))
    return _end_sessions(db, uid, keep)


def apply_set_disabled(
    db: sqlite3.Connection, uid: int, disabled: bool, time_us: int
) -> list[bytes]:
    if not disabled:
        db.execute("DELETE FROM disabled_accounts WHERE uid = ?", (uid,))
        return []
    db.execute(
        "INSERT OR IGNORE INTO disabled_accounts(uid, since_us) VALUES (?, ?)", (uid, time_us)
    )
    return _end_sessions(db, uid)


def apply_end_user_sessions(db: sqlite3.Connection, uid: int) -> list[bytes]:
    return _end_sessions(db, uid)


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
