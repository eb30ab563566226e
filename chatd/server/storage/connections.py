"""The store's three SQLite connections and their locks.

The writer connection (`db`) is used by one caller at a time (apply on the
event loop, the commit's fsync in a worker thread); the reader connection
(`reader`, under `reader_lock`) serves the paged reads from a worker thread,
and only sees committed data; a third connection, opened on first use,
copies the write-ahead log into the database file from a thread of its own
(`checkpoint`, under `checkpoint_lock`). Replacing the file or closing
takes the locks of both.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from chatd.server.errors import StoreError


class Connections:
    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self._synchronous = synchronous
        self.db = self.connect()
        self.reader = self.connect()
        self.reader_lock = threading.Lock()
        self.checkpointer: sqlite3.Connection | None = None
        self.checkpoint_lock = threading.Lock()
        self.closed = False

    def connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=5000")  # first: the others may wait on a lock
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.execute("PRAGMA cache_size=-16000")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        return db

    def checkpoint(self) -> None:
        """Copies the committed pages of the write-ahead log into the database
        file, on a connection of its own, while writers go on (a passive
        checkpoint). Blocking: run it in a thread of its own."""
        with self.checkpoint_lock:
            if self.closed:
                return
            if self.checkpointer is None:
                self.checkpointer = self.connect()
            self.checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _close_checkpointer(self) -> None:
        """Call with the checkpoint lock held."""
        if self.checkpointer is not None:
            self.checkpointer.close()
            self.checkpointer = None

    def replace_file(self, source: Path) -> None:
        """Closes every connection, puts `source` in the database file's
        place (its write-ahead log gone) and opens the writer and the reader
        on it again."""
        with self.checkpoint_lock, self.reader_lock:
            self._close_checkpointer()
            self.reader.close()
            self.db.close()
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            os.replace(source, self.path)
            self.db = self.connect()
            self.reader = self.connect()

    def close(self) -> None:
        with self.checkpoint_lock:
            self.closed = True
            self._close_checkpointer()
        with self.reader_lock:
            self.reader.close()
        self.db.close()
