"""Snapshots of a store file: writing a consistent copy of the committed
database, reading what a snapshot's log holds, and the checks around
installing one (its schema readable by this chatd; its recorded state
digest against the one its tables give). The store replaces its file and
reloads its caches (Store.install_snapshot).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from chatd.core.log import EpochRuns
from chatd.server.storage import schema, statedigest

log = logging.getLogger(__name__)


def copy_to(source: Path, target: Path) -> tuple[int, int]:
    """Writes a consistent copy of the committed database `source` to
    `target`; returns the (epoch, index) of the last entry it holds."""
    src = sqlite3.connect(source, check_same_thread=False)
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


def log_of(source: Path) -> tuple[EpochRuns, int]:
    """The epoch runs and the last index of a store file's log."""
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


def check_readable(source: Path) -> None:
    """StoreError for a snapshot of a schema this chatd cannot read."""
    probe = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        schema.check_readable(probe, str(source))
    finally:
        probe.close()


def state_digest_of(db: sqlite3.Connection, recorded: bytes | None, where: Path) -> bytes:
    """The state digest an installed snapshot's tables give (the one it
    records is not trusted: a difference is logged)."""
    actual = statedigest.to_bytes(statedigest.scan(db))
    if recorded is not None and bytes(recorded) != actual:
        log.warning(
            "the snapshot installed in %s records state digest %s but its tables give %s",
            where,
            bytes(recorded).hex(),
            actual.hex(),
        )
    return actual
