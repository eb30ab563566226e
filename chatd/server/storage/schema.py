"""The store's schema (`SCHEMA`: every table family's), its version (SQLite's
`PRAGMA user_version`) and its ordered forward migrations.

A store records the version of the schema it was written with. Opening it,
chatd runs every migration after that version, in order, in one
transaction, and records the new version; a store of a newer version than
this chatd knows is refused (it may hold what this chatd cannot read).

History:
  0  every store written before versions were kept (chatd up to and after
     commit 4e557bd): accounts, sessions, messages, request ids, the log,
     and, from later chatd, rooms, read markers and disabled accounts, all
     created as they were first needed.
  1  the same tables, every one of them present, and the version recorded.
  2  cluster_settings (the cluster's protocol version, replicated).
  3  message_events, message_state and reactions (edits, deletions,
     reactions and replies: chatd.server.storage.edits), and
     receipt_settings (who does not share read receipts, replicated).
  4  uploads, file_chunks, files, message_files and profiles (files and
     profiles: chatd.server.storage.files).
  5  the full-text index of messages (chatd.server.storage.search: node-local,
     derived), filled from the messages the store holds.

A migration is a function of the writer's connection. Add one at the end
of `migrations` (never change one that shipped); the current version is
their number. Objects are created IF NOT EXISTS, so that a store several
versions behind may take them from an earlier step.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from chatd.server.errors import StoreError
from chatd.server.storage import (
    accounts,
    delivery,
    edits,
    files,
    messages,
    meta,
    receipts,
    rooms,
    search,
    users,
)

log = logging.getLogger(__name__)

# every table, in the order the store has always created them
SCHEMA = (
    meta.LOG_SCHEMA
    + users.SCHEMA
    + messages.SCHEMA
    + meta.SETTINGS_SCHEMA
    + rooms.SCHEMA
    + delivery.SCHEMA
    + accounts.SCHEMA
    + edits.SCHEMA
    + receipts.SCHEMA
    + files.SCHEMA
)


def _every_table(schema: str) -> Callable[[sqlite3.Connection], None]:
    def migrate(db: sqlite3.Connection) -> None:
        for statement in schema.split(";"):  # (executescript would commit)
            if statement.strip():
                db.execute(statement)

    return migrate


def migrations(schema: str) -> list[Callable[[sqlite3.Connection], None]]:
    """MIGRATIONS[i] takes a store from version i to i + 1."""
    # 0 -> 1: the tables a store of before lacks; 1 -> 2: cluster_settings;
    # 2 -> 3: the tables of edits, deletions, reactions and replies, and
    # receipt_settings; 3 -> 4: the tables of files and profiles (each
    # created IF NOT EXISTS: a store of 0 has them from the first step);
    # 4 -> 5: the search index, filled from the messages there are
    return [*[_every_table(schema)] * 4, search.create]


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def check_readable(db: sqlite3.Connection, where: str) -> None:
    """StoreError for a store of a newer version than this chatd knows."""
    current, found = len(migrations("")), version_of(db)
    if found > current:
        raise StoreError(
            f"{where}: its schema is version {found}, written by a newer chatd; this one reads up "
            f"to version {current}: run the newer chatd (or restore a backup it can read)"
        )


def upgrade(db: sqlite3.Connection, schema: str, where: str) -> None:
    """Brings a store to the current version (a new store: created there)."""
    check_readable(db, where)
    steps = migrations(schema)
    current, found = len(steps), version_of(db)
    if found == current:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for step in steps[found:]:
            step(db)
        db.execute(f"PRAGMA user_version = {current}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if db.execute("SELECT count(*) FROM log").fetchone()[0]:  # (a new store says nothing)
        log.info("%s: schema migrated from version %d to %d", where, found, current)
