"""Applying log entries to the SQLite store (chatd/server/storage/store.py), one test per
entry kind, and the digest's promises, property-tested (hypothesis).

Each kind's test applies one entry as chat.py builds it and checks that the
tables and the caches changed exactly as they should, and nothing else did. The
digest is a chain over the log (epoch and entry bytes): two stores applying the
same entries in the same order agree on it and on the last index whatever the
batches; a different entry gives a different digest; a store that installed a
snapshot and applies the rest agrees with one that applied everything; a store
reopened from its file is where it was. The state digest, kept as apply changes
rows, always equals the one recomputed from the committed tables, so it too is
alike in all these stores. Real SQLite files in temp directories.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage import statedigest
from chatd.server.storage.rows import ReadReceipt
from chatd.server.storage.store import (
    GENESIS_DIGEST,
    Applied,
    Session,
    Store,
    StoredMessage,
    User,
    chain_digest,
    conversation_key,
)

E = log_pb2.Entry
Rows = list[tuple[Any, ...]]

# -- entries, built as chat.py builds them (the writer sets time_us) --


def create_account(name: str, t: int = 1, pw: str = "scrypt$8$salt$hash") -> E:
    return E(time_us=t, create_account=log_pb2.CreateAccount(username=name, password_hash=pw))


def create_session(name: str, h: bytes, t: int = 1) -> E:
    return E(time_us=t, create_session=log_pb2.CreateSession(username=name, session_hash=h))


def end_session(h: bytes, t: int = 1) -> E:
    return E(time_us=t, end_session=log_pb2.EndSession(session_hash=h))


def touch_session(h: bytes, t: int = 1) -> E:
    return E(time_us=t, touch_session=log_pb2.TouchSession(session_hash=h))


def expire_sessions(idle_since: int, t: int = 1) -> E:
    return E(time_us=t, expire_sessions=log_pb2.ExpireSessions(idle_since_us=idle_since))


def create_room(creator: str, name: str, t: int = 1) -> E:
    return E(time_us=t, create_room=log_pb2.CreateRoom(creator=creator, name=name))


def delete_room(actor: str, room: str, t: int = 1) -> E:
    return E(time_us=t, delete_room=log_pb2.DeleteRoom(actor=actor, room=room))


def room_member(action: Any, actor: str, room: str, who: str, t: int = 1) -> E:
    op = log_pb2.RoomMember(action=action, actor=actor, room=room, username=who)
    return E(time_us=t, room_member=op)


def mark_read(name: str, peer: str, upto: int, t: int = 1) -> E:
    return E(time_us=t, mark_read=log_pb2.MarkRead(username=name, peer=peer, upto=upto))


def share_receipts(name: str, share: bool, t: int = 1) -> E:
    return E(time_us=t, share_receipts=log_pb2.ShareReceipts(username=name, share=share))


def send(sender: str, to: str, body: str, request_id: str = "", t: int = 1) -> E:
    op = log_pb2.SendMessage(sender=sender, recipient=to, body=body, request_id=request_id)
    return E(time_us=t, send_message=op)


def take(name: str, limit: int = 1000, t: int = 1) -> E:
    return E(time_us=t, take_undelivered=log_pb2.TakeUndelivered(username=name, limit=limit))


def mark(name: str, ids: list[int], t: int = 1) -> E:
    return E(time_us=t, mark_delivered=log_pb2.MarkDelivered(username=name, message_ids=ids))


def delete_account(name: str, t: int = 1) -> E:
    return E(time_us=t, delete_account=log_pb2.DeleteAccount(username=name))


def set_password(name: str, pw: str, keep: bytes = b"", t: int = 1) -> E:
    op = log_pb2.SetPassword(username=name, password_hash=pw, keep_session=keep)
    return E(time_us=t, set_password=op)


def set_disabled(name: str, disabled: bool, t: int = 1) -> E:
    return E(time_us=t, set_disabled=log_pb2.SetDisabled(username=name, disabled=disabled))


def end_user_sessions(name: str, t: int = 1) -> E:
    return E(time_us=t, end_user_sessions=log_pb2.EndUserSessions(username=name))


def edit(actor: str, mid: int, body: str, window_us: int = 0, t: int = 1) -> E:
    op = log_pb2.EditMessage(actor=actor, message_id=mid, body=body, window_us=window_us)
    return E(time_us=t, edit_message=op)


def delete_message(actor: str, mid: int, t: int = 1) -> E:
    return E(time_us=t, delete_message=log_pb2.DeleteMessage(actor=actor, message_id=mid))


def react(actor: str, mid: int, emoji: str, remove: bool = False, most: int = 3, t: int = 1) -> E:
    op = log_pb2.React(actor=actor, message_id=mid, emoji=emoji, remove=remove, max_per_user=most)
    return E(time_us=t, react=op)


def file_chunk(owner: str, fid: str, seq: int, data: bytes, t: int = 1, **kw: Any) -> E:
    kw.setdefault("max_bytes", 1 << 20)
    op = log_pb2.FileChunk(file_id=fid, owner=owner, seq=seq, data=data, **kw)
    return E(time_us=t, file_chunk=op)


def file_commit(owner: str, fid: str, data: bytes, t: int = 1, **kw: Any) -> E:
    op = log_pb2.FileCommit(
        file_id=fid,
        owner=owner,
        name="f",
        content_type="application/octet-stream",
        size=len(data),
        sha256=hashlib.sha256(data).digest(),
        **({"max_user_bytes": 1 << 20} | kw),
    )
    return E(time_us=t, file_commit=op)


def set_profile(name: str, display: str, avatar: str = "", t: int = 1) -> E:
    op = log_pb2.SetProfile(username=name, display_name=display, avatar_file_id=avatar)
    return E(time_us=t, set_profile=op)


def noop(node: str, t: int = 1) -> E:
    return E(time_us=t, noop=log_pb2.Noop(node_id=node))


def data_of(entry: E) -> bytes:
    return entry.SerializeToString(deterministic=True)


def apply(store: Store, entries: list[E], epoch: int = 1) -> list[Applied]:
    """Appends and applies `entries` in one batch, committed."""
    store.begin()
    out = [store.append(e, data_of(e), epoch) for e in entries]
    store.commit()
    return out


# -- what a store holds --


TABLES = {
    "users": "SELECT uid, username, password_hash, created_us, deleted FROM users ORDER BY uid",
    "sessions": "SELECT hash, uid, created_us, last_used_us FROM sessions ORDER BY hash",
    "messages": "SELECT id, sender, sender_uid, recipient, recipient_uid, conv, body, time_us, "
    "delivered FROM messages ORDER BY id",
    "request_ids": "SELECT seq, sender_uid, request_id, message_id, time_us FROM request_ids "
    "ORDER BY seq",
    "rooms": "SELECT id, name, topic, creator_uid, created_us FROM rooms ORDER BY id",
    "room_members": "SELECT room_id, uid, joined, admin, since_id FROM room_members "
    "ORDER BY room_id, uid",
    "read_markers": "SELECT uid, conv, upto FROM read_markers ORDER BY uid, conv",
    "message_events": "SELECT * FROM message_events ORDER BY id",
    "message_state": "SELECT * FROM message_state ORDER BY id",
    "reactions": "SELECT * FROM reactions ORDER BY message_id, uid, emoji",
}


def rows(path: Path, sql: str) -> Rows:
    """Committed rows, read on a connection of the test's own."""
    con = sqlite3.connect(path)
    try:
        return [tuple(r) for r in con.execute(sql)]
    finally:
        con.close()


@dataclass
class State:
    """The replicated tables, and the caches that mirror them."""

    tables: dict[str, Rows]
    users: dict[str, User]
    sessions: dict[bytes, Session]
    rooms: list[tuple[object, ...]]  # the room cache: (id, name, topic, creator, members)


def state(store: Store) -> State:
    return State(
        tables={name: rows(store.path, sql) for name, sql in TABLES.items()},
        users={k: User(u.uid, u.username, u.password_hash) for k, u in store.users.items()},
        sessions={k: Session(s.uid, s.username, s.last_used_us) for k, s in store.sessions.items()},
        rooms=sorted(
            (
                r.id,
                r.name,
                r.topic,
                r.creator,
                sorted((m.uid, m.name, m.joined, m.admin, m.since_id) for m in r.members.values()),
            )
            for r in store.rooms.by_id.values()
        ),
    )


def everything(store: Store) -> dict[str, object]:
    """All a store's replicated state and positions, for comparing two stores
    (outside a batch: the state digest kept must equal the tables')."""
    s = state(store)
    assert store.state_digest == state_digest_of(store.path)
    return {
        **s.tables,
        "users cache": s.users,
        "sessions cache": s.sessions,
        "rooms cache": s.rooms,
        "log": rows(store.path, "SELECT idx, epoch, digest, entry FROM log ORDER BY idx"),
        "ids": rows(store.path, "SELECT name, seq FROM sqlite_sequence ORDER BY name"),
        "digest": store.digest,
        "state digest": store.state_digest,
        "state digest of the tables": state_digest_of(store.path),
        "last_index": store.last_index,
        "last_epoch": store.last_epoch,
        "last_time_us": store.last_time_us,
        "runs": list(store.runs.pairs),
    }


def state_digest_of(path: Path) -> bytes:
    """The state digest recomputed from the committed tables (full scan)."""
    con = sqlite3.connect(path)
    try:
        return statedigest.to_bytes(statedigest.scan(con))
    finally:
        con.close()


@contextmanager
def open_store(path: Path, synchronous: str = "FULL") -> Iterator[Store]:
    store = Store(path, synchronous=synchronous)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "chatd.sqlite3") as s:
        yield s


def apply_one(store: Store, entry: E, epoch: int = 1) -> tuple[Applied, State, State]:
    """Applies one entry; checks it became exactly one log row at the next index
    with the chained digest; returns its outcome and the state around it."""
    before = state(store)
    index, digest = store.last_index + 1, chain_digest(store.digest, epoch, data_of(entry))
    (applied,) = apply(store, [entry], epoch)
    assert applied.index == index
    assert (store.last_index, store.last_epoch, store.digest) == (index, epoch, digest)
    assert rows(store.path, f"SELECT idx, epoch, digest, entry FROM log WHERE idx >= {index}") == [
        (index, epoch, digest, data_of(entry))
    ]
    return applied, before, state(store)


def user_row(store: Store, name: str) -> tuple[Any, ...]:
    (row,) = [r for r in state(store).tables["users"] if r[1] == name and r[4] == 0]
    return row


# -- one test per entry kind --


def test_noop_changes_nothing_but_the_log(store: Store) -> None:
    apply(store, [create_account("alice")])
    applied, before, after = apply_one(store, noop("n1", t=5), epoch=2)
    assert applied == Applied(index=2)
    assert after == before
    assert store.runs.pairs == [(1, 1), (2, 2)]  # a new epoch's first entry starts a run
    assert store.last_time_us == 5


def test_create_account(store: Store) -> None:
    applied, before, after = apply_one(store, create_account("alice", t=7, pw="h1"))
    assert applied.code == Code.OK and applied.new_uid == 1
    before.tables["users"].append((1, "alice", "h1", 7, 0))
    before.users["alice"] = User(1, "alice", "h1")
    assert after == before


def test_create_account_with_a_taken_name_changes_nothing(store: Store) -> None:
    apply(store, [create_account("alice", pw="first")])
    applied, before, after = apply_one(store, create_account("alice", pw="second"))
    assert applied.code == Code.USERNAME_TAKEN and applied.new_uid == 0
    assert after == before  # refused, yet in the log: every node refuses it alike


def test_create_session(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob")])
    applied, before, after = apply_one(store, create_session("bob", b"h-bob", t=9))
    assert applied.code == Code.OK
    before.tables["sessions"].append((b"h-bob", 2, 9, 9))
    before.sessions[b"h-bob"] = Session(2, "bob", 9)
    assert after == before


def test_create_session_for_no_such_user_changes_nothing(store: Store) -> None:
    apply(store, [create_account("alice")])
    applied, before, after = apply_one(store, create_session("zed", b"h"))
    assert applied.code == Code.NO_SUCH_USER
    assert after == before


def test_end_session(store: Store) -> None:
    apply(store, [create_account("alice"), create_session("alice", b"h1", t=2)])
    apply(store, [create_session("alice", b"h2", t=3)])
    applied, before, after = apply_one(store, end_session(b"h1"))
    assert applied.code == Code.OK and applied.ended_sessions == [b"h1"]
    before.tables["sessions"] = [r for r in before.tables["sessions"] if r[0] != b"h1"]
    del before.sessions[b"h1"]
    assert after == before


def test_end_session_that_is_not_there_changes_nothing(store: Store) -> None:
    apply(store, [create_account("alice"), create_session("alice", b"h1")])
    applied, before, after = apply_one(store, end_session(b"other"))
    assert applied.code == Code.NOT_LOGGED_IN and applied.ended_sessions == []
    assert after == before


def test_touch_session(store: Store) -> None:
    apply(store, [create_account("alice"), create_session("alice", b"h1", t=2)])
    apply(store, [create_session("alice", b"h2", t=3)])
    applied, before, after = apply_one(store, touch_session(b"h1", t=50))
    assert applied.code == Code.OK
    before.tables["sessions"] = [
        (h, uid, created, 50 if h == b"h1" else used)
        for h, uid, created, used in before.tables["sessions"]
    ]
    before.sessions[b"h1"].last_used_us = 50
    assert after == before


def test_touch_session_that_is_not_there_changes_nothing(store: Store) -> None:
    apply(store, [create_account("alice"), create_session("alice", b"h1", t=2)])
    applied, before, after = apply_one(store, touch_session(b"gone", t=50))
    assert applied.code == Code.OK  # a touch racing a logout is no error
    assert after == before


def test_expire_sessions_ends_those_idle_since_before(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob")])
    apply(
        store,
        [
            create_session("alice", b"old", t=10),
            create_session("bob", b"edge", t=20),
            create_session("alice", b"new", t=30),
        ],
    )
    applied, before, after = apply_one(store, expire_sessions(idle_since=20, t=40))
    assert applied.code == Code.OK and applied.ended_sessions == [b"old"]
    before.tables["sessions"] = [r for r in before.tables["sessions"] if r[0] != b"old"]
    del before.sessions[b"old"]
    assert after == before  # idle since exactly `idle_since`: kept


def test_send_message(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob")])
    applied, before, after = apply_one(store, send("alice", "bob", "hi", "r1", t=11))
    assert applied.code == Code.OK and applied.message_id == 1 and not applied.duplicate
    assert applied.new_message == StoredMessage(1, "alice", "bob", "hi", 11)
    before.tables["messages"].append((1, "alice", 1, "bob", 2, conversation_key(1, 2), "hi", 11, 0))
    before.tables["request_ids"].append((1, 1, "r1", 1, 11))
    assert after == before
    assert store.last_message_id == 1


def test_send_message_without_a_request_id_keeps_none(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob")])
    applied, before, after = apply_one(store, send("bob", "alice", "yo", t=3))
    assert applied.message_id == 1
    before.tables["messages"].append((1, "bob", 2, "alice", 1, conversation_key(2, 1), "yo", 3, 0))
    assert after == before


def test_send_message_retried_with_its_request_id_stores_it_once(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob")])
    apply(store, [send("alice", "bob", "hi", "r1")])
    applied, before, after = apply_one(store, send("alice", "bob", "hi again", "r1", t=5))
    assert applied.code == Code.OK and applied.duplicate and applied.message_id == 1
    assert applied.new_message is None
    assert after == before


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        (send("zed", "bob", "hi"), Code.NOT_LOGGED_IN),
        (send("alice", "zed", "hi"), Code.NO_SUCH_RECIPIENT),
    ],
)
def test_send_message_refused_changes_nothing(store: Store, entry: E, code: Code) -> None:
    apply(store, [create_account("alice"), create_account("bob")])
    applied, before, after = apply_one(store, entry)
    assert applied.code == code and applied.message_id == 0
    assert after == before


def test_take_undelivered_takes_the_oldest_up_to_the_limit(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob"), create_account("carol")])
    apply(
        store,
        [
            send("alice", "bob", "1"),
            send("carol", "bob", "2"),
            send("bob", "alice", "3"),  # to someone else: untouched
            send("alice", "bob", "4"),
        ],
    )
    applied, before, after = apply_one(store, take("bob", limit=2))
    assert applied.code == Code.OK
    assert [(m.id, m.body) for m in applied.messages] == [(1, "1"), (2, "2")]
    before.tables["messages"] = [
        (*r[:8], 1 if r[0] in (1, 2) else r[8]) for r in before.tables["messages"]
    ]
    assert after == before
    applied, _, _ = apply_one(store, take("bob", limit=2))
    assert [m.id for m in applied.messages] == [4]


def test_take_undelivered_for_no_such_user_changes_nothing(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob"), send("alice", "bob", "1")])
    applied, before, after = apply_one(store, take("zed"))
    assert applied.code == Code.NOT_LOGGED_IN and applied.messages == []
    assert after == before


def test_mark_delivered_marks_only_the_users_own(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob")])
    apply(
        store,
        [send("alice", "bob", "1"), send("bob", "alice", "2"), send("alice", "bob", "3")],
    )
    applied, before, after = apply_one(store, mark("bob", [1, 2, 99]))
    assert applied.code == Code.OK
    before.tables["messages"] = [
        (*r[:8], 1 if r[0] == 1 else r[8]) for r in before.tables["messages"]
    ]
    assert after == before  # 2 is alice's, 99 does not exist


def test_mark_delivered_for_no_such_user_changes_nothing(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob"), send("alice", "bob", "1")])
    applied, before, after = apply_one(store, mark("zed", [1]))
    assert applied.code == Code.NOT_LOGGED_IN
    assert after == before


def test_delete_account(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob")])
    apply(
        store,
        [
            create_session("bob", b"b1"),
            create_session("bob", b"b2"),
            create_session("alice", b"a1"),
            send("alice", "bob", "delivered", "ra"),
            send("bob", "alice", "from bob", "rb"),
            send("alice", "bob", "undelivered"),
        ],
    )
    apply(store, [mark("bob", [1])])
    applied, before, after = apply_one(store, delete_account("bob"))
    assert applied.code == Code.OK and applied.deleted_user == "bob"
    assert sorted(applied.ended_sessions) == [b"b1", b"b2"]
    t = before.tables
    t["users"] = [(*r[:4], 1) if r[1] == "bob" else r for r in t["users"]]
    t["sessions"] = [r for r in t["sessions"] if r[1] != 2]
    t["messages"] = [r for r in t["messages"] if r[0] != 3]  # to bob, undelivered
    t["request_ids"] = [r for r in t["request_ids"] if r[1] != 2]
    del before.users["bob"]
    del before.sessions[b"b1"], before.sessions[b"b2"]
    assert after == before
    # the name is free again, for a new account with a new uid
    apply(store, [create_account("bob")])
    assert user_row(store, "bob")[0] == 3


def test_delete_account_for_no_such_user_changes_nothing(store: Store) -> None:
    apply(store, [create_account("alice")])
    applied, before, after = apply_one(store, delete_account("zed"))
    assert applied.code == Code.NOT_LOGGED_IN and applied.deleted_user is None
    assert after == before


def test_account_administration(store: Store) -> None:
    apply(
        store,
        [create_account("alice"), create_account("bob")]
        + [create_session("alice", h) for h in (b"a1", b"a2", b"a3")]
        + [create_session("bob", b"b1")],
    )
    # a new password: every other session of the user ends, the kept one stays
    applied, _, _ = apply_one(store, set_password("alice", "new-hash", keep=b"a2"))
    assert sorted(applied.ended_sessions) == [b"a1", b"a3"]
    assert set(store.sessions) == {b"a2", b"b1"}
    assert store.users["alice"].password_hash == "new-hash"
    # disabled: every session ends; a store opened again knows it
    applied, _, _ = apply_one(store, set_disabled("alice", True, t=7))
    assert applied.ended_sessions == [b"a2"] and store.users["alice"].disabled
    assert store.account_counts("alice").disabled_since_us == 7  # type: ignore[union-attr]
    applied, _, _ = apply_one(store, end_user_sessions("bob"))
    assert applied.ended_sessions == [b"b1"] and not store.sessions
    for kind in (set_password("zed", "h"), set_disabled("zed", True), end_user_sessions("zed")):
        applied, before, after = apply_one(store, kind)
        assert applied.code == Code.NO_SUCH_USER and after == before
    # a login that hashed while the account changed gets no session
    op = log_pb2.CreateSession(username="alice", session_hash=b"a4", password_hash="new-hash")
    applied, before, after = apply_one(store, E(time_us=8, create_session=op))
    assert applied.code == Code.ACCOUNT_DISABLED and after == before
    with open_store(store.path) as reopened:  # (a second connection, as a restart's)
        assert reopened.users["alice"].disabled and not reopened.users["bob"].disabled
    applied, _, _ = apply_one(store, set_disabled("alice", False))
    assert not store.users["alice"].disabled
    op = log_pb2.CreateSession(username="alice", session_hash=b"a5", password_hash="old-hash")
    applied, before, after = apply_one(store, E(time_us=9, create_session=op))
    assert applied.code == Code.WRONG_PASSWORD and after == before
    assert store.account_counts("alice").disabled_since_us == 0


def test_a_read_marker_that_moves_is_a_receipt_for_those_who_share(store: Store) -> None:
    apply(store, [create_account("alice"), create_account("bob"), create_account("carol")])
    applied, _, _ = apply_one(store, mark_read("alice", "bob", 5))
    assert applied.receipt == ReadReceipt("alice", "bob", "", 5, ("bob",))
    applied, _, after = apply_one(store, mark_read("alice", "bob", 3))  # does not move
    assert applied.receipt is None
    # one who does not share is not shown, nor shown others'
    for who in ("bob", "alice"):
        apply_one(store, share_receipts(who, False))
        applied, _, _ = apply_one(store, mark_read("alice", "bob", 9 if who == "bob" else 10))
        assert applied.code == Code.OK and applied.receipt is None
        apply_one(store, share_receipts(who, True))
    applied, _, _ = apply_one(store, mark_read("alice", "bob", 11))
    assert applied.receipt is not None and applied.receipt.upto == 11
    applied, before, after = apply_one(store, share_receipts("zed", False))
    assert applied.code == Code.NO_SUCH_USER and after == before
    # the setting goes with the account
    apply_one(store, share_receipts("carol", False))
    assert not store.shares_receipts(store.users["carol"].uid)
    uid = store.users["carol"].uid
    apply_one(store, delete_account("carol"))
    assert store.shares_receipts(uid)


def test_an_entry_of_no_known_kind_leaves_nothing_behind(store: Store) -> None:
    apply(store, [create_account("alice")])
    before, last, digest = everything(store), store.last_index, store.digest
    store.begin()
    with pytest.raises(ValueError, match="unknown kind"):
        store.append(E(time_us=5), data_of(E(time_us=5)), 1)
    store.commit()
    assert everything(store) == before
    assert (store.last_index, store.digest) == (last, digest)


# -- the digest, per kind --

SETUP = [
    create_account("alice", t=1),
    create_account("bob", t=1),
    create_session("alice", b"ha", t=2),
    create_session("bob", b"hb", t=2),
    send("alice", "bob", "one", "r1", t=3),
    send("bob", "alice", "two", t=3),
    create_room("alice", "home", t=3),
    file_chunk("alice", "f9", 0, b"z", t=3),
]


# kind -> (the entry, a different entry of the same kind)
SCENARIOS: dict[str, tuple[E, E]] = {
    "noop": (noop("n1", t=4), noop("n2", t=4)),
    "create_account": (create_account("carol", t=4), create_account("dave", t=4)),
    "create_session": (create_session("bob", b"hb2", t=4), create_session("bob", b"hb3", t=4)),
    "end_session": (end_session(b"ha", t=4), end_session(b"hb", t=4)),
    "touch_session": (touch_session(b"ha", t=4), touch_session(b"ha", t=5)),
    "expire_sessions": (expire_sessions(3, t=4), expire_sessions(2, t=4)),
    "send_message": (send("alice", "bob", "x", "r2", t=4), send("alice", "bob", "y", "r2", t=4)),
    "take_undelivered": (take("bob", t=4), take("alice", t=4)),
    "mark_delivered": (mark("bob", [1], t=4), mark("bob", [1, 2], t=4)),
    "delete_account": (delete_account("bob", t=4), delete_account("alice", t=4)),
    "create_room": (create_room("alice", "team", t=4), create_room("alice", "crew", t=4)),
    "room_member": (
        room_member(log_pb2.RoomMember.INVITE, "alice", "home", "bob", t=4),
        room_member(log_pb2.RoomMember.LEAVE, "alice", "home", "alice", t=4),
    ),
    # the room goes, its name free; a room not there: refused, the store unchanged
    "delete_room": (delete_room("alice", "home", t=4), delete_room("alice", "nope", t=4)),
    "mark_read": (mark_read("alice", "bob", 1, t=4), mark_read("alice", "bob", 2, t=4)),
    "set_password": (set_password("bob", "h2", t=4), set_password("bob", "h3", t=4)),
    "set_disabled": (set_disabled("bob", True, t=4), set_disabled("alice", True, t=4)),
    "end_user_sessions": (end_user_sessions("bob", t=4), end_user_sessions("alice", t=4)),
    # message 1 is alice's to bob, 2 bob's to alice
    "edit_message": (edit("alice", 1, "uno", t=4), edit("alice", 1, "eins", t=4)),
    "delete_message": (delete_message("alice", 1, t=4), delete_message("bob", 2, t=4)),
    "react": (react("bob", 1, "\N{THUMBS UP SIGN}", t=4), react("bob", 1, "\N{EYES}", t=4)),
    "share_receipts": (share_receipts("bob", False, t=4), share_receipts("alice", False, t=4)),
    "file_chunk": (
        file_chunk("alice", "f1", 0, b"x", t=4),
        file_chunk("alice", "f1", 0, b"y", t=4),
    ),
    # (no upload f0: refused, the store unchanged; "f9" is SETUP's, committed)
    "file_commit": (file_commit("alice", "f9", b"z", t=4), file_commit("alice", "f0", b"", t=4)),
    "set_profile": (set_profile("bob", "Bob", t=4), set_profile("alice", "Al", t=4)),
    "set_cluster_version": (
        E(time_us=4, set_cluster_version=log_pb2.SetClusterVersion(version=2)),
        E(time_us=4, set_cluster_version=log_pb2.SetClusterVersion(version=3)),
    ),
}


def test_every_entry_kind_has_a_scenario() -> None:
    kinds = {f.name for f in log_pb2.Entry.DESCRIPTOR.oneofs_by_name["op"].fields}
    assert set(SCENARIOS) == kinds


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_digest_is_deterministic_per_kind(tmp_path: Path, kind: str) -> None:
    entry, other = SCENARIOS[kind]
    assert entry.WhichOneof("op") == other.WhichOneof("op") == kind
    with (
        open_store(tmp_path / "a.sqlite3") as a,
        open_store(tmp_path / "b.sqlite3") as b,
        open_store(tmp_path / "c.sqlite3") as c,
    ):
        for s in (a, b, c):
            apply(s, SETUP)
        a.snapshot_to(tmp_path / "snap.sqlite3")
        with open_store(tmp_path / "d.sqlite3") as d:
            d.install_snapshot(tmp_path / "snap.sqlite3", ())
            assert everything(d) == everything(a)
            apply(a, [entry])
            apply(b, [entry])
            apply(d, [entry])
            apply(c, [other])
            assert a.digest != GENESIS_DIGEST
            assert (a.digest, a.last_index) == (b.digest, b.last_index)
            assert everything(a) == everything(b)
            # a snapshot of the state before, then the same entry: the same store
            assert everything(d) == everything(a)
            # a different entry of the same kind: the same index, another digest
            assert c.last_index == a.last_index and c.digest != a.digest
        # the same entry at another epoch is another log
        with open_store(tmp_path / "e.sqlite3") as e:
            apply(e, SETUP)
            apply(e, [entry], epoch=2)
            assert e.last_index == a.last_index and e.digest != a.digest


# -- random sequences of valid entries (hypothesis) --

NAMES = ["alice", "bob", "carol"]
HASHES = [b"s0", b"s1", b"s2", b"s3"]
ACTIONS = list(log_pb2.RoomMember.Action.values())


def room_send(sender: str, room: str, body: str, t: int) -> E:
    return E(time_us=t, send_message=log_pb2.SendMessage(sender=sender, room=room, body=body))


def mark_room_read(name: str, room: str, upto: int, t: int) -> E:
    return E(time_us=t, mark_read=log_pb2.MarkRead(username=name, room=room, upto=upto))


@st.composite
def entries(draw: st.DrawFn) -> list[tuple[E, int]]:
    """Entries such as chat.py makes, with the (epoch, time) a writer gives
    them: epochs and times never decrease along the log."""
    name, h = st.sampled_from(NAMES), st.sampled_from(HASHES)
    room = st.sampled_from(["r", "R", "s"])
    ops: list[Callable[[int], st.SearchStrategy[E]]] = [
        lambda t: st.builds(create_account, name, st.just(t), st.sampled_from(["p", "q"])),
        lambda t: st.builds(create_session, name, h, st.just(t)),
        lambda t: st.builds(end_session, h, st.just(t)),
        lambda t: st.builds(touch_session, h, st.just(t)),
        lambda t: st.builds(expire_sessions, st.integers(0, t), st.just(t)),
        lambda t: st.builds(
            send,
            name,
            name,
            st.text(max_size=5),
            st.sampled_from(["", "", "r1", "r2", "r3"]),
            st.just(t),
        ),
        lambda t: st.builds(take, name, st.integers(1, 3), st.just(t)),
        lambda t: st.builds(mark, name, st.lists(st.integers(1, 20), max_size=3), st.just(t)),
        lambda t: st.builds(delete_account, name, st.just(t)),
        lambda t: st.builds(noop, st.sampled_from(["n1", "n2"]), st.just(t)),
        lambda t: st.builds(create_room, name, room, st.just(t)),
        lambda t: st.builds(room_member, st.sampled_from(ACTIONS), name, room, name, st.just(t)),
        lambda t: st.builds(room_send, name, room, st.text(max_size=3), st.just(t)),
        lambda t: st.builds(mark_room_read, name, room, st.integers(0, 20), st.just(t)),
        lambda t: st.builds(delete_room, name, room, st.just(t)),
    ]
    # weights: sends (and what reads them) often, the ends of accounts rarely
    weights = [2, 2, 1, 1, 1, 6, 2, 2, 1, 1, 1, 3, 2, 1, 1]
    out: list[tuple[E, int]] = []
    if draw(st.booleans()):  # most entries then find their users and sessions
        out = [(create_account(n), 1) for n in NAMES]
        out += [(create_session(n, h), 1) for n, h in zip(NAMES, HASHES, strict=False)]
    epoch, t = 1, 1
    for _ in range(draw(st.integers(1, 40))):
        epoch += draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1]))
        t += draw(st.integers(0, 3))
        op = draw(
            st.sampled_from([op for op, w in zip(ops, weights, strict=True) for _ in range(w)])
        )
        out.append((draw(op(t)), epoch))
    return out


def apply_in_batches(store: Store, log: list[tuple[E, int]], cuts: set[int]) -> list[Applied]:
    """Applies `log`, committing after every index in `cuts` and at the end."""
    out: list[Applied] = []
    store.begin()
    for i, (e, epoch) in enumerate(log):
        out.append(store.append(e, data_of(e), epoch))
        if i in cuts and i < len(log) - 1:
            store.commit()
            store.begin()
    store.commit()
    return out


@settings(max_examples=40, deadline=None)
@given(log=entries(), cuts=st.sets(st.integers(0, 46)), split=st.integers(0, 46))
def test_random_logs_give_equal_stores(
    log: list[tuple[E, int]], cuts: set[int], split: int
) -> None:
    split = min(split, len(log))
    # synchronous=OFF: no fsync, the process does not crash; what is compared
    # is what SQLite holds, which it keeps alike.
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        with (
            open_store(d / "a.sqlite3", "OFF") as a,
            open_store(d / "b.sqlite3", "OFF") as b,
            open_store(d / "c.sqlite3", "OFF") as c,
        ):
            got_a = apply_in_batches(a, log, cuts)
            got_b = apply_in_batches(b, log, set())  # one batch
            assert got_a == got_b  # every outcome alike
            assert (a.digest, a.last_index) == (b.digest, b.last_index)
            assert a.last_index == len(log)
            want = everything(a)
            assert everything(b) == want
            # a snapshot after `split` entries, installed in a fresh store,
            # then the rest
            apply_in_batches(c, log[:split], set())
            c.snapshot_to(d / "snap.sqlite3")
            with open_store(d / "d.sqlite3", "OFF") as snap:
                snap.install_snapshot(d / "snap.sqlite3", ())
                apply_in_batches(snap, log[split:], set())
                assert everything(snap) == want
        # reopened from its file, a store is where it was
        with open_store(d / "a.sqlite3", "OFF") as again:
            assert (again.digest, again.last_index) == (want["digest"], want["last_index"])
            assert everything(again) == want
