"""The SQLite store: schema, the replicated log, apply, reads and the digests.

Promise: every log entry is appended and applied in the same transaction, so a
node never holds state its log does not explain. Apply is deterministic: it
reads only the entry, its index and the state before it. The store knows
nothing of gRPC or of roles; the node driver decides when to begin and commit.

Two digests: `digest`, the chain over the log entries (equal logs), and
`state_digest`, over the rows of the replicated tables (equal data;
chatd.server.storage.statedigest). The state digest is kept as apply changes rows,
committed with each batch, checked against the tables when the store opens
(a file changed outside chatd refuses to open) and recomputed from the
tables of an installed snapshot; the last DIGEST_HISTORY indexes' digests
are kept in memory, for comparing with another node's at the same index.

Threading: the writer connection is used by one caller at a time (apply on
the event loop, the commit's fsync in a worker thread); the reader connection
serves the paged reads (backlog, history) from a worker thread, and only sees
committed data; a third connection, opened on first use, copies the
write-ahead log into the database file from a thread of its own
(`checkpoint`). Replacing or closing the store takes the locks of both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatd.contract import Code
from chatd.core.log import EpochRuns
from chatd.proto import log_pb2
from chatd.server.errors import StoreError as StoreError  # chatd.cli imports it from here
from chatd.server.storage import accounts, rooms, schema, statedigest

log = logging.getLogger(__name__)

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    idx INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    digest BLOB NOT NULL,
    entry BLOB NOT NULL
);
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
CREATE TABLE IF NOT EXISTS cluster_settings (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""
    + rooms.SCHEMA
    + accounts.SCHEMA
)

# Request ids (for Send retries) are kept for this long, and at most this many
# (the newest); pruning runs at every REQUEST_ID_PRUNE_EVERY-th request id.
REQUEST_ID_TTL_US = 24 * 3600 * 1_000_000
REQUEST_ID_KEEP = 100_000
REQUEST_ID_PRUNE_EVERY = 1000

RECENT_ENTRIES = 20_000  # entries kept in memory for replication
DIGEST_HISTORY = 4096  # indexes whose (log, state) digests are kept in memory
GENESIS_DIGEST = bytes(32)
_EPOCH = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    sender: str
    recipient: str  # a user, or for a room message the room's name
    body: str
    time_us: int
    room: str = ""  # the room's name, for a room message


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
    # cache changes to make once the entry's SQL held (chatd.server.storage.rooms)
    after: list[Callable[[], None]] = field(default_factory=list, compare=False, repr=False)


def now_us() -> int:
    """The time rows are stamped with: microseconds since the epoch."""
    return time.time_ns() // 1000


def chain_digest(previous: bytes, epoch: int, entry: bytes) -> bytes:
    """The digest after appending one entry: equal logs give equal digests."""
    return hashlib.sha256(previous + _EPOCH.pack(epoch) + entry).digest()


def conversation_key(uid_a: int, uid_b: int) -> int:
    low, high = sorted((uid_a, uid_b))
    return (low << 32) | high


def message_bytes(sender: str, recipient: str, body: str) -> int:
    """What a message counts against an answer's byte bound: its names and
    body, and 32 bytes for the rest of it."""
    return len(sender.encode()) + len(recipient.encode()) + len(body.encode()) + 32


def _within(rows: list[Any], max_bytes: int) -> list[Any]:
    """The first rows (id, sender, recipient, body, time) within
    `max_bytes` (message_bytes each); at least one."""
    total = 0
    for n, row in enumerate(rows):
        total += message_bytes(row[1], row[2], row[3])
        if total > max_bytes and n > 0:
            return rows[:n]
    return rows


def _row_message(row: tuple[Any, ...]) -> StoredMessage:
    """(id, sender, recipient, body, time_us[, conv]): a negative conv is a
    room's, whose name the recipient column holds."""
    room = row[2] if len(row) > 5 and row[5] < 0 else ""
    return StoredMessage(row[0], row[1], row[2], row[3], row[4], room)


class Store:
    """One node's SQLite file: the log, the tables it produces, and caches of
    the small tables (live users, sessions) that every request consults."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._db = self._connect()
        self._reader = self._connect()
        self._reader_lock = threading.Lock()
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        self._closed = False
        self.commits = 0
        self._state = statedigest.StateDigest()
        # index -> (log digest, state digest) of the newest applied indexes
        self.digest_history: dict[int, tuple[bytes, int]] = {}
        self.users: dict[str, User] = {}
        # casefold of a live name -> that name (the older one, where names
        # differing only in case were created before they were refused)
        self.folded: dict[str, str] = {}
        self._fold_twins: set[str] = set()
        self.sessions: dict[bytes, Session] = {}
        self.rooms = rooms.Rooms()
        self.cluster_version = 1  # what the log may hold (chatd.server.protocol)
        self.last_index = 0
        self.last_epoch = 0
        self.digest = GENESIS_DIGEST
        self.last_message_id = 0
        self.last_time_us = 0
        self.runs = EpochRuns()  # the epoch of every index the log holds
        self.recent: dict[int, bytes] = {}  # the newest entries' bytes, for replication
        self._in_batch = False
        try:
            try:
                schema.upgrade(self._db, SCHEMA, str(path))
                self._state.attach(self._db)
                self._load()
                self._verify()
            except sqlite3.DatabaseError as exc:  # "database disk image is malformed"
                raise StoreError(self._refusal(f"SQLite: {exc}")) from exc
        except BaseException:
            self._close_connections()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=5000")  # first: the others may wait on a lock
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.execute("PRAGMA cache_size=-16000")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        return db

    def _load(self) -> None:
        db = self._db
        for uid, name, pw in db.execute(
            "SELECT uid, username, password_hash FROM users WHERE deleted = 0"
        ):
            self.users[name] = User(uid, name, pw)
            self._fold(name)
        row = db.execute("SELECT value FROM cluster_settings WHERE name = 'version'").fetchone()
        self.cluster_version = int(row[0]) if row else 1  # (a log of before versions: 1)
        disabled = accounts.disabled_uids(db)
        for u in self.users.values():
            u.disabled = u.uid in disabled
        by_uid = {u.uid: u.username for u in self.users.values()}
        for h, uid, used in db.execute("SELECT hash, uid, last_used_us FROM sessions"):
            self.sessions[h] = Session(uid, by_uid[uid], used)
        self.rooms.load(db)
        self._load_positions()

    def _load_positions(self) -> None:
        self.last_index = int(self.get_meta("applied_index", 0))
        self.last_epoch = int(self.get_meta("last_epoch", 0))
        self.digest = bytes(self.get_meta("digest", GENESIS_DIGEST))
        self.last_time_us = int(self.get_meta("last_time_us", 0))
        self.runs = EpochRuns((int(e), int(i)) for e, i in json.loads(self.get_meta("runs", "[]")))
        # the newest id ever assigned (AUTOINCREMENT's), not the newest row's:
        # deleting an account deletes its undelivered messages, the newest
        # perhaps, and a reopened store must go on as one that never closed
        row = self._db.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0), "
            "coalesce((SELECT max(id) FROM messages), 0))"
        ).fetchone()
        self.last_message_id = int(row[0] or 0)
        stored = self.get_meta("state_digest")
        self._state.value = 0 if stored is None else statedigest.from_bytes(bytes(stored))
        for i in [i for i in self.digest_history if i >= self.last_index]:
            del self.digest_history[i]  # a rolled-back batch's, or the stale last one
        self.digest_history[self.last_index] = (self.digest, self._state.value)

    def _verify(self) -> None:
        """Checks the file against itself: SQLite's quick_check, and the state
        digest recomputed from the tables against the one committed with the
        last batch. A mismatch means the file was changed outside chatd (an
        edit, a restored copy, a bad disk): the node must not serve from it."""
        problems = [str(r[0]) for r in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            first = " ".join(problems[0].split())  # one line, for the log
            raise StoreError(self._refusal(f"SQLite's quick_check fails: {first}"))
        stored = self.get_meta("state_digest")
        actual = statedigest.scan(self._db)
        if stored is None:  # a new file, or one written before the state digest
            if self.last_index > 0:
                log.info("%s: no state digest recorded yet; recorded it now", self.path)
            self.set_meta("state_digest", statedigest.to_bytes(actual))
            self._state.value = actual
            self.digest_history = {self.last_index: (self.digest, actual)}
        elif actual != self._state.value:
            raise StoreError(
                self._refusal(
                    f"its tables give state digest {statedigest.to_bytes(actual).hex()}, not "
                    f"{statedigest.to_bytes(self._state.value).hex()} as recorded at index "
                    f"{self.last_index}"
                )
            )

    def _refusal(self, why: str) -> str:
        return (
            f"{self.path} was changed outside chatd ({why}); this node will not serve "
            f"from it. Move the data dir {self.path.parent} aside and start the node "
            "again with an empty one, joining the cluster: chatd serve --join HOST:PORT"
        )

    @property
    def state_digest(self) -> bytes:
        """The digest of the replicated tables as applied so far."""
        return statedigest.to_bytes(self._state.value)

    def digests_at(self, index: int) -> tuple[bytes, bytes] | None:
        """(log digest, state digest) after applying `index`, if still known."""
        got = self.digest_history.get(index)
        return None if got is None else (got[0], statedigest.to_bytes(got[1]))

    # -- node-local metadata (node id, epoch): durable, never replicated --

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: object) -> None:
        """Writes one key; inside a batch it commits with the batch."""
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- the write path: begin, append (apply) entries, commit --

    def begin(self) -> None:
        assert not self._in_batch, "batch already open"
        self._db.execute("BEGIN IMMEDIATE")
        self._in_batch = True

    def append(self, entry: log_pb2.Entry, data: bytes, epoch: int) -> Applied:
        """Appends one entry at the next index and applies it, inside the open
        batch. If apply fails, nothing of the entry remains and it raises."""
        assert self._in_batch, "append outside a batch"
        index = self.last_index + 1
        digest = chain_digest(self.digest, epoch, data)
        db = self._db
        state_before = self._state.value
        db.execute("SAVEPOINT entry")
        try:
            db.execute(
                "INSERT INTO log(idx, epoch, digest, entry) VALUES (?, ?, ?, ?)",
                (index, epoch, digest, data),
            )
            applied = self._apply(index, entry)
        except BaseException:
            db.execute("ROLLBACK TO entry")
            db.execute("RELEASE entry")
            self._state.value = state_before  # the triggers counted rows now gone
            raise
        db.execute("RELEASE entry")
        self.digest_history[index] = (digest, self._state.value)
        self.digest_history.pop(index - DIGEST_HISTORY, None)
        self._cache_effects(applied, entry)
        self.recent[index] = data
        self.recent.pop(index - RECENT_ENTRIES, None)
        if self.runs.extend(index, epoch):
            self.set_meta("runs", json.dumps(self.runs.pairs))
        self.last_index, self.last_epoch, self.digest = index, epoch, digest
        self.last_time_us = max(self.last_time_us, entry.time_us)
        return applied

    def rollback(self) -> None:
        """Abandons the open batch (used only when applying it failed)."""
        assert self._in_batch
        self._db.execute("ROLLBACK")
        self._in_batch = False
        self.users.clear()
        self.folded.clear()
        self.sessions.clear()
        self.recent.clear()
        self._load()

    def commit(self) -> None:
        """Makes the batch durable. Blocking (fsync): run it off the event loop."""
        assert self._in_batch
        self._db.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (
                ("applied_index", self.last_index),
                ("last_epoch", self.last_epoch),
                ("digest", self.digest),
                ("last_time_us", self.last_time_us),
                ("state_digest", statedigest.to_bytes(self._state.value)),
            ),
        )
        self._db.execute("COMMIT")
        self._in_batch = False
        self.commits += 1

    def checkpoint(self) -> None:
        """Copies the committed pages of the write-ahead log into the database
        file, on a connection of its own, while writers go on (a passive
        checkpoint). Blocking: run it in a thread of its own. A commit then
        finds little left to copy when the log reaches SQLite's automatic
        checkpoint size, so the copy and its fsync stay off the write path."""
        with self._checkpoint_lock:
            if self._closed:
                return
            if self._checkpointer is None:
                self._checkpointer = self._connect()
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _close_checkpointer(self) -> None:
        """Call with the checkpoint lock held."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    def close(self) -> None:
        # A failed COMMIT (SQLITE_FULL, SQLITE_IOERR) has already rolled the
        # transaction back: a ROLLBACK then raises and the fatal path dies.
        if self._in_batch and self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._in_batch = False
        self._close_connections()

    def _close_connections(self) -> None:
        with self._checkpoint_lock:
            self._closed = True
            self._close_checkpointer()
        with self._reader_lock:
            self._reader.close()
        self._db.close()

    # -- apply: one function per entry kind --

    def _apply(self, index: int, entry: log_pb2.Entry) -> Applied:
        kind = entry.WhichOneof("op")
        handler = getattr(self, f"_apply_{kind}", None)
        if handler is None:
            raise ValueError(f"log entry {index} has unknown kind {kind!r}")
        result: Applied = handler(Applied(index), entry)
        return result

    def _apply_noop(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        return out

    def _apply_create_account(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.create_account
        taken = op.username in self.users
        if taken or (op.unique_casefold and op.username.casefold() in self.folded):
            out.code = Code.USERNAME_TAKEN
            return out
        cur = self._db.execute(
            "INSERT INTO users(username, password_hash, created_us) VALUES (?, ?, ?)",
            (op.username, op.password_hash, entry.time_us),
        )
        out.new_uid = int(cur.lastrowid or 0)
        return out

    def _apply_create_session(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.create_session
        if (user := self._known(out, op.username)) is None:
            return out
        if op.password_hash and op.password_hash != user.password_hash:
            out.code = Code.WRONG_PASSWORD  # changed while the login hashed
            return out
        if user.disabled:  # disabled while the login hashed
            out.code = Code.ACCOUNT_DISABLED
            return out
        self._db.execute(
            "INSERT OR REPLACE INTO sessions(hash, uid, created_us, last_used_us) "
            "VALUES (?, ?, ?, ?)",
            (op.session_hash, user.uid, entry.time_us, entry.time_us),
        )
        return out

    def _apply_end_session(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        h = entry.end_session.session_hash
        if h not in self.sessions:
            out.code = Code.NOT_LOGGED_IN
            return out
        self._db.execute("DELETE FROM sessions WHERE hash = ?", (h,))
        out.ended_sessions.append(h)
        return out

    def _apply_touch_session(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        h = entry.touch_session.session_hash
        self._db.execute("UPDATE sessions SET last_used_us = ? WHERE hash = ?", (entry.time_us, h))
        return out

    def _apply_expire_sessions(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        since = entry.expire_sessions.idle_since_us
        rows = self._db.execute(
            "SELECT hash FROM sessions WHERE last_used_us < ?", (since,)
        ).fetchall()
        self._db.execute("DELETE FROM sessions WHERE last_used_us < ?", (since,))
        out.ended_sessions.extend(r[0] for r in rows)
        return out

    def _apply_send_message(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.send_message
        if (sender := self._known(out, op.sender, Code.NOT_LOGGED_IN)) is None:
            return out
        room: rooms.Room | None = None
        if op.room:
            out.code, room = self.rooms.apply_message_to(op.room, sender.uid)
            if room is None:
                return out
            to_name, to_uid, conv = room.name, 0, room.conv
        else:
            if (recipient := self._known(out, op.recipient, Code.NO_SUCH_RECIPIENT)) is None:
                return out
            to_name, to_uid = recipient.username, recipient.uid
            conv = conversation_key(sender.uid, recipient.uid)
        db = self._db
        if op.request_id:
            row = db.execute(
                "SELECT message_id FROM request_ids WHERE sender_uid = ? AND request_id = ?",
                (sender.uid, op.request_id),
            ).fetchone()
            if row is not None:
                out.message_id = row[0]
                out.duplicate = True
                return out
        # a room message is in no one's undelivered inbox (delivered = 1):
        # its members' streams read it by their rooms
        cur = db.execute(
            "INSERT INTO messages(sender, sender_uid, recipient, recipient_uid, conv, body, "
            "time_us, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sender.username,
                sender.uid,
                to_name,
                to_uid,
                conv,
                op.body,
                entry.time_us,
                int(room is not None),
            ),
        )
        mid = int(cur.lastrowid or 0)
        out.message_id = mid
        out.new_message = StoredMessage(
            mid, sender.username, to_name, op.body, entry.time_us, room.name if room else ""
        )
        if room is not None:
            out.room_recipients = room.joined_names()
        if op.request_id:
            seq = db.execute(
                "INSERT INTO request_ids(sender_uid, request_id, message_id, time_us) "
                "VALUES (?, ?, ?, ?)",
                (sender.uid, op.request_id, mid, entry.time_us),
            ).lastrowid
            if seq and seq % REQUEST_ID_PRUNE_EVERY == 0:
                db.execute(
                    "DELETE FROM request_ids WHERE seq <= ? OR time_us < ?",
                    (seq - REQUEST_ID_KEEP, entry.time_us - REQUEST_ID_TTL_US),
                )
        return out

    def _apply_take_undelivered(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.take_undelivered
        if (user := self._known(out, op.username, Code.NOT_LOGGED_IN)) is None:
            return out
        db = self._db
        rows = db.execute(
            "SELECT id, sender, recipient, body, time_us, conv FROM messages "
            "WHERE recipient_uid = ? AND delivered = 0 ORDER BY id LIMIT ?",
            (user.uid, op.limit),
        ).fetchall()
        rows = sorted(rows + rooms.undelivered(db, user.uid, op.limit))[: op.limit]
        if op.max_bytes:
            rows = _within(rows, op.max_bytes)
        direct = [r[0] for r in rows if r[5] >= 0]
        if direct:
            db.execute(
                "UPDATE messages SET delivered = 1 WHERE recipient_uid = ? AND delivered = 0 "
                "AND id <= ?",
                (user.uid, direct[-1]),
            )
        rooms.mark_delivered(db, user.uid, {-r[5]: r[0] for r in rows if r[5] < 0})
        out.messages = [_row_message(r) for r in rows]
        return out

    def _apply_mark_delivered(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.mark_delivered
        if (user := self._known(out, op.username, Code.NOT_LOGGED_IN)) is None:
            return out
        self._db.executemany(
            "UPDATE messages SET delivered = 1 WHERE id = ? AND recipient_uid = ?",
            [(mid, user.uid) for mid in op.message_ids],
        )
        upto: dict[int, int] = {}
        for mid, room_id in rooms.undelivered_among(
            self._db, user.uid, json.dumps(list(op.message_ids))
        ):
            upto[room_id] = max(upto.get(room_id, 0), mid)
        rooms.mark_delivered(self._db, user.uid, upto)
        return out

    def _apply_delete_account(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        name = entry.delete_account.username
        if (user := self._known(out, name, Code.NOT_LOGGED_IN)) is None:
            return out
        db = self._db
        if (gone := self.rooms.apply_user_gone(db, user.uid, self.cluster_version)) is not None:
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
        db.execute("UPDATE users SET deleted = 1 WHERE uid = ?", (user.uid,))
        out.deleted_user = name
        out.after.append(lambda: self.rooms.drop_user(user.uid))
        return out

    def _apply_set_cluster_version(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        version = entry.set_cluster_version.version
        if version > self.cluster_version:
            self._db.execute(
                "INSERT OR REPLACE INTO cluster_settings(name, value) VALUES ('version', ?)",
                (version,),
            )
            out.after.append(lambda: setattr(self, "cluster_version", version))
        return out

    def _known(self, out: Applied, username: str, missing: Code = Code.NO_SUCH_USER) -> User | None:
        """The live account of that name, or None with `out.code` `missing`
        (an entry's actor that is gone: NOT_LOGGED_IN)."""
        user = self.users.get(username)
        if user is None:
            out.code = missing
        return user

    def _apply_set_password(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.set_password
        if (user := self._known(out, op.username)) is not None:
            keep = op.keep_session
            out.ended_sessions += accounts.apply_set_password(
                self._db, user.uid, op.password_hash, keep
            )
            out.after.append(lambda: setattr(user, "password_hash", op.password_hash))
        return out

    def _apply_set_disabled(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.set_disabled
        if (user := self._known(out, op.username)) is not None:
            t = entry.time_us
            out.ended_sessions += accounts.apply_set_disabled(self._db, user.uid, op.disabled, t)
            out.after.append(lambda: setattr(user, "disabled", op.disabled))
        return out

    def _apply_end_user_sessions(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        if (user := self._known(out, entry.end_user_sessions.username)) is not None:
            out.ended_sessions += accounts.apply_end_user_sessions(self._db, user.uid)
        return out

    def account_counts(self, username: str) -> accounts.AccountCounts | None:
        """An account's facts from the tables (reader connection)."""
        user = self.users.get(username)
        if user is None:
            return None
        with self._reader_lock:
            return accounts.account_counts(self._reader, user.uid)

    def _apply_create_room(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.create_room
        if (creator := self._known(out, op.creator, Code.NOT_LOGGED_IN)) is None:
            return out
        return _changed(
            out,
            self.rooms.apply_create(
                self._db, op, creator.uid, entry.time_us, self.last_message_id, self.cluster_version
            ),
        )

    def _apply_room_member(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.room_member
        if (actor := self._known(out, op.actor, Code.NOT_LOGGED_IN)) is None:
            return out
        target = self.users.get(op.username)
        target_uid = target.uid if target else None
        last, t, rules = self.last_message_id, entry.time_us, self.cluster_version
        return _changed(
            out, self.rooms.apply_member(self._db, op, actor.uid, target_uid, last, t, rules)
        )

    def _apply_delete_room(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.delete_room
        if (actor := self._known(out, op.actor, Code.NOT_LOGGED_IN)) is None:
            return out
        return _changed(out, self.rooms.apply_delete(self._db, op, actor.uid))

    def _apply_mark_read(self, out: Applied, entry: log_pb2.Entry) -> Applied:
        op = entry.mark_read
        if (user := self._known(out, op.username, Code.NOT_LOGGED_IN)) is None:
            return out
        if op.room:
            room = self.rooms.find(op.room)
            if room is None:
                out.code = Code.NO_SUCH_ROOM
                return out
            if user.uid not in room.members:
                out.code = Code.NOT_A_MEMBER
                return out
            conv = room.conv
        else:
            if (peer := self._known(out, op.peer)) is None:
                return out
            conv = conversation_key(user.uid, peer.uid)
        rooms.apply_mark_read(self._db, user.uid, conv, op.upto)
        return out

    def _cache_effects(self, out: Applied, entry: log_pb2.Entry) -> None:
        """Mirrors an applied entry into the caches (only after its SQL held)."""
        kind = entry.WhichOneof("op")
        if out.code != Code.OK:
            return
        for change in out.after:
            change()
        if kind == "create_account":
            op = entry.create_account
            self.users[op.username] = User(out.new_uid, op.username, op.password_hash)
            self._fold(op.username)
        elif kind == "create_session":
            op2 = entry.create_session
            user = self.users[op2.username]
            self.sessions[op2.session_hash] = Session(user.uid, user.username, entry.time_us)
        elif kind == "touch_session":
            s = self.sessions.get(entry.touch_session.session_hash)
            if s is not None:
                s.last_used_us = entry.time_us
        elif kind == "send_message" and out.new_message is not None:
            self.last_message_id = out.new_message.id
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

    # -- log maintenance and snapshots (call from the database thread) --

    def log_start(self) -> int:
        """The lowest index the log table still holds (last + 1 when empty)."""
        row = self._db.execute("SELECT min(idx) FROM log").fetchone()
        return int(row[0]) if row[0] is not None else self.last_index + 1

    def truncate_log(self, keep: int) -> int:
        """Drops all but the newest `keep` entries; returns the new log start."""
        self._db.execute("DELETE FROM log WHERE idx <= ?", (self.last_index - keep,))
        return self.log_start()

    def snapshot_to(self, target: Path) -> tuple[int, int]:
        """Writes a consistent copy of the committed database to `target`;
        returns the (epoch, index) of the last entry it holds."""
        src = sqlite3.connect(self.path, check_same_thread=False)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
                # a file of its own: read-only openers (a backup's check)
                # then leave no -wal or -shm beside it
                dst.execute("PRAGMA journal_mode=DELETE")
                row = dict(
                    dst.execute(
                        "SELECT key, value FROM meta WHERE key IN ('applied_index', 'last_epoch')"
                    ).fetchall()
                )
            finally:
                dst.close()
        finally:
            src.close()
        return int(row.get("last_epoch", 0)), int(row.get("applied_index", 0))

    @staticmethod
    def log_of(source: Path) -> tuple[EpochRuns, int]:
        """The epoch runs and the last index of a store file's log (a
        snapshot's, before it replaces this one)."""
        db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            meta = dict(
                db.execute(
                    "SELECT key, value FROM meta WHERE key IN ('runs', 'applied_index')"
                ).fetchall()
            )
        finally:
            db.close()
        runs = EpochRuns((int(e), int(i)) for e, i in json.loads(meta.get("runs") or "[]"))
        return runs, int(meta.get("applied_index") or 0)

    def install_snapshot(self, source: Path, keep_meta: tuple[str, ...]) -> None:
        """Replaces the whole database by a snapshot file, keeping this node's
        own metadata (`keep_meta` keys), and reloads every cache. The state
        digest is recomputed from the installed tables (the one the snapshot
        records is not trusted), so a forged snapshot shows as a different
        state digest from the master's at the same index."""
        kept = {k: self.get_meta(k) for k in keep_meta}
        probe = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:  # refused before it replaces anything: a schema this chatd cannot read
            schema.check_readable(probe, str(source))
        finally:
            probe.close()
        with self._checkpoint_lock, self._reader_lock:
            self._close_checkpointer()
            self._reader.close()
            self._db.close()
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            os.replace(source, self.path)
            self._db = self._connect()
            self._reader = self._connect()
        schema.upgrade(self._db, SCHEMA, str(self.path))  # (a snapshot of an older master's)
        self._state.attach(self._db)
        for k, v in kept.items():
            if v is not None:
                self.set_meta(k, v)
        recorded = self.get_meta("state_digest")
        actual = statedigest.to_bytes(statedigest.scan(self._db))
        if recorded is not None and bytes(recorded) != actual:
            log.warning(
                "the snapshot installed in %s records state digest %s but its tables give %s",
                self.path,
                bytes(recorded).hex(),
                actual.hex(),
            )
        self.set_meta("state_digest", actual)
        self.users.clear()
        self.folded.clear()
        self.sessions.clear()
        self.recent.clear()
        self.digest_history.clear()
        self._load()

    # -- reads (reader connection, committed data only; call from a thread) --

    def _read(self, sql: str, args: tuple[object, ...]) -> list[StoredMessage]:
        with self._reader_lock:
            rows = self._reader.execute(sql, args).fetchall()
        return [_row_message(r) for r in rows]

    def inbox_after(self, uid: int, after_id: int, upto_id: int, limit: int) -> list[StoredMessage]:
        """Messages to `uid` with after_id < id <= upto_id, oldest first: to
        the user, and to the rooms the user joined, from the join on."""
        return self._read(
            "SELECT id, sender, recipient, body, time_us, conv FROM messages "
            "WHERE recipient_uid = ? AND id > ? AND id <= ? "
            "UNION ALL "
            "SELECT m.id, m.sender, m.recipient, m.body, m.time_us, m.conv "
            "FROM room_members r JOIN messages m ON m.conv = -r.room_id "
            "AND m.id > max(?, r.since_id) AND m.id <= ? WHERE r.uid = ? AND r.joined = 1 "
            "ORDER BY 1 LIMIT ?",
            (uid, after_id, upto_id, after_id, upto_id, uid, limit),
        )

    def read_marker(self, uid: int, conv: int) -> int:
        """The user's committed read marker of a conversation (0: none)."""
        with self._reader_lock:
            row = self._reader.execute(
                "SELECT upto FROM read_markers WHERE uid = ? AND conv = ?", (uid, conv)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def room_before(self, room_id: int, before_id: int, limit: int) -> list[StoredMessage]:
        """The newest `limit` messages of a room with id < before_id, oldest first."""
        rows = self._read(
            "SELECT id, sender, recipient, body, time_us, conv FROM messages "
            "WHERE conv = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (-room_id, before_id, limit),
        )
        rows.reverse()
        return rows

    def unread_in_rooms(self, uid: int, rooms: list[tuple[int, int]], upto_id: int) -> list[int]:
        """For each (room id, since_id) the room's messages after the user's
        read marker and since_id (the join), up to `upto_id`, not the user's
        own: an index range each, in one hop to the reader thread."""
        with self._reader_lock:
            return [
                int(
                    self._reader.execute(
                        "SELECT count(*) FROM messages WHERE conv = ? AND id <= ? "
                        "AND sender_uid != ? AND id > max(?, coalesce((SELECT upto "
                        "FROM read_markers WHERE uid = ? AND conv = ?), 0))",
                        (-room_id, upto_id, uid, since_id, uid, -room_id),
                    ).fetchone()[0]
                )
                for room_id, since_id in rooms
            ]

    def unread_from_peers(self, uid: int, upto_id: int) -> list[tuple[str, int, int]]:
        """(sender, count, newest id) of the one-to-one messages to `uid`
        after its read marker in each conversation, up to `upto_id`: one
        scan of the user's inbox index (room messages are in no one's)."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT m.sender, count(*), max(m.id) FROM messages m "
                "LEFT JOIN read_markers r ON r.uid = m.recipient_uid AND r.conv = m.conv "
                "WHERE m.recipient_uid = ? AND m.id <= ? AND m.id > coalesce(r.upto, 0) "
                "GROUP BY m.sender_uid ORDER BY 3 DESC",
                (uid, upto_id),
            ).fetchall()
        return [(str(a), int(b), int(c)) for a, b, c in rows]

    def conversation_before(
        self, uid: int, peer_uid: int, before_id: int, limit: int
    ) -> list[StoredMessage]:
        """The newest `limit` messages of a conversation with id < before_id,
        returned oldest first."""
        rows = self._read(
            "SELECT id, sender, recipient, body, time_us FROM messages "
            "WHERE conv = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (conversation_key(uid, peer_uid), before_id, limit),
        )
        rows.reverse()
        return rows

    def undelivered_among(self, uid: int, ids: list[int]) -> list[int]:
        """Those of `ids` that are undelivered messages to `uid` (its own, or
        of the rooms it joined), in order."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT id FROM messages WHERE recipient_uid = ? AND delivered = 0 "
                "AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
                (uid, json.dumps(ids)),
            ).fetchall()
            in_rooms = rooms.undelivered_among(self._reader, uid, json.dumps(ids))
        return sorted([int(r[0]) for r in rows] + [mid for mid, _ in in_rooms])

    def has_undelivered(self, uid: int) -> bool:
        """Whether any message to `uid` waits, its own or of its rooms
        (committed data)."""
        with self._reader_lock:
            row = self._reader.execute(
                "SELECT 1 FROM messages WHERE recipient_uid = ? AND delivered = 0 LIMIT 1", (uid,)
            ).fetchone()
            return row is not None or bool(rooms.undelivered(self._reader, uid, 1))

    def last_uid_named(self, username: str) -> int | None:
        """The uid of the live account with this name, else of the newest
        deleted one (whose conversations stay readable)."""
        user = self.users.get(username)
        if user is not None:
            return user.uid
        with self._reader_lock:
            row = self._reader.execute(
                "SELECT max(uid) FROM users WHERE username = ?", (username,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def log_entries(self, first: int, last: int) -> list[bytes]:
        """The bytes of committed log entries first..last (all, or fewer if the
        log no longer holds them)."""
        return [data for _, data in self.log_rows(first, last)]

    def log_rows(self, first: int, last: int) -> list[tuple[int, bytes]]:
        """(index, bytes) of the committed log entries first..last it holds."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT idx, entry FROM log WHERE idx >= ? AND idx <= ? ORDER BY idx", (first, last)
            ).fetchall()
        return [(int(i), bytes(e)) for i, e in rows]

    def newest_message_ids(self, count: int) -> dict[tuple[str, int, str], int]:
        """(sender, time, body) -> id of the newest `count` messages: the
        ids the entries of a log's tail gave their messages here."""
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT sender, time_us, body, id FROM messages ORDER BY id DESC LIMIT ?", (count,)
            ).fetchall()
        return {(str(a), int(t), str(b)): int(i) for a, t, b, i in rows}


def _changed(out: Applied, result: tuple[Code, Any]) -> Applied:
    """A room apply function's (code, change) into `out`: its code, and the
    change readers hear of once the batch is durable (None: nothing)."""
    out.code, change = result
    if change is not None:
        out.after.append(change)
    return out
