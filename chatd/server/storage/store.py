"""The SQLite store: the facade the other layers use over the replicated
log, apply, the caches, the reads and the digests.

Promise: every log entry is appended and applied in the same transaction, so a
node never holds state its log does not explain. Apply is deterministic: it
reads only the entry, its index and the state before it. The store knows
nothing of gRPC or of roles; the node driver decides when to begin and commit.

Each table family owns its schema, its apply functions and its cache: meta
(the log, node-local meta, cluster settings), users (accounts, sessions: the
`Directory`), messages, delivery (room delivery marks, read markers), rooms
and room_rules, accounts (account administration), edits (edits, deletions,
reactions, replies); `apply.KINDS` says which function applies each entry
kind. The connections and their locks are connections.Connections, the reads
of committed data reads.Reads (a part of this class), a snapshot's file snapshot.

Two digests: `digest`, the chain over the log entries (equal logs), and
`state_digest`, over the rows of the replicated tables (equal data;
chatd.server.storage.statedigest). The state digest is kept as apply changes rows,
committed with each batch, checked against the tables when the store opens
(a file changed outside chatd refuses to open) and recomputed from the
tables of an installed snapshot; the last DIGEST_HISTORY indexes' digests
are kept in memory, for comparing with another node's at the same index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import struct
from pathlib import Path
from typing import Any

from chatd.contract import Code
from chatd.core.log import EpochRuns
from chatd.proto import log_pb2
from chatd.server.errors import StoreError
from chatd.server.storage import accounts, apply, meta, rooms, schema, search, snapshot, statedigest
from chatd.server.storage.connections import Connections
from chatd.server.storage.reads import Reads
from chatd.server.storage.recent import Recent
from chatd.server.storage.rows import (
    Applied,
    StoredMessage,
    conversation_key,
    message_bytes,
    now_us,
)
from chatd.server.storage.users import Directory, Session, User

# what the other layers (and chatd.cli) import from here
__all__ = [
    "GENESIS_DIGEST",
    "Applied",
    "Session",
    "Store",
    "StoreError",
    "StoredMessage",
    "User",
    "chain_digest",
    "conversation_key",
    "message_bytes",
    "now_us",
]

log = logging.getLogger(__name__)

DIGEST_HISTORY = 4096  # indexes whose (log, state) digests are kept in memory
GENESIS_DIGEST = bytes(32)
_EPOCH = struct.Struct(">Q")


def chain_digest(previous: bytes, epoch: int, entry: bytes) -> bytes:
    """The digest after appending one entry: equal logs give equal digests."""
    return hashlib.sha256(previous + _EPOCH.pack(epoch) + entry).digest()


class Store(Reads):
    """One node's SQLite file: the log, the tables it produces, and caches of
    the small tables (live users, sessions, rooms) that every request consults."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self._conns = Connections(path, synchronous)
        self.commits = 0
        self._state = statedigest.StateDigest()
        # index -> (log digest, state digest) of the newest applied indexes
        self.digest_history: dict[int, tuple[bytes, int]] = {}
        self.directory = Directory()  # live users by name, sessions by hash
        self.rooms = rooms.Rooms()
        self.cluster_version = 1  # what the log may hold (chatd.server.protocol)
        self.last_index = 0
        self.last_epoch = 0
        self.digest = GENESIS_DIGEST
        self.last_message_id = 0
        self._indexed_upto = 0  # the search index's (chatd.server.storage.search)
        self.last_time_us = 0
        self.runs = EpochRuns()  # the epoch of every index the log holds
        self.recent = Recent()  # the newest entries' bytes, for replication
        self._in_batch = False
        # the open batch's entries, to apply again without one that failed
        # (None once one failed: then a savepoint each)
        self._batch: list[tuple[log_pb2.Entry, bytes, int]] | None = []
        self._replaying = False
        self._broken: BaseException | None = None  # a batch that failed again
        try:
            try:
                schema.upgrade(self.db, schema.SCHEMA, str(path))
                self._state.attach(self.db)
                self._load()
                self._verify()
            except sqlite3.DatabaseError as exc:  # "database disk image is malformed"
                raise StoreError(self._refusal(f"SQLite: {exc}")) from exc
        except BaseException:
            self._conns.close()
            raise

    @property
    def db(self) -> sqlite3.Connection:
        """The writer connection: apply's, one caller at a time."""
        return self._conns.db

    @property
    def users(self) -> dict[str, User]:
        """The live accounts by name (the directory's)."""
        return self.directory.users

    @property
    def sessions(self) -> dict[bytes, Session]:
        """The sessions by their hash (the directory's)."""
        return self.directory.sessions

    def _load(self) -> None:
        """Fills the caches from the tables (the directory's cleared first)."""
        db = self.db
        self.directory.load(db, accounts.disabled_uids(db))
        self.cluster_version = meta.cluster_version(db)
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
        # (an event's id is of the same sequence: chatd.server.storage.edits)
        row = self.db.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0), "
            "coalesce((SELECT max(id) FROM messages), 0), "
            "coalesce((SELECT max(id) FROM message_events), 0))"
        ).fetchone()
        self.last_message_id = int(row[0] or 0)
        self._indexed_upto = search.indexed_upto(self.db)
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
        problems = [str(r[0]) for r in self.db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            first = " ".join(problems[0].split())  # one line, for the log
            raise StoreError(self._refusal(f"SQLite's quick_check fails: {first}"))
        stored = self.get_meta("state_digest")
        actual = statedigest.scan(self.db)
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
        return meta.get(self.db, key, default)

    def set_meta(self, key: str, value: object) -> None:
        """Writes one key; inside a batch it commits with the batch."""
        meta.put(self.db, key, value)

    # -- the write path: begin, append (apply) entries, commit --

    def begin(self) -> None:
        assert not self._in_batch, "batch already open"
        self.db.execute("BEGIN IMMEDIATE")
        self._in_batch = True
        self._batch = []

    def append(self, entry: log_pb2.Entry, data: bytes, epoch: int) -> Applied:
        """Appends one entry at the next index and applies it, inside the open
        batch. If apply fails, nothing of the entry remains and it raises: the
        batch is rolled back and its earlier entries applied again (apply is
        deterministic), a cost on that rare path only, not a savepoint each;
        the batch's later entries then take a savepoint each (one replay a
        batch at most, however many of its entries fail)."""
        assert self._in_batch, "append outside a batch"
        if self._broken is not None:
            raise StoreError(f"the batch could not be applied again: {self._broken}")
        index = self.last_index + 1
        digest = chain_digest(self.digest, epoch, data)
        db, batch, state = self.db, self._batch, self._state.value
        if batch is None:
            db.execute("SAVEPOINT entry")
        try:
            db.execute(
                "INSERT INTO log(idx, epoch, digest, entry) VALUES (?, ?, ?, ?)",
                (index, epoch, digest, data),
            )
            applied = apply.apply(self, index, entry)
        except BaseException as exc:
            if batch is None and db.in_transaction:
                db.execute("ROLLBACK TO entry")
                db.execute("RELEASE entry")
                self._state.value = state  # the triggers counted rows now gone
            elif batch is None:  # SQLite rolled the batch back (an I/O error)
                self._broken = exc
            elif not self._replaying:
                self._without_last()
            raise
        if batch is None:
            db.execute("RELEASE entry")
        else:
            batch.append((entry, data, epoch))
        self.digest_history[index] = (digest, self._state.value)
        self.digest_history.pop(index - DIGEST_HISTORY, None)
        if applied.code == Code.OK:  # the caches follow, once the entry's SQL held
            for change in applied.after:
                change()
            self.directory.settle(applied)
        self.recent.keep(index, data)
        if self.runs.extend(index, epoch):
            self.set_meta("runs", json.dumps(self.runs.pairs))
        self.last_index, self.last_epoch, self.digest = index, epoch, digest
        if entry.time_us > self.last_time_us:
            self.last_time_us = entry.time_us
        return applied

    def _without_last(self) -> None:
        """The batch as before the entry that failed: rolled back, caches reloaded,
        its earlier entries appended again. Should that fail (an I/O error), the
        batch stays rolled back, refusing the rest and its commit."""
        entries = self._batch or []
        self._replaying = True
        try:
            self._rolled_back()
            self.db.execute("BEGIN IMMEDIATE")
            for entry, data, epoch in entries:
                self.append(entry, data, epoch)
            self._batch = None  # a savepoint each from now on
        except BaseException as exc:
            self._broken = exc
            log.critical("%s: a batch could not be applied again: %s", self.path, exc)
            self._rolled_back()
        finally:
            self._replaying = False

    def _rolled_back(self) -> None:
        """Rolls the open batch back (unless SQLite already did, on an I/O
        error) and reloads the caches from the committed tables."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self._batch = []
        self.directory.clear()
        self._load()

    def rollback(self) -> None:
        """Abandons the open batch (used only when applying it failed)."""
        assert self._in_batch
        self.recent.clear()
        self._rolled_back()
        self._in_batch = False
        self._broken = None

    def commit(self) -> None:
        """Indexes the batch's new messages for search and makes the batch
        durable. Blocking (fsync): run it off the event loop."""
        assert self._in_batch
        if self._broken is not None:
            raise StoreError(f"the batch could not be applied again: {self._broken}")
        newest = self.last_message_id
        if newest > self._indexed_upto:  # the batch's new messages, in one statement
            search.index_new(self.db, self._indexed_upto, newest)
        meta.put_all(
            self.db,
            (
                ("applied_index", self.last_index),
                ("last_epoch", self.last_epoch),
                ("digest", self.digest),
                ("last_time_us", self.last_time_us),
                ("state_digest", statedigest.to_bytes(self._state.value)),
            ),
        )
        self.db.execute("COMMIT")
        self._in_batch = False
        self._indexed_upto = max(self._indexed_upto, newest)
        self.commits += 1

    def checkpoint(self) -> None:
        """Copies the committed pages of the write-ahead log into the database
        file, on a connection of its own, while writers go on (a passive
        checkpoint). Blocking: run it in a thread of its own. A commit then
        finds little left to copy when the log reaches SQLite's automatic
        checkpoint size, so the copy and its fsync stay off the write path."""
        self._conns.checkpoint()

    def close(self) -> None:
        # A failed COMMIT (SQLITE_FULL, SQLITE_IOERR) has already rolled the
        # transaction back: a ROLLBACK then raises and the fatal path dies.
        if self._in_batch and self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self._in_batch = False
        self._conns.close()

    def find_user(self, name: str) -> str | None:
        """The live account `name` names: itself, or the one whose name
        equals it in casefold ("ALICE" finds "alice")."""
        return self.directory.find_user(name)

    # -- log maintenance and snapshots (call from the database thread) --

    def log_start(self) -> int:
        """The lowest index the log table still holds (last + 1 when empty)."""
        row = self.db.execute("SELECT min(idx) FROM log").fetchone()
        return int(row[0]) if row[0] is not None else self.last_index + 1

    def truncate_log(self, keep: int) -> int:
        """Drops all but the newest `keep` entries; returns the new log start."""
        self.db.execute("DELETE FROM log WHERE idx <= ?", (self.last_index - keep,))
        return self.log_start()

    def snapshot_to(self, target: Path) -> tuple[int, int]:
        """Writes a consistent copy of the committed database to `target`;
        returns the (epoch, index) of the last entry it holds."""
        return snapshot.copy_to(self.path, target)

    @staticmethod
    def log_of(source: Path) -> tuple[EpochRuns, int]:
        """The epoch runs and the last index of a store file's log (a
        snapshot's, before it replaces this one)."""
        return snapshot.log_of(source)

    def install_snapshot(self, source: Path, keep_meta: tuple[str, ...]) -> None:
        """Replaces the whole database by a snapshot file, keeping this node's
        own metadata (`keep_meta` keys), and reloads every cache. The state
        digest is recomputed from the installed tables (the one the snapshot
        records is not trusted), so a forged snapshot shows as a different
        state digest from the master's at the same index."""
        kept = {k: self.get_meta(k) for k in keep_meta}
        snapshot.check_readable(source)  # refused before it replaces anything
        self._conns.replace_file(source)
        schema.upgrade(self.db, schema.SCHEMA, str(self.path))  # (a snapshot of an older master's)
        self._state.attach(self.db)
        for k, v in kept.items():
            if v is not None:
                self.set_meta(k, v)
        recorded = self.get_meta("state_digest")
        self.set_meta("state_digest", snapshot.state_digest_of(self.db, recorded, self.path))
        self.directory.clear()
        self.recent.clear()
        self.digest_history.clear()
        self._load()
