"""Rollback files (chatd.server.storage.rollback) and `chatd rollback list`: what a
record holds (no secrets), the file and dir modes whatever the umask, the
count a node starts with, records read back once per entry. The real
partitions that write them, and `chatd rollback resend`, are in
tests/test_partitions.py."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chatd.client import ChatClient
from chatd.proto import log_pb2
from chatd.server.storage import rollback
from chatd.tools.localcluster import PASSWORD, Cluster
from chatd.tools.rollback import note, records_of, request_id

T = 1_796_617_291_921_871


def message(body: str, request: str = "") -> log_pb2.Entry:
    op = log_pb2.SendMessage(sender="alice", recipient="bob", body=body, request_id=request)
    return log_pb2.Entry(time_us=T, send_message=op)


def test_a_record_says_what_a_person_needs_and_no_secret() -> None:
    r = rollback.describe(message("hi", "req-1"), 4, 17, acknowledged=True)
    assert r == {
        "kind": "send_message",
        "epoch": 4,
        "index": 17,
        "time": "2026-12-07T04:21:31.921871+00:00",
        "time_us": T,
        "acknowledged": "yes",
        "sender": "alice",
        "recipient": "bob",
        "text": "hi",
        "request_id": "req-1",
        "reply_to": 0,  # (numbers are said, zero too)
    }
    account = log_pb2.Entry(
        time_us=T, create_account=log_pb2.CreateAccount(username="carol", password_hash="scrypt$x")
    )
    r = rollback.describe(account, 4, 18, acknowledged=False)
    assert r["username"] == "carol" and r["acknowledged"] == "perhaps"
    assert "scrypt$x" not in json.dumps(r)
    login = log_pb2.CreateSession(username="carol", session_hash=b"s")
    session = log_pb2.Entry(create_session=login)
    assert "session_hash" not in rollback.describe(session, 4, 19, acknowledged=False)
    room = log_pb2.RoomMember(action=log_pb2.RoomMember.INVITE, actor="a", room="r", username="b")
    assert rollback.describe(log_pb2.Entry(room_member=room), 4, 20, False)["action"] == "INVITE"


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        records = [rollback.describe(message(f"m{i}"), 3, i, True) for i in (1, 2)]
        now = datetime(2026, 12, 7, 4, 21, 37, tzinfo=UTC)
        first = rollback.write(tmp_path, records, 5, now)
        second = rollback.write(tmp_path, records[:1], 5, now)  # the same second: a new name
    finally:
        os.umask(old)
    assert first.name == "20261207T042137-e5.jsonl" and second != first
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
    assert rollback.read(first) == records
    tally = rollback.Tally.of(tmp_path)
    assert (tally.files, tally.entries) == (2, 3)
    # two files holding the same entry (two nodes dropped it): read once
    assert [r["text"] for r in records_of([tmp_path])] == ["m1", "m2"]


def test_resend_keeps_the_request_id_and_notes_the_time() -> None:
    r = rollback.describe(message("hi", "req-1"), 4, 17, True)
    assert request_id(r) == "req-1"  # a client's retry that got through is not doubled
    r = rollback.describe(message("hi"), 4, 17, True)
    assert request_id(r) == "rollback-4-17"
    assert note(r) == "[re-sent: first sent 2026-12-07 04:21:31 UTC, rolled back by a failover] "


def test_list_command(tmp_path: Path) -> None:
    records = [rollback.describe(message("hello there"), 3, 9, True)]
    path = rollback.write(tmp_path, records, 5, datetime.now(UTC))
    run = [sys.executable, "-m", "chatd", "rollback", "list"]
    out = subprocess.run([*run, str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "3:9" in out.stdout and "hello there" in out.stdout and "alice" in out.stdout
    out = subprocess.run([*run, "--json", str(path)], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout) == records[0]
    path.write_text("not json\n")
    out = subprocess.run([*run, str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and f"{path}:1: not JSON" in out.stderr


@pytest.mark.parametrize("mode", [0o755, 0o700])
def test_an_existing_dir_is_made_private(tmp_path: Path, mode: int) -> None:
    (tmp_path / rollback.DIR).mkdir(mode=mode)
    os.chmod(tmp_path / rollback.DIR, mode)
    rollback.write(tmp_path, [], 1, datetime.now(UTC))
    assert stat.S_IMODE((tmp_path / rollback.DIR).stat().st_mode) == 0o700


def test_messages_get_their_ids_and_retries_point_at_the_first() -> None:
    records = [
        rollback.describe(message("a", "r1"), 3, 7, True),
        rollback.describe(message("b", "r2"), 3, 8, True),
        rollback.describe(message("a", "r1"), 3, 9, True),  # the client's retry of 7
    ]
    rollback.identify(records, {("alice", T, "a"): 41, ("alice", T, "b"): 42})
    assert [r["message_id"] for r in records] == [41, 42, 41]
    assert [r.get("duplicate_of") for r in records] == [None, None, 7]


def test_resend_sends_a_long_message_without_the_note(tmp_path: Path) -> None:
    """`chatd rollback resend` against a real node whose --max-message-chars
    is 300: a message the note would push over 300 is sent as its text
    alone, one of 300 too, one of 301 is refused (the text is over even
    alone); a short one keeps its note. The summary counts in words."""
    limit = 300
    cluster = Cluster.start(tmp_path, 1, "--max-message-chars", str(limit))
    try:
        address = cluster.addresses["n1"]

        async def accounts() -> None:
            for name in ("alice", "bob"):
                async with ChatClient(address) as c:
                    await c.create_account(name, PASSWORD)

        asyncio.run(accounts())
        texts = ["short", "x" * (limit - 40), "y" * limit, "z" * (limit + 1)]
        records = [rollback.describe(message(t), 3, i, True) for i, t in enumerate(texts, 1)]
        login = log_pb2.Entry(time_us=T, create_session=log_pb2.CreateSession(username="bob"))
        records.append(rollback.describe(login, 3, 9, True))
        path = rollback.write(tmp_path / "d", records, 5, datetime.now(UTC))
        out = cluster.cli("rollback", "resend", "--server", address, str(path))
        assert out.returncode == 1, out  # (one refused)
        assert out.stdout.strip() == (
            "re-sent 3 messages; 0 were there already (written again before); 1 refused; "
            "1 entry of other kinds not replayed (chatd rollback list shows them)"
        ), out
        assert "3:4: not re-sent: invalid message: use 1 to 300 characters" in out.stderr, out

        async def bobs_inbox() -> list[str]:
            async with ChatClient(address) as bob:
                await bob.login("bob", PASSWORD)
                return [m.body for m in await bob.get_messages()]

        got = asyncio.run(bobs_inbox())
        assert got == [note(records[0]) + "short", texts[1], texts[2]], got
        more = [records[0], rollback.describe(message("new"), 3, 10, True)]
        path = rollback.write(tmp_path / "d", more, 5, datetime.now(UTC))
        out = cluster.cli("rollback", "resend", "--server", address, str(path))
        assert out.returncode == 0, out
        assert out.stdout.strip() == (
            "re-sent 1 message; 1 was there already (written again before); 0 refused; "
            "0 entries of other kinds not replayed"
        ), out
    finally:
        cluster.stop_all()


def test_list_of_a_file_that_is_not_text_names_it(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0binary\n")
    run = [sys.executable, "-m", "chatd", "rollback", "list", str(path)]
    out = subprocess.run(run, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"chatd rollback list: {path}:1: not a rollback file (not UTF-8 text)"
    ), out.stderr
