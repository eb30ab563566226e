"""Backup, restore and export, as an operator runs them (chatd.server.storage.backup,
chatd.tools.backups): `chatd backup` of a cluster under write load, asked
of a slave; `chatd serve --restore` founding a fresh 3-node cluster from it;
`chatd export`; and the files a restore must refuse."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pexpect
import pytest

from chatd.client import ChatClient
from chatd.server.build import DB_FILE
from chatd.server.storage.backup import BackupError, describe, place_for_restore
from chatd.tools.localcluster import PASSWORD, Cluster, Load
from tests.conftest import spawn_chatd


def rows(path: Path, upto: int) -> list[tuple[object, ...]]:
    """The messages a store holds with id <= upto (read-only, while it runs)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT id, sender, recipient, body, time_us FROM messages WHERE id <= ? ORDER BY id",
            (upto,),
        ).fetchall()
    finally:
        db.close()


def chatd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args], capture_output=True, text=True, timeout=60
    )


def load_in_background(cluster: Cluster) -> tuple[Load, threading.Thread, list[str]]:
    """Two writers sending as fast as they are answered, in a thread of
    their own, until load.stop (set from that loop)."""
    load = Load(list(cluster.addresses.values()))
    loop = asyncio.new_event_loop()
    started: list[str] = []

    async def run() -> None:
        load.stop = asyncio.Event()
        s1, s2 = await load.session("ann"), await load.session("bob")
        started.append("yes")
        await asyncio.gather(load.writer(s1, "bob", "a"), load.writer(s2, "ann", "b"))

    thread = threading.Thread(target=lambda: loop.run_until_complete(run()), daemon=True)
    thread.start()
    load.loop = loop  # type: ignore[attr-defined]
    return load, thread, started


def test_backup_under_load_restored_into_a_fresh_cluster(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    source = Cluster.start(tmp_path / "a")
    restored: Cluster | None = None
    backup = tmp_path / "chatd.backup"
    try:
        load, thread, started = load_in_background(source)
        source.wait(lambda: bool(started) and len(load.acked) >= 200, what="200 sent", timeout=30)
        before = dict(load.acked)  # acknowledged before the backup was asked for
        slave = next(n for n in source.nodes if source.status(n)["role"] == "slave")  # type: ignore[index]
        out = source.cli("backup", "--server", source.addresses[slave], str(backup))
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"backup written to {backup}: index "), out.stdout
        source.wait(lambda: len(load.acked) >= len(before) + 100, what="100 more", timeout=30)
        load.loop.call_soon_threadsafe(load.stop.set)  # type: ignore[attr-defined]
        thread.join(30)
        info = describe(backup)
        assert f"index {info.index} (epoch {info.epoch}), state digest {info.state_digest}" in (
            out.stdout
        )
        assert not list(tmp_path.glob("*.partial*"))
        # nothing left beside it, nor in the master's data dir
        assert [p.name for p in tmp_path.glob("chatd.backup*")] == ["chatd.backup"]
        for name in source.nodes:
            assert not list((source.base / name).glob("backup-*")), name

        # a fresh cluster founded from the backup, two nodes joining it
        restored = Cluster(tmp_path / "b")
        restored.add("n1", "--restore", str(backup))
        restored.wait_role("n1", "master")
        for name in ("n2", "n3"):
            restored.add(name, join=restored.peers["n1"])
        restored.wait(lambda: restored.in_sync_count() == 3, what="3 in sync")
        state = restored.converged()
        assert state["state_digest"] == info.state_digest  # every node, the backup's data

        # every message acknowledged before the backup, under its id; the
        # messages it holds are the source cluster's, row for row
        held = rows(restored.base / "n2" / DB_FILE, 2**31)
        ids = {int(r[0]) for r in held}  # type: ignore[call-overload]
        newest = max(ids)
        assert set(before.values()) <= ids
        assert rows(source.base / "n1" / DB_FILE, newest) == held

        # the accounts, sessions and messages serve: ann logs in, reads, writes
        async def use() -> None:
            async with ChatClient(list(restored.addresses.values())) as ann:
                await ann.login("ann", PASSWORD)
                chat = await ann.get_chat("bob", limit=500)
                assert chat and chat[-1].id == newest
                new = await ann.send("bob", "after the restore")
                assert new > newest

        asyncio.run(use())

        # started again with the same command line: it goes on from its data
        restored.kill("n1")
        restored.restart("n1")
        restored.converged()

        # export: ann's account and every message she sent or was sent
        out = chatd("export", "--user", "ann", "--backup", str(backup))
        assert out.returncode == 0, out.stderr
        records = [json.loads(line) for line in out.stdout.splitlines()]
        assert records[0]["account"] == "ann"
        exported = {r["id"] for r in records[1:]}
        assert exported == {r[0] for r in held if "ann" in (r[1], r[2])}
        assert all(set(r) == {"id", "time", "from", "to", "body"} for r in records[1:])
    finally:
        source.stop_all()
        if restored is not None:
            restored.stop_all()


def test_backup_at_a_terminal_shows_progress_and_export_takes_a_fresh_one(
    tmp_path: Path,
) -> None:
    """As an operator sees it: `chatd backup` at a terminal rewrites one
    progress line, then names the file; `chatd export --server` takes a
    backup of its own and prints the user's data."""
    (tmp_path / "a").mkdir()
    source = Cluster.start(tmp_path / "a", 1)
    try:
        asyncio.run(fill(source.addresses["n1"]))
        target = tmp_path / "b.sqlite3"
        child = spawn_chatd("backup", "--server", source.addresses["n1"], str(target))
        child.expect(r"\rbackup: 100% \(\d+\.\d of \d+\.\d MiB\)\r\n")
        child.expect(f"backup written to {target}: index ")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        out = chatd("export", "--user", "ann", "--server", source.addresses["n1"])
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert json.loads(lines[0])["account"] == "ann" and len(lines) == 1 + 3
        assert out.stderr == ""  # (no progress line where no terminal is)
    finally:
        source.stop_all()


async def fill(address: str) -> None:
    async with ChatClient([address]) as ann:
        await ann.create_account("ann", PASSWORD)
        await ann.login("ann", PASSWORD)
        for i in range(3):
            await ann.send("ann", f"note {i}")


def test_restore_refuses_an_altered_file_and_a_data_dir_in_use(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    source = Cluster.start(tmp_path / "a", 1)
    try:
        backup = tmp_path / "b.sqlite3"
        out = source.cli("backup", "--server", source.addresses["n1"], str(backup))
        assert out.returncode == 0, out.stderr
    finally:
        source.stop_all()
    good = describe(backup)
    # a data dir that holds a store already (not this backup's restore)
    out = chatd(
        "serve", "--restore", str(backup), "--data-dir", str(source.base / "n1"),
        "--listen", "127.0.0.1:0",
    )  # fmt: skip
    assert out.returncode == 1
    assert "already holds a store" in out.stderr and "restore into an empty data dir" in out.stderr
    # a row changed outside chatd: the state digest no longer matches
    altered = tmp_path / "altered.sqlite3"
    altered.write_bytes(backup.read_bytes())
    db = sqlite3.connect(altered)
    db.execute("INSERT INTO users(username, password_hash, created_us) VALUES ('eve', 'x', 1)")
    db.commit()
    db.close()
    with pytest.raises(BackupError, match="the file was altered"):
        describe(altered)
    out = chatd("serve", "--restore", str(altered), "--data-dir", str(tmp_path / "fresh"))
    assert out.returncode == 1 and "the file was altered" in out.stderr
    # not a store at all
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(BackupError, match="not an SQLite database"):
        place_for_restore(junk, tmp_path / "fresh2" / DB_FILE)
    assert not (tmp_path / "fresh2" / DB_FILE).exists()
    assert describe(backup) == good
