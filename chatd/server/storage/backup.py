"""Backup files: what `chatd backup` writes and `chatd serve --restore` reads.

A backup is a consistent copy of a node's SQLite store (SQLite's backup
API, `Store.snapshot_to`): every replicated table (accounts, sessions,
messages, rooms, read markers) and the log up to its applied index, with
the applied index, the chain digest and the state digest it records. It is
a plain SQLite file, so `sqlite3 FILE` can read it.

`describe` checks a file the way a store checks itself on opening: SQLite's
quick_check, and the state digest recomputed from the tables against the
one recorded. `place_for_restore` puts a checked copy into an empty data
dir without the old node's own metadata (its id, epoch and membership), so
the node that opens it founds a new cluster holding the backup's data.
`export_user` reads one user's messages out of a backup, for data requests.
Nothing here knows gRPC.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatd.server.errors import BackupError as BackupError  # (raised here)
from chatd.server.storage import statedigest

# A node's own metadata: not part of the replicated state (a restored
# store gets its own). The same keys a node keeps when it installs a snapshot.
NODE_META = ("node_id", "epoch", "membership")


@dataclass(frozen=True, slots=True)
class BackupInfo:
    index: int  # the applied index the copy holds
    epoch: int  # the epoch of its last entry
    state_digest: str  # hex, recomputed from the tables and equal to the recorded one
    log_digest: str  # hex
    size: int  # bytes

    def line(self) -> str:
        return (
            f"index {self.index} (epoch {self.epoch}), state digest {self.state_digest}, "
            f"{self.size:,} bytes"
        )


def _meta(db: sqlite3.Connection) -> dict[str, Any]:
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"not a chatd store: {exc}") from exc


def _info(path: Path, meta: dict[str, Any]) -> BackupInfo:
    recorded = meta.get("state_digest")
    if recorded is None:
        raise BackupError(f"{path}: not a chatd store (no state digest recorded)")
    return BackupInfo(
        index=int(meta.get("applied_index", 0)),
        epoch=int(meta.get("last_epoch", 0)),
        state_digest=bytes(recorded).hex(),
        log_digest=bytes(meta.get("digest", b"")).hex(),
        size=path.stat().st_size,
    )


def recorded(path: Path) -> BackupInfo:
    """What a copy a store just made (`Store.snapshot_to`) holds, as it
    records it, unchecked: the store keeps its state digest with every
    commit, and the reader of the backup checks it (`describe`)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _info(path, _meta(db))
    finally:
        db.close()


def describe(path: Path) -> BackupInfo:
    """Checks a backup file and says what it holds; BackupError if it is not
    a whole, unaltered chatd store."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot open: {exc}") from exc
    try:
        try:
            problems = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path}: not an SQLite database: {exc}") from exc
        if problems != ["ok"]:
            first = " ".join(problems[0].split())
            raise BackupError(f"{path}: SQLite's quick_check fails: {first}")
        info = _info(path, _meta(db))
        actual = statedigest.to_bytes(statedigest.scan(db)).hex()
        if info.state_digest != actual:
            raise BackupError(
                f"{path}: its tables give state digest {actual}, not "
                f"{info.state_digest} as recorded: the file was altered"
            )
        return info
    finally:
        db.close()


def _identity(path: Path) -> str:
    """A store's "index:state digest" as recorded (no check), or "" if none."""
    try:
        info = recorded(path)
    except (sqlite3.Error, BackupError, OSError):
        return ""
    return f"{info.index}:{info.state_digest}"


def place_for_restore(source: Path, store_path: Path) -> BackupInfo | None:
    """Copies a checked backup to `store_path`, without the old node's own
    metadata; returns what it holds. None: `store_path` holds this backup
    already (restored before, the node goes on from it). BackupError if it
    holds anything else."""
    if store_path.exists() or Path(f"{store_path}-wal").exists():
        restored = _meta_value(store_path, "restored_from")
        if restored and restored == _identity(source):
            return None
        raise BackupError(
            f"{store_path.parent} already holds a store (not restored from {source}): "
            "restore into an empty data dir"
        )
    info = describe(source)
    tmp = store_path.with_name(store_path.name + ".restoring")
    store_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(source, tmp)
        db = sqlite3.connect(tmp)
        try:
            with db:
                db.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in NODE_META])
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('restored_from', ?)",
                    (f"{info.index}:{info.state_digest}",),
                )
            db.execute("PRAGMA journal_mode=DELETE")  # (no -wal left beside it)
        finally:
            db.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, store_path)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            leftover.unlink(missing_ok=True)
    return info


def _meta_value(path: Path, key: str) -> str:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return ""
    return "" if row is None else str(row[0])


def forget_state_digest(path: Path) -> None:
    """Drops the state digest a store copy records (for a node of protocol 1,
    which keeps a snapshot's but never updates it: upgraded, it would find it
    stale and refuse the store; without one, it records one on opening)."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("DELETE FROM meta WHERE key = 'state_digest'")
    finally:
        db.close()


def _time(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="milliseconds")


def export_user(path: Path, username: str) -> Iterator[dict[str, object]]:
    """One user's data in a backup: the account first, then every message
    the user sent or was sent (one-to-one, and the user's own in rooms),
    oldest first. BackupError if there is no such user."""
    describe(path)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT uid, username, created_us FROM users WHERE username = ? AND deleted = 0",
            (username,),
        ).fetchone()
        if row is None:
            raise BackupError(f"{username}: no such user in {path}")
        uid, name, created_us = row
        yield {"account": name, "created": _time(created_us)}
        rooms = dict(db.execute("SELECT -id, name FROM rooms").fetchall())
        for mid, sender, recipient, conv, body, time_us in db.execute(
            "SELECT id, sender, recipient, conv, body, time_us FROM messages "
            "WHERE sender_uid = ? OR recipient_uid = ? ORDER BY id",
            (uid, uid),
        ):
            message: dict[str, object] = {"id": mid, "time": _time(time_us), "from": sender}
            if conv < 0:
                message["room"] = rooms.get(conv, recipient)
            else:
                message["to"] = recipient
            message["body"] = body
            yield message
    finally:
        db.close()


def dumps(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False)
