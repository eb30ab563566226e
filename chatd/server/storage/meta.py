"""The node's own tables and the cluster's settings: the replicated log
(`log`: index, epoch, chained digest, the entry's bytes), the node-local
key-value store (`meta`: applied index, epoch, digests, node id; never
replicated) and `cluster_settings` (the cluster's protocol version,
replicated), with the apply functions of the entries that change no table
(noop) and that raise the cluster's version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from chatd.proto import log_pb2
from chatd.server.storage.rows import Applied

# the log and meta come first in the schema, the settings after the
# messages' tables (the order the store has always created them in)
LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    idx INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    digest BLOB NOT NULL,
    entry BLOB NOT NULL
);
"""
SETTINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_settings (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

_SET = (
    "INSERT INTO meta(key, value) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)


def get(db: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else row[0]


def put(db: sqlite3.Connection, key: str, value: object) -> None:
    db.execute(_SET, (key, value))


def put_all(db: sqlite3.Connection, pairs: Iterable[tuple[str, object]]) -> None:
    db.executemany(_SET, pairs)


def cluster_version(db: sqlite3.Connection) -> int:
    """The cluster's protocol version the log has set (before versions: 1)."""
    row = db.execute("SELECT value FROM cluster_settings WHERE name = 'version'").fetchone()
    return int(row[0]) if row else 1


class Tables(Protocol):
    """What of the store these apply functions use."""

    @property
    def db(self) -> sqlite3.Connection: ...

    cluster_version: int


def apply_noop(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    return out


def apply_set_cluster_version(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    version = entry.set_cluster_version.version
    if version > t.cluster_version:
        t.db.execute(
            "INSERT OR REPLACE INTO cluster_settings(name, value) VALUES ('version', ?)",
            (version,),
        )
        out.after.append(lambda: setattr(t, "cluster_version", version))
    return out


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "noop": apply_noop,
    "set_cluster_version": apply_set_cluster_version,
}
