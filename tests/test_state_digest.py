"""The state digest (chatd/server/storage/statedigest.py, kept by the store): a digest
of the replicated tables' rows, so that a node whose data was changed outside
chatd, or that installed a forged snapshot, is told apart from the others
even though its log digest is the same.

Store-level tests on real SQLite files in temp dirs: the digest does not
depend on batch boundaries, a rolled-back entry or batch leaves no trace in
it, an edited file refuses to open with a message naming the file and the
repair, and a tampered snapshot installs with a different digest. Process
tests: a node whose file was edited refuses to start; a slave given a forged
snapshot is reported by its master (status, metric, one log line).
"""

from __future__ import annotations

import re
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import DB_FILE
from chatd.server.storage import statedigest
from chatd.server.storage.apply import KINDS, Tables
from chatd.server.storage.backup import NODE_META
from chatd.server.storage.store import Applied, Store, StoreError
from chatd.tools.localcluster import Cluster
from tests.conftest import PASSWORD, NodeProcess, wait_serving
from tests.test_store_apply import (
    E,
    apply,
    create_account,
    create_room,
    create_session,
    data_of,
    everything,
    mark,
    send,
    take,
    touch_session,
)

LOG = [
    create_account("alice"),
    create_account("bob"),
    create_session("alice", b"a1", t=2),
    create_session("alice", b"a1", t=3),  # the same hash again: REPLACE deletes a row
    send("alice", "bob", "one", "r1", t=3),
    send("bob", "alice", "two", t=4),
    send("alice", "bob", "three", "r2", t=4),
    touch_session(b"a1", t=5),
    take("bob", t=6),
    mark("alice", [2], t=7),
]


def scan_file(path: Path) -> bytes:
    con = sqlite3.connect(path)
    try:
        return statedigest.to_bytes(statedigest.scan(con))
    finally:
        con.close()


def edit(path: Path, sql: str) -> None:
    """Changes the file as an operator's sqlite3 shell would."""
    con = sqlite3.connect(path)
    try:
        con.execute(sql)
        con.commit()
    finally:
        con.close()


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []

    def open_(name: str) -> Store:
        s = Store(tmp_path / name, synchronous="OFF")
        opened.append(s)
        return s

    yield open_
    for s in opened:
        if not s._conns.closed:
            s.close()


def test_the_digest_does_not_depend_on_batch_boundaries(
    open_store: Callable[[str], Store],
) -> None:
    whole, single, split = open_store("a"), open_store("b"), open_store("c")
    apply(whole, LOG)
    for e in LOG:
        apply(single, [e])
    apply(split, LOG[:3])
    apply(split, LOG[3:7])
    apply(split, LOG[7:])
    assert whole.state_digest != statedigest.to_bytes(0)
    assert whole.state_digest == single.state_digest == split.state_digest
    assert whole.state_digest == scan_file(whole.path)
    for i in range(1, len(LOG) + 1):  # and index by index
        assert whole.digests_at(i) == single.digests_at(i) == split.digests_at(i) is not None
    # another message body: another digest, with the same log length
    other = open_store("d")
    apply(other, [*LOG[:-1], send("alice", "bob", "four", t=7)])
    assert other.last_index == whole.last_index and other.state_digest != whole.state_digest


def test_a_rolled_back_entry_leaves_the_digest_unchanged(
    open_store: Callable[[str], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store("a")
    apply(store, LOG[:3])
    before, last = store.state_digest, store.last_index
    real = KINDS["send_message"]

    def fails_after_writing(t: Tables, out: Applied, entry: E) -> Applied:
        real(t, out, entry)  # inserts the message and its request id
        raise RuntimeError("apply failed after writing rows")

    monkeypatch.setitem(KINDS, "send_message", fails_after_writing)
    store.begin()
    with pytest.raises(RuntimeError, match="after writing rows"):
        e = send("alice", "bob", "never", "r9", t=5)
        store.append(e, data_of(e), 1)
    store.commit()
    assert (store.state_digest, store.last_index) == (before, last)
    assert store.digests_at(last + 1) is None
    store.close()
    again = open_store("a")  # what was committed agrees with the tables
    assert again.state_digest == before == scan_file(again.path)


def test_an_entry_that_fails_amid_a_batch_leaves_the_others_as_if_it_never_was(
    open_store: Callable[[str], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The master's writer refuses the entry alone: the batch's other entries,
    before and after it, are stored and cached as in a store that never saw
    it, and the state digest kept is the tables'; so with a second one."""
    store, never = open_store("a"), open_store("b")
    apply(store, LOG[:3])
    apply(never, LOG[:3])
    real = KINDS["send_message"]

    def fails_after_writing(t: Tables, out: Applied, entry: E) -> Applied:
        real(t, out, entry)  # inserts the message and its request id
        if entry.send_message.body == "never":
            raise RuntimeError("apply failed after writing rows")
        return out

    monkeypatch.setitem(KINDS, "send_message", fails_after_writing)
    earlier = [  # the caches change here: a new user, a new room, the newest message id
        create_account("carol", t=5),
        create_room("carol", "den", t=5),
        send("carol", "bob", "hi", "r5", t=5),
    ]
    later = [send("bob", "carol", "after", "r6", t=6), create_account("dave", t=7)]
    store.begin()
    got = [store.append(e, data_of(e), 1) for e in earlier]
    for e in later:  # a failing entry before each (the first rolls the batch back)
        failing = send("alice", "bob", "never", f"r9{e.time_us}", t=6)
        with pytest.raises(RuntimeError, match="after writing rows"):
            store.append(failing, data_of(failing), 1)
        got.append(store.append(e, data_of(e), 1))
    store.commit()
    expected = apply(never, earlier + later)
    assert [(a.index, a.code, a.message_id) for a in got] == [
        (a.index, a.code, a.message_id) for a in expected
    ]
    assert everything(store) == everything(never)  # tables, caches, digests, log
    assert store.last_message_id == never.last_message_id == got[3].message_id
    batch = range(4, store.last_index + 1)
    assert [store.digests_at(i) for i in batch] == [never.digests_at(i) for i in batch]
    assert [store.recent.get(i) for i in batch] == [data_of(e) for e in earlier + later]
    assert store.state_digest == statedigest.to_bytes(statedigest.scan(store.db))
    store.close()
    again = open_store("a")  # what was committed agrees with the tables
    assert again.state_digest == never.state_digest == scan_file(again.path)


def test_a_rolled_back_batch_leaves_the_digest_unchanged(
    open_store: Callable[[str], Store],
) -> None:
    store = open_store("a")
    apply(store, LOG[:3])
    before, last = store.state_digest, store.last_index
    store.begin()
    for e in LOG[3:]:
        store.append(e, data_of(e), 1)
    assert store.state_digest != before and store.digests_at(last + 1) is not None
    store.rollback()
    assert (store.state_digest, store.last_index) == (before, last)
    assert store.digests_at(last + 1) is None
    apply(store, LOG[3:])  # and the same entries again give the digest they should
    assert store.state_digest == scan_file(store.path)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE messages SET body = 'forged' WHERE id = 1",
        "DELETE FROM request_ids WHERE seq = 1",
        "UPDATE users SET password_hash = 'x' WHERE username = 'bob'",
        "UPDATE messages SET body = CAST(body AS BLOB) WHERE id = 2",  # the type only
        "INSERT INTO sessions(hash, uid, created_us, last_used_us) VALUES (x'00', 1, 1, 1)",
    ],
)
def test_a_file_edited_outside_chatd_refuses_to_open(
    open_store: Callable[[str], Store], change: str
) -> None:
    store = open_store("chatd.sqlite3")
    apply(store, LOG)
    path = store.path
    store.close()
    edit(path, change)
    with pytest.raises(StoreError) as refused:
        Store(path)
    message = str(refused.value)
    assert str(path) in message and "changed outside chatd" in message
    assert f"Move the data dir {path.parent} aside" in message
    assert "chatd serve --join" in message


def test_a_store_without_a_recorded_digest_records_it(
    open_store: Callable[[str], Store],
) -> None:
    """A file written before the state digest existed opens, and from then on is checked."""
    store = open_store("a")
    apply(store, LOG)
    want = store.state_digest
    store.close()
    edit(store.path, "DELETE FROM meta WHERE key = 'state_digest'")
    again = open_store("a")
    assert again.state_digest == want
    again.close()
    edit(store.path, "UPDATE messages SET body = 'forged' WHERE id = 1")
    with pytest.raises(StoreError, match="changed outside chatd"):
        Store(store.path)


def test_a_forged_snapshot_installs_with_another_digest(
    open_store: Callable[[str], Store], tmp_path: Path
) -> None:
    master = open_store("master")
    apply(master, LOG)
    honest, forged = tmp_path / "honest.sqlite3", tmp_path / "forged.sqlite3"
    master.snapshot_to(honest)
    master.snapshot_to(forged)
    edit(forged, "UPDATE messages SET body = 'forged' WHERE id = 1")  # meta left as it was
    a, b = open_store("a"), open_store("b")
    a.install_snapshot(honest, ())
    b.install_snapshot(forged, ())
    assert (a.last_index, a.digest, a.state_digest) == (
        master.last_index,
        master.digest,
        master.state_digest,
    )
    # the same log position and log digest: only the state digest tells
    assert (b.last_index, b.digest) == (master.last_index, master.digest)
    assert b.state_digest != master.state_digest
    assert b.state_digest == scan_file(b.path)
    assert b.digests_at(b.last_index) == (master.digest, b.state_digest)
    apply(b, [send("bob", "alice", "later", t=9)])  # the triggers work on the new file
    assert b.state_digest == scan_file(b.path)


# -- real processes --


def create_accounts(address: str, names: list[str]) -> None:
    with grpc.insecure_channel(address) as ch:
        stub = chat_pb2_grpc.ClientAccountStub(ch)
        for name in names:
            r = stub.CreateAccount(
                chat_pb2.CreateAccountRequest(username=name, password=PASSWORD), timeout=5
            )
            assert r.error_code == 0, r.error_message


def test_a_node_whose_file_was_edited_refuses_to_start(
    spawn_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    node = spawn_node("n1", "--role", "master")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    create_accounts(address, ["alice", "bob"])
    node.kill(15)  # SIGTERM: a clean stop (waited for)
    db = tmp_path / "n1" / DB_FILE
    edit(db, "UPDATE users SET username = 'mallory' WHERE username = 'bob'")
    size = len(node.log())
    node.start()
    assert node.proc is not None
    code = node.proc.wait(timeout=30)
    assert code != 0
    lines = [ln for ln in node.log()[size:].splitlines() if "changed outside chatd" in ln]
    assert len(lines) == 1, node.log()[size:]
    assert str(db) in lines[0] and "chatd serve --join" in lines[0]


def metric(port: int, name: str) -> list[tuple[str, float]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return [
        (m.group(1) or "", float(m.group(2)))
        for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    ]


def test_a_forged_snapshot_on_a_slave_is_reported_by_the_master(tmp_path: Path) -> None:
    c = Cluster.start(tmp_path, 3, "--metrics-port", "0")
    try:
        create_accounts(c.addresses["n1"], ["alice", "bob", "carol"])
        state = c.converged()  # the state digests are compared too
        assert state["state_digest"] and state["diverged"] == []
        # n3 stops; its file is replaced, through the store, by a tampered copy
        # of itself (what installing a forged snapshot leaves behind)
        c.kill("n3")
        db = tmp_path / "n3" / DB_FILE
        store = Store(db)
        try:
            copy = tmp_path / "forged.sqlite3"
            store.snapshot_to(copy)
            edit(copy, "UPDATE users SET password_hash = 'forged' WHERE username = 'carol'")
            store.install_snapshot(copy, NODE_META)
        finally:
            store.close()
        c.restart("n3")

        def diverged(name: str) -> list[dict[str, Any]]:
            s = c.status(name)
            return [] if s is None else cast(list[dict[str, Any]], s["diverged"])

        c.wait(
            lambda: [d["node_id"] for d in diverged("n1")] == ["n3"],
            what="the master to report n3 diverged",
            timeout=30,
        )
        doc = c.cli_status("n1")
        (d,) = cast(list[dict[str, Any]], doc["diverged"])
        assert d["node_id"] == "n3" and d["state_digest"] != d["master_state_digest"]
        n3 = c.cli_status("n3")
        if n3["applied_index"] == d["index"]:  # no write since (nothing writes in this test)
            assert n3["state_digest"] == d["state_digest"]
            assert doc["state_digest"] == d["master_state_digest"]
        port = int(re.findall(r"metrics on http://[^:]+:(\d+)/", c.nodes["n1"].log())[0])
        assert ('{node="n3"}', 1.0) in metric(port, "chatd_state_digest_mismatch")
        assert ('{node="n2"}', 0.0) in metric(port, "chatd_state_digest_mismatch")
        assert metric(port, "chatd_state_digest_mismatches_total") == [("", 1.0)]
        time.sleep(3)  # reports go on every second: the alarm is not repeated
        lines = [ln for ln in c.nodes["n1"].log().splitlines() if "state digest of n3" in ln]
        assert len(lines) == 1, lines
        assert "ERROR" in lines[0] or "error" in lines[0]
        assert metric(port, "chatd_state_digest_mismatches_total") == [("", 1.0)]
        assert c.status("n2") is not None
    finally:
        c.stop_all()
