"""Accounts and their sessions as replicated state: the `users` and
`sessions` tables, their cache (`Directory`: the live accounts by name, the
casefold of each name, the sessions by hash), and the apply functions of
the entries that create accounts and sessions and end or touch sessions.

Like every family of apply (the kinds in chatd.server.storage.apply), each
function reads only the entry and the state before it, runs inside the
entry's savepoint, and leaves the cache change to make once the entry's SQL
held in `Applied.after`; the sessions an entry ended (`Applied.ended_sessions`)
and the account it deleted (`Applied.deleted_user`) leave the cache through
`Directory.settle`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage.rows import Applied

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    uid INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS users_live ON users(username) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS users_name ON users(username, uid);
CREATE TABLE IF NOT EXISTS sessions (
    hash BLOB PRIMARY KEY,
    uid INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    last_used_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_uid ON sessions(uid);
CREATE INDEX IF NOT EXISTS sessions_idle ON sessions(last_used_us);
"""


@dataclass(slots=True)
class User:
    uid: int
    username: str
    password_hash: str
    disabled: bool = False  # by an operator: logins are refused


@dataclass(slots=True)
class Session:
    uid: int
    username: str
    last_used_us: int


class Directory:
    """The live accounts and the sessions, in memory: loaded from the
    tables, changed only after an entry's SQL held."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        # casefold of a live name -> that name (the older one, where names
        # differing only in case were created before they were refused)
        self.folded: dict[str, str] = {}
        self._fold_twins: set[str] = set()
        self.sessions: dict[bytes, Session] = {}

    def clear(self) -> None:
        self.users.clear()
        self.folded.clear()
        self.sessions.clear()

    def load(self, db: sqlite3.Connection, disabled: set[int]) -> None:
        """Fills the cleared cache from the tables (`disabled`: the uids an
        operator disabled)."""
        for uid, name, pw in db.execute(
            "SELECT uid, username, password_hash FROM users WHERE deleted = 0"
        ):
            self.users[name] = User(uid, name, pw)
            self._fold(name)
        for u in self.users.values():
            u.disabled = u.uid in disabled
        by_uid = {u.uid: u.username for u in self.users.values()}
        for h, uid, used in db.execute("SELECT hash, uid, last_used_us FROM sessions"):
            self.sessions[h] = Session(uid, by_uid[uid], used)

    def add(self, user: User) -> None:
        self.users[user.username] = user
        self._fold(user.username)

    def settle(self, out: Applied) -> None:
        """The account an applied entry deleted and the sessions it ended
        leave the cache (after its other changes)."""
        if out.deleted_user is not None:
            self.users.pop(out.deleted_user, None)
            self._unfold(out.deleted_user)
        for h in out.ended_sessions:
            self.sessions.pop(h, None)

    def _fold(self, name: str) -> None:
        key = name.casefold()
        if self.folded.setdefault(key, name) != name:
            self._fold_twins.add(key)  # names differing in case, from before

    def _unfold(self, name: str) -> None:
        key = name.casefold()
        if self.folded.get(key) == name:
            del self.folded[key]
            if key in self._fold_twins:  # rare: look for the other live one
                others = [n for n in self.users if n.casefold() == key]
                if others:
                    self.folded[key] = min(others, key=lambda n: self.users[n].uid)

    def find_user(self, name: str) -> str | None:
        """The live account `name` names: itself, or the one whose name
        equals it in casefold ("ALICE" finds "alice")."""
        return name if name in self.users else self.folded.get(name.casefold())

    def known(self, out: Applied, username: str, missing: Code = Code.NO_SUCH_USER) -> User | None:
        """The live account of that name, or None with `out.code` `missing`
        (an entry's actor that is gone: NOT_LOGGED_IN)."""
        user = self.users.get(username)
        if user is None:
            out.code = missing
        return user


class Tables(Protocol):
    """What of the store these apply functions use."""

    @property
    def db(self) -> sqlite3.Connection: ...
    @property
    def directory(self) -> Directory: ...


def apply_create_account(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op, d = entry.create_account, t.directory
    taken = op.username in d.users
    if taken or (op.unique_casefold and op.username.casefold() in d.folded):
        out.code = Code.USERNAME_TAKEN
        return out
    cur = t.db.execute(
        "INSERT INTO users(username, password_hash, created_us) VALUES (?, ?, ?)",
        (op.username, op.password_hash, entry.time_us),
    )
    out.new_uid = uid = int(cur.lastrowid or 0)
    out.after.append(lambda: d.add(User(uid, op.username, op.password_hash)))
    return out


def apply_create_session(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op, d = entry.create_session, t.directory
    if (user := d.known(out, op.username)) is None:
        return out
    if op.password_hash and op.password_hash != user.password_hash:
        out.code = Code.WRONG_PASSWORD  # changed while the login hashed
        return out
    if user.disabled:  # disabled while the login hashed
        out.code = Code.ACCOUNT_DISABLED
        return out
    t.db.execute(
        "INSERT OR REPLACE INTO sessions(hash, uid, created_us, last_used_us) VALUES (?, ?, ?, ?)",
        (op.session_hash, user.uid, entry.time_us, entry.time_us),
    )

    def opened() -> None:
        d.sessions[op.session_hash] = Session(user.uid, user.username, entry.time_us)

    out.after.append(opened)
    return out


def apply_end_session(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    h = entry.end_session.session_hash
    if h not in t.directory.sessions:
        out.code = Code.NOT_LOGGED_IN
        return out
    t.db.execute("DELETE FROM sessions WHERE hash = ?", (h,))
    out.ended_sessions.append(h)
    return out


def apply_touch_session(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    h, d = entry.touch_session.session_hash, t.directory
    t.db.execute("UPDATE sessions SET last_used_us = ? WHERE hash = ?", (entry.time_us, h))

    def touched() -> None:
        s = d.sessions.get(h)
        if s is not None:
            s.last_used_us = entry.time_us

    out.after.append(touched)
    return out


def apply_expire_sessions(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    since = entry.expire_sessions.idle_since_us
    rows = t.db.execute("SELECT hash FROM sessions WHERE last_used_us < ?", (since,)).fetchall()
    t.db.execute("DELETE FROM sessions WHERE last_used_us < ?", (since,))
    out.ended_sessions.extend(r[0] for r in rows)
    return out


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "create_account": apply_create_account,
    "create_session": apply_create_session,
    "end_session": apply_end_session,
    "touch_session": apply_touch_session,
    "expire_sessions": apply_expire_sessions,
}
