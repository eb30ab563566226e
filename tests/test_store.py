"""The store's background checkpoint: committed pages reach the database
file while a batch is open on the writer's connection, the store may be
closed or replaced around it, and a running node checkpoints by itself."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from chatd.proto import chat_pb2, chat_pb2_grpc, log_pb2
from chatd.server.build import DB_FILE
from chatd.server.storage.store import Store
from tests.conftest import NodeProcess, wait_serving


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
        assert done.wait(1), "the checkpoint waited for the writer"
        worker.join()
        store.commit()
        assert users_in_file_alone(db, tmp_path) == ["alice", "bob"]
        store.checkpoint()
        assert users_in_file_alone(db, tmp_path) == ["alice", "bob", "carol"]
    finally:
        store.close()
    store.checkpoint()  # after close: nothing to do, no error, no connection left open
    assert store._conns.checkpointer is None


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


def test_a_running_node_checkpoints_by_itself(
    spawn_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    """A handful of writes is far below SQLite's automatic checkpoint (1,000
    pages): only the node's background checkpoint puts them in the file."""
    node = spawn_node("n1", "--role", "master")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    with grpc.insecure_channel(address) as ch:
        stub = chat_pb2_grpc.ClientAccountStub(ch)
        for name in ("gina", "hank"):
            r = stub.CreateAccount(
                chat_pb2.CreateAccountRequest(username=name, password="pw-123456"), timeout=5
            )
            assert r.error_code == 0, r.error_message
    db = tmp_path / "n1" / DB_FILE
    deadline = time.monotonic() + 5
    found: list[str] = []
    while time.monotonic() < deadline and found != ["gina", "hank"]:
        time.sleep(0.05)
        found = users_in_file_alone(db, tmp_path)
    assert found == ["gina", "hank"]
