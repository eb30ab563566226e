"""Upgrades: a node opens a data dir written by any earlier chatd.

tests/fixtures/datadirs/COMMIT/ holds the store a node of that commit wrote
(scripts/make_datadir_fixture.py made it) and a manifest of what it holds.
Each is opened here by today's store and by a node: the schema is migrated
forward and recorded, the data is all there and serves, and the store
refuses a version newer than it knows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from chatd.client import ChatClient, NoSuchUser
from chatd.server import schema
from chatd.server.node import DB_FILE, Node
from chatd.server.store import Store, StoreError
from tests.conftest import node_config

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "datadirs"
MADE_BY = sorted(p.name for p in FIXTURES.iterdir() if (p / "manifest.json").exists())


def test_there_is_a_fixture_of_the_oldest_store_a_node_must_open() -> None:
    assert "4e557bd" in MADE_BY


def copy_of(commit: str, into: Path) -> tuple[Path, dict[str, object]]:
    into.mkdir(parents=True)
    shutil.copyfile(FIXTURES / commit / DB_FILE, into / DB_FILE)
    return into / DB_FILE, json.loads((FIXTURES / commit / "manifest.json").read_text())


@pytest.mark.parametrize("commit", MADE_BY)
def test_the_store_opens_a_data_dir_of(commit: str, tmp_path: Path) -> None:
    path, manifest = copy_of(commit, tmp_path / "d")
    store = Store(path)
    try:
        assert set(store.users) == set(manifest["users"])  # type: ignore[call-overload]
        rows = store._db.execute("SELECT id, sender, recipient, body FROM messages").fetchall()
        expected = {(m["id"], m["from"], m["to"], m["body"]) for m in manifest["messages"]}  # type: ignore[attr-defined]
        assert expected <= set(rows)
        assert schema.version_of(store._db) == len(schema.migrations(""))
        tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
        assert {"rooms", "room_members", "read_markers", "disabled_accounts"} <= tables
        digest = store.state_digest
    finally:
        store.close()
    again = Store(path)  # opened again: nothing to migrate, the same data
    try:
        assert again.state_digest == digest
    finally:
        again.close()


@pytest.mark.parametrize("commit", MADE_BY)
async def test_a_node_serves_a_data_dir_of(commit: str, tmp_path: Path) -> None:
    path, manifest = copy_of(commit, tmp_path / "d")
    db = sqlite3.connect(path)
    node_id = db.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()[0]
    db.close()
    node = Node(node_config(tmp_path / "d", node_id=node_id))
    await node.start()
    try:
        for _ in range(100):  # it was the master of its one-node cluster
            if node.repl.status().role.value == "master":
                break
            await asyncio.sleep(0.05)
        async with ChatClient([node.address]) as alice:
            await alice.login("alice", str(manifest["password"]))
            chat = await alice.get_chat("bob", limit=500)
            sent = [m for m in manifest["messages"] if "alice" in (m["from"], m["to"])]  # type: ignore[attr-defined]
            assert [(m.id, m.body) for m in chat] == [(m["id"], m["body"]) for m in sent]
            new = await alice.send("bob", "after the upgrade")
            assert new > max(m["id"] for m in sent)
            async with ChatClient([node.address]) as carol:
                with pytest.raises(NoSuchUser):  # deleted before the fixture was made
                    await carol.login("carol", str(manifest["password"]))
            await alice.create_room("upgraded")  # what the old chatd did not have
    finally:
        await node.stop()


def test_a_store_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    Store(path).close()
    db = sqlite3.connect(path)
    newer = len(schema.migrations("")) + 1
    db.execute(f"PRAGMA user_version = {newer}")
    db.close()
    with pytest.raises(StoreError, match=f"schema is version {newer}, written by a newer chatd"):
        Store(path)
