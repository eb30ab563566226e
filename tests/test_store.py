"""The store's background checkpoint: committed pages reach the database
file while a batch is open on the writer's connection, and the store may be
closed or replaced around it."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

from chatd.proto import log_pb2
from chatd.store import Store


def create(store: Store, name: str) -> None:
    entry = log_pb2.Entry(
        create_account=log_pb2.CreateAccount(username=name, password_hash="h"), time_us=1
    )
    store.append(entry, entry.SerializeToString(deterministic=True), 1)


def users_in_file_alone(db: Path, tmp: Path) -> list[str]:
    """The usernames in the database file, without its write-ahead log."""
    copy = tmp / "alone.sqlite3"
    shutil.copy(db, copy)
    con = sqlite3.connect(copy)
    try:
        return [r[0] for r in con.execute("SELECT username FROM users ORDER BY uid")]
    except sqlite3.OperationalError:  # not even the schema is there yet
        return []
    finally:
        con.close()


def test_checkpoint_runs_beside_an_open_batch(tmp_path: Path) -> None:
    db = tmp_path / "chatd.sqlite3"
    store = Store(db)
    try:
        store.begin()
        create(store, "alice")
        create(store, "bob")
        store.commit()
        assert users_in_file_alone(db, tmp_path) == []  # still in the log only
        store.begin()  # the writer holds its write lock meanwhile
        create(store, "carol")
        done = threading.Event()

        def checkpoint() -> None:
            store.checkpoint()
            done.set()

        worker = threading.Thread(target=checkpoint)
        worker.start()
        assert done.wait(10), "the checkpoint waited for the writer"
        worker.join()
        store.commit()
        assert users_in_file_alone(db, tmp_path) == ["alice", "bob"]
        store.checkpoint()
        assert users_in_file_alone(db, tmp_path) == ["alice", "bob", "carol"]
    finally:
        store.close()
    store.checkpoint()  # after close: nothing to do, no error


def test_checkpoint_follows_an_installed_snapshot(tmp_path: Path) -> None:
    source = Store(tmp_path / "source.sqlite3")
    source.begin()
    create(source, "dave")
    source.commit()
    source.snapshot_to(tmp_path / "snap.sqlite3")
    source.close()
    db = tmp_path / "chatd.sqlite3"
    store = Store(db)
    try:
        store.begin()
        create(store, "erin")
        store.commit()
        store.checkpoint()  # opens its connection on the file about to go
        store.install_snapshot(tmp_path / "snap.sqlite3", ())
        store.begin()
        create(store, "frank")
        store.commit()
        store.checkpoint()
        assert users_in_file_alone(db, tmp_path) == ["dave", "frank"]
    finally:
        store.close()
