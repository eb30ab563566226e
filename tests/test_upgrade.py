"""Upgrades: a node opens a data dir written by any earlier chatd.

tests/fixtures/datadirs/COMMIT/ holds the store a node of that commit wrote
(scripts/make_datadir_fixture.py made it) and a manifest of what it holds.
Each is opened here by today's store and by a node: the schema is migrated
forward and recorded, the data is all there and serves, and the store
refuses a version newer than it knows.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import grpc
import pytest

from chatd.client import ChatClient, NoSuchUser, RoomLimit, Unavailable
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import DB_FILE, build
from chatd.server.protocol import VERSION
from chatd.server.storage import schema
from chatd.server.storage.store import Store, StoreError
from chatd.tools.localcluster import (
    PASSWORD,
    Cluster,
    Load,
    NodeProcess,
    check_no_loss,
    free_port,
)
from tests.conftest import node_config
from tests.waiting import eventually_async

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "datadirs"
SECRET = "upgrade-test-secret"
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
        rows = store.db.execute("SELECT id, sender, recipient, body FROM messages").fetchall()
        expected = {(m["id"], m["from"], m["to"], m["body"]) for m in manifest["messages"]}  # type: ignore[attr-defined]
        assert expected <= set(rows)
        assert schema.version_of(store.db) == len(schema.migrations(""))
        tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master")}
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
    node = await build(node_config(tmp_path / "d", node_id=node_id))
    await node.start()
    try:
        await eventually_async(  # it was the master of its one-node cluster
            lambda: node.repl.status().role.value == "master", "the node master again"
        )
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


def test_a_snapshot_of_a_newer_schema_is_refused_before_it_replaces_anything(
    tmp_path: Path,
) -> None:
    path, _ = copy_of("4e557bd", tmp_path / "d")
    store = Store(path)
    try:
        before = (set(store.users), store.last_index, store.state_digest)
        snap = tmp_path / "snapshot.sqlite3"
        store.snapshot_to(snap)
        db = sqlite3.connect(snap)
        db.execute(f"PRAGMA user_version = {len(schema.migrations('')) + 1}")
        db.close()
        with pytest.raises(StoreError, match="written by a newer chatd"):
            store.install_snapshot(snap, ())
        assert (set(store.users), store.last_index, store.state_digest) == before
    finally:
        store.close()
    Store(path).close()  # and the file still opens


def test_a_store_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    Store(path).close()
    db = sqlite3.connect(path)
    newer = len(schema.migrations("")) + 1
    db.execute(f"PRAGMA user_version = {newer}")
    db.close()
    with pytest.raises(StoreError, match=f"schema is version {newer}, written by a newer chatd"):
        Store(path)


OLDEST = "4e557bd"


def old_code(into: Path, commit: str = OLDEST) -> Path | None:
    """The chatd of `commit`, extracted from this repository's history (None:
    git or the commit is not here, as in a shallow clone)."""
    try:
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True, timeout=60
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(into, filter="data")
    return into


def room_refused(address: str, session: str) -> str:
    """CreateRoom at `address`: the details of its UNAVAILABLE ("" if it
    was not refused so)."""
    with grpc.insecure_channel(address) as ch:
        try:
            chat_pb2_grpc.ClientAccountStub(ch).CreateRoom(
                chat_pb2.RoomRequest(session_id=session, room="early"), timeout=5
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return str(exc.details())
    return ""


def test_a_rolling_upgrade_from_the_oldest_keeps_serving_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Three nodes of 4e557bd under write load, upgraded one at a time to
    this chatd (the slaves, then the master): writes go on throughout, and
    every acknowledged one is there at the end. While an old node is a
    member the new ones write nothing it could not apply (rooms wait:
    UNAVAILABLE, "being upgraded"); once all are upgraded the master raises
    the cluster's protocol, and rooms work."""
    code = old_code(tmp_path / "old")
    if code is None:
        print(f"SKIP: commit {OLDEST} is not in this clone's history (git archive failed)")
        pytest.skip(f"commit {OLDEST} is not in this clone's history")
    c = Cluster(tmp_path, SECRET)
    old_env = dict(os.environ, PYTHONPATH=str(code), CHATD_CLUSTER_SECRET=SECRET)
    new_env = dict(os.environ, CHATD_CLUSTER_SECRET=SECRET)
    common = ["--password-hash-cost", "8", "--send-rate", "0"]
    names = ("n1", "n2", "n3")
    old_address = {n: f"127.0.0.1:{free_port()}" for n in names}  # one listener, old style
    new_client = {n: f"127.0.0.1:{free_port()}" for n in names}  # once upgraded

    def start_old(name: str, *extra: str) -> None:
        args = ["serve", "--node-id", name, "--listen", old_address[name]]
        args += ["--data-dir", str(tmp_path / name), *common, *extra]
        node = NodeProcess(args, tmp_path / f"{name}.log", env=old_env, cwd=code)
        c.nodes[name] = node.start()
        c.addresses[name] = c.peers[name] = old_address[name]

    def upgrade(name: str, stopped: bool = False) -> None:
        """Stopped cleanly, started again on this chatd: the peers reach it
        where they did (its old address is its peer listener now)."""
        if not stopped:
            c.nodes[name].kill(signal.SIGTERM)
        client = new_client[name]
        node = NodeProcess.serve(tmp_path, name, client, old_address[name], *common, env=new_env)
        c.nodes[name] = node.start()
        c.addresses[name] = client

    start_old("n1", "--role", "master")
    c.wait_role("n1", "master")
    for name in ("n2", "n3"):
        start_old(name, "--join", old_address["n1"])
    try:
        c.wait(lambda: c.in_sync_count() == 3, "3 old nodes in sync")
        # (the writers try every address: the old ones, until their nodes
        # are upgraded, and the client listeners the new ones will have)
        load = Load([*old_address.values(), *new_client.values()])
        loop = asyncio.new_event_loop()
        done = threading.Event()
        sessions: list[str] = []

        async def run() -> None:
            load.stop = asyncio.Event()
            sessions.extend([await load.session("ann"), await load.session("bob")])
            tasks = [load.writer(sessions[0], "bob", "a"), load.writer(sessions[1], "ann", "b")]
            await asyncio.gather(*tasks)

        def writing() -> None:
            loop.run_until_complete(run())
            done.set()

        thread = threading.Thread(target=writing)
        thread.start()
        try:
            c.wait(lambda: len(load.acked) >= 50, "50 writes on the old cluster")
            for name in ("n2", "n3"):  # the slaves first
                upgrade(name)
                before = len(load.acked)
                c.wait(lambda: c.in_sync_count() == 3, f"{name} upgraded, in sync again", 30)
                c.wait(lambda b=before: len(load.acked) >= b + 50, "writes go on", 30)
            c.nodes["n1"].kill(signal.SIGTERM)  # the master: one of the new nodes takes over
            c.wait(lambda: c.master() in ("n2", "n3"), "a new master", 30)
            # n1, old, is still a member: the new master writes nothing it
            # could not apply (a room waits), and the rest goes on
            refused = room_refused(c.addresses[str(c.master())], sessions[0])
            assert "the cluster is being upgraded" in refused, refused
            upgrade("n1", stopped=True)
            c.wait(lambda: c.in_sync_count() == 3, "n1 upgraded, in sync again", 30)
            before = len(load.acked)
            c.wait(lambda: len(load.acked) >= before + 50, "writes go on", 30)
        finally:
            loop.call_soon_threadsafe(load.stop.set)
            thread.join(60)
        assert done.is_set()

        async def after() -> None:
            new = [c.addresses[n] for n in names]
            await check_no_loss(new[0], sessions[0], "bob", load)
            async with ChatClient(new, retry_for=15.0) as ann:
                await ann.login("ann", PASSWORD)
                await ann.create_room("upgraded")  # the cluster speaks today's protocol now
                await ann.send("", "rooms work", room="upgraded")

        asyncio.run(after())
        state = c.converged()
        assert int(state["applied_index"]) > 0  # type: ignore[call-overload]
        for name in names:  # each node took the old store forward
            assert "schema migrated from version 0" in c.nodes[name].log()
        master = c.master()
        assert master is not None
        assert f"the cluster speaks protocol {VERSION} now" in c.nodes[master].log()
    finally:
        c.stop_all()


def test_an_old_node_is_not_taken_into_a_cluster_of_the_new_protocol(tmp_path: Path) -> None:
    """A node of 4e557bd joining a cluster of this chatd (today's protocol): the
    master refuses it in one log line and it stays out of sync; nothing of
    the cluster changes."""
    code = old_code(tmp_path / "old")
    if code is None:
        print(f"SKIP: commit {OLDEST} is not in this clone's history (git archive failed)")
        pytest.skip(f"commit {OLDEST} is not in this clone's history")
    c = Cluster(tmp_path, SECRET)
    c.add("n1", "--cluster-secret", SECRET)
    try:
        c.wait_role("n1", "master")
        now = f"the cluster speaks protocol {VERSION} now"
        c.wait(lambda: now in c.nodes["n1"].log(), f"protocol {VERSION}")
        old = f"127.0.0.1:{free_port()}"
        env = dict(os.environ, PYTHONPATH=str(code), CHATD_CLUSTER_SECRET=SECRET)
        args = ["serve", "--node-id", "old", "--listen", old, "--join", c.peers["n1"]]
        args += ["--data-dir", str(tmp_path / "old"), "--password-hash-cost", "8"]
        c.nodes["old"] = NodeProcess(args, tmp_path / "old.log", env=env, cwd=code).start()
        line = f"node old speaks protocol 1 and this cluster is at {VERSION}: it is not taken in"
        c.wait(lambda: line in c.nodes["n1"].log(), "the master's one line", 20)
        time.sleep(1)  # (a while: the line is not said again)
        assert c.nodes["n1"].log().count(line) == 1
        s = c.status("n1")
        assert s is not None and [m["node_id"] for m in s["members"]] == ["n1"]  # type: ignore[attr-defined]
    finally:
        c.stop_all()


# What protocol 1 (4e557bd's log.proto) knows: each kind and its fields.
V1_FIELDS = {
    "create_account": {"username", "password_hash"},
    "create_session": {"username", "session_hash"},
    "end_session": {"session_hash"},
    "touch_session": {"session_hash"},
    "expire_sessions": {"idle_since_us"},
    "send_message": {"sender", "recipient", "body", "request_id"},
    "take_undelivered": {"username", "limit"},
    "mark_delivered": {"username", "message_ids"},
    "delete_account": {"username"},
    "noop": {"node_id"},
}
# What protocol 2 (ff6866b's log.proto) knows.
V2_FIELDS = {
    **V1_FIELDS,
    "create_account": {"username", "password_hash", "unique_casefold"},
    "create_session": {"username", "session_hash", "password_hash"},
    "send_message": {"sender", "recipient", "body", "request_id", "room"},
    "take_undelivered": {"username", "limit", "max_bytes"},
    "create_room": {"creator", "name", "topic", "max_rooms"},
    "room_member": {"action", "actor", "room", "username", "max_members", "max_rooms"},
    "mark_read": {"username", "peer", "room", "upto"},
    "set_password": {"username", "password_hash", "keep_session"},
    "set_disabled": {"username", "disabled"},
    "end_user_sessions": {"username"},
    "set_cluster_version": {"version"},
}
# What protocol 3 (c171ec8's log.proto) knows.
V3_FIELDS = {
    **V2_FIELDS,
    "room_member": {*V2_FIELDS["room_member"], "max_invitations"},
    "delete_room": {"actor", "room"},
}
KNOWN_BY = {1: V1_FIELDS, 2: V2_FIELDS, 3: V3_FIELDS}


@pytest.mark.parametrize("version", sorted(KNOWN_BY))
def test_an_older_cluster_is_written_nothing_it_would_apply_otherwise(version: int) -> None:
    """Every kind of entry is either unknown to an older protocol (refused
    while a member speaks it) or written in that protocol's form: with
    every field set that it does not know, `fit` leaves none of them, or
    `writable` refuses the entry. A kind or field added later without
    saying how an older cluster gets it fails here."""
    from chatd.proto import log_pb2
    from chatd.server import protocol

    known_by = KNOWN_BY[version]
    oneof = log_pb2.Entry.DESCRIPTOR.oneofs_by_name["op"]
    for field in oneof.fields:
        kind = field.name
        if kind == "set_cluster_version":  # written once every member speaks a version
            continue
        entry = log_pb2.Entry()
        op = getattr(entry, kind)
        op.SetInParent()
        known = known_by.get(kind, set())
        newer = [f for f in op.DESCRIPTOR.fields if f.name not in known]
        for f in newer:  # every field the version does not know, set
            if f.type == f.TYPE_BOOL:
                setattr(op, f.name, True)
            elif f.type in (f.TYPE_STRING, f.TYPE_BYTES):
                setattr(op, f.name, "x" if f.type == f.TYPE_STRING else b"x")
            else:  # (numbers, and room actions; no repeated field was added)
                setattr(op, f.name, 1)
        assert protocol.writable(entry, protocol.VERSION), kind
        if kind not in known_by:
            assert not protocol.writable(entry, version), kind
            continue
        if not protocol.writable(entry, version):
            continue  # (a room message at 1)
        same = log_pb2.Entry()
        same.CopyFrom(entry)
        protocol.fit(same, protocol.VERSION)  # a cluster of today gets it as it is
        assert same == entry
        protocol.fit(entry, version)
        left = [f.name for f in newer if getattr(op, f.name)]
        assert left == [], (kind, left)


def test_a_cluster_of_protocol_2_is_not_written_a_decline() -> None:
    """DECLINE is a value protocol 2's RoomMember.Action does not have."""
    from chatd.proto import log_pb2
    from chatd.server import protocol

    op = log_pb2.RoomMember(action=log_pb2.RoomMember.DECLINE, actor="a", room="r", username="a")
    entry = log_pb2.Entry(room_member=op)
    assert protocol.writable(entry, 3) and not protocol.writable(entry, 2)
    entry.room_member.action = log_pb2.RoomMember.LEAVE
    assert protocol.writable(entry, 2)


async def test_a_node_applies_nothing_of_a_master_of_a_newer_protocol(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A log stream from a master that says a newer protocol than this node
    speaks is refused before any of it is read (FAILED_PRECONDITION), with
    one ERROR line however often the master tries."""
    from chatd.proto import cluster_pb2, cluster_pb2_grpc
    from chatd.server import protocol

    node = await build(node_config(tmp_path / "d"))
    await node.start()
    try:
        await eventually_async(  # (a founding node writes its protocol first)
            lambda: node.store.cluster_version == protocol.VERSION, "the protocol written"
        )
        applied = node.store.last_index
        newer = ((protocol.HEADER, str(protocol.VERSION + 1)),)
        batch = cluster_pb2.AcceptUpdatesRequest(node_id="m", epoch=99)
        async with grpc.aio.insecure_channel(node.peer_address) as ch:
            for _ in range(3):
                call = cluster_pb2_grpc.SlaveServiceStub(ch).AcceptUpdates(
                    iter([batch]), metadata=newer, timeout=5
                )
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _reply in call:
                        pass
                assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert f"the master {protocol.VERSION + 1}: upgrade it" in str(info.value.details())
        lines = [r for r in caplog.records if "applies nothing of the master's" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelname == "ERROR"
        assert node.store.last_index == applied
    finally:
        await node.stop()


PROTOCOL_2 = "ff6866b"  # the newest chatd of protocol 2


def test_a_member_of_protocol_2_keeps_the_cluster_to_its_room_rules(tmp_path: Path) -> None:
    """n1 of ff6866b founds the cluster (protocol 2); n2 and n3 of this chatd
    join and, n1 stopped, one of them becomes the master; n1 comes back,
    still old. While it
    is a member, DeleteRoom and DeclineInvite answer UNAVAILABLE ("being
    upgraded") and an invitation counts toward the invitee's quota as at
    protocol 2, so both nodes apply the log alike. Once n1 is upgraded the
    cluster speaks this chatd's protocol, and both calls work."""
    code = old_code(tmp_path / "old", PROTOCOL_2)
    if code is None:
        print(f"SKIP: commit {PROTOCOL_2} is not in this clone's history (git archive failed)")
        pytest.skip(f"commit {PROTOCOL_2} is not in this clone's history")
    c = Cluster(tmp_path, SECRET)
    old_env = dict(os.environ, PYTHONPATH=str(code), CHATD_CLUSTER_SECRET=SECRET)
    new_env = dict(os.environ, CHATD_CLUSTER_SECRET=SECRET)
    names = ("n1", "n2", "n3")
    listen = {n: (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}") for n in names}

    def start(name: str, old: bool, *extra: str) -> None:
        args = ("--password-hash-cost", "8", "--max-rooms-per-user", "2", *extra)
        env = old_env if old else new_env
        node = NodeProcess.serve(tmp_path, name, *listen[name], *args, env=env)
        node.cwd = code if old else None
        c.nodes[name] = node.start()
        c.addresses[name], c.peers[name] = listen[name]

    def upgraded_to(version: int) -> bool:
        line = f"the cluster speaks protocol {version} now"
        return any(line in c.nodes[n].log() for n in ("n2", "n3"))

    try:
        start("n1", True, "--role", "master")
        c.wait_role("n1", "master")
        for name in ("n2", "n3"):
            start(name, False, "--join", listen["n1"][1])
        c.wait(lambda: c.in_sync_count() == 3, "3 nodes in sync")

        async def one_write() -> None:
            async with ChatClient([c.addresses["n1"]]) as zed:
                await zed.create_account("zed", PASSWORD)

        # a write's commit tells n2 and n3 that they are in sync (this old
        # master tells them at a heartbeat or a commit, not at once): without
        # it, the master stopped at once leaves neither eligible, and the
        # election waits for it, saying so
        asyncio.run(one_write())
        c.converged()
        c.nodes["n1"].kill(signal.SIGTERM)
        c.wait(lambda: c.master() in ("n2", "n3"), "a new master", 30)
        start("n1", True)  # back from its data dir, still of protocol 2
        refusal = f"node n1 speaks protocol 2 and its master {VERSION}: it applies nothing"
        c.wait(lambda: refusal in c.nodes["n1"].log(), "old n1 refusing the new master", 30)
        assert not upgraded_to(VERSION)

        async def while_old() -> None:
            address = [c.addresses[str(c.master())]]
            async with ChatClient(address) as ann, ChatClient(address, retry_for=1.0) as bob:
                for client, name in ((ann, "ann"), (bob, "bob")):
                    await client.create_account(name, PASSWORD)
                    await client.login(name, PASSWORD)
                await ann.create_room("team")
                await bob.create_room("own")
                await ann.invite("team", "bob")
                with pytest.raises(RoomLimit):
                    await bob.create_room("third")  # protocol 2: invitations count
                # (each refusal is retried for the client's retry_for before it
                # raises: 1 s, not the default 30)
                async with ChatClient(address, retry_for=1.0) as owner:
                    await owner.login("ann", PASSWORD)
                    for call in (bob.decline_invite("team"), owner.delete_room("team")):
                        with pytest.raises(Unavailable) as info:
                            await call
                        assert "the cluster is being upgraded" in info.value.message

        asyncio.run(while_old())
        assert not upgraded_to(VERSION)
        c.converged(["n2", "n3"])
        c.nodes["n1"].kill(signal.SIGTERM)
        start("n1", False)
        c.wait(lambda: upgraded_to(VERSION), f"the cluster at protocol {VERSION}", 30)

        async def upgraded() -> None:
            async with (
                ChatClient(list(c.addresses.values())) as ann,
                ChatClient(list(c.addresses.values())) as bob,
            ):
                await ann.login("ann", PASSWORD)
                await bob.login("bob", PASSWORD)
                await bob.decline_invite("team")
                await ann.delete_room("team")
                await bob.create_room("third")  # one joined, no invitation: under 2
                assert [r.name for r in await ann.rooms()] == []

        asyncio.run(upgraded())
        c.converged()
    finally:
        c.stop_all()
