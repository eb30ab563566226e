"""Rooms as replicated state (chatd/server/storage/rooms.py through the store's
apply): who may create, invite, join, post, leave and remove, what a room
message reaches, read markers; the caches follow the tables (a reopened
store and a store that applied the same entries agree), and the state
digest covers the new tables. Real SQLite files in temp directories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage import statedigest
from chatd.server.storage.store import Applied, Store

E = log_pb2.Entry
A = log_pb2.RoomMember.Action


class World:
    """A store and a way to apply entries one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = Store(path)
        self.t = 0

    def apply(self, entry: E) -> Applied:
        self.t += 1
        entry.time_us = self.t
        self.store.begin()
        out = self.store.append(entry, entry.SerializeToString(deterministic=True), 1)
        self.store.commit()
        return out

    def users(self, *names: str) -> None:
        for n in names:
            assert self.apply(E(create_account=log_pb2.CreateAccount(username=n))).code == 0

    def create(self, creator: str, name: str, topic: str = "", max_rooms: int = 0) -> Code:
        op = log_pb2.CreateRoom(creator=creator, name=name, topic=topic, max_rooms=max_rooms)
        return self.apply(E(create_room=op)).code

    def member(self, action: Any, actor: str, room: str, who: str, **limits: int) -> Code:
        op = log_pb2.RoomMember(action=action, actor=actor, room=room, username=who, **limits)
        return self.apply(E(room_member=op)).code

    def post(self, sender: str, room: str, body: str = "hi") -> Applied:
        return self.apply(E(send_message=log_pb2.SendMessage(sender=sender, room=room, body=body)))

    def members(self, room: str) -> dict[str, tuple[bool, bool]]:
        r = self.store.rooms.find(room)
        assert r is not None
        names = {u.uid: u.username for u in self.store.users.values()}
        return {names[m.uid]: (m.joined, m.admin) for m in r.members.values()}


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = World(tmp_path / "chatd.sqlite3")
    world.users("ann", "bob", "cat", "dan")
    return world


def test_the_creator_joins_as_admin_and_names_are_unique_in_any_case(w: World) -> None:
    assert w.create("ann", "team", "plans") == Code.OK
    assert w.members("team") == {"ann": (True, True)}
    assert w.create("bob", "TEAM") == Code.ROOM_NAME_TAKEN
    assert w.create("nobody", "other") == Code.NOT_LOGGED_IN
    room = w.store.rooms.find("Team")
    assert room is not None and (room.name, room.topic) == ("team", "plans")


def test_invite_join_post_and_who_the_message_reaches(w: World) -> None:
    w.create("ann", "team")
    assert w.member(A.INVITE, "bob", "team", "cat") == Code.NOT_A_MEMBER  # bob is not in it
    assert w.member(A.INVITE, "ann", "team", "bob") == Code.OK
    assert w.member(A.INVITE, "ann", "team", "cat") == Code.OK
    assert w.member(A.INVITE, "ann", "team", "nobody") == Code.NO_SUCH_USER
    assert w.member(A.INVITE, "bob", "team", "dan") == Code.NOT_A_MEMBER  # invited, not joined
    assert w.post("bob", "team").code == Code.NOT_A_MEMBER
    assert w.member(A.JOIN, "bob", "team", "bob") == Code.OK
    assert w.member(A.JOIN, "dan", "team", "dan") == Code.NOT_A_MEMBER  # never invited
    assert w.member(A.JOIN, "bob", "team", "cat") == Code.NOT_ALLOWED  # one joins oneself
    assert w.member(A.INVITE, "bob", "team", "dan") == Code.NOT_ALLOWED  # not an admin
    out = w.post("bob", "team", "hello all")
    assert out.code == Code.OK and out.new_message is not None
    assert (out.new_message.room, out.new_message.recipient) == ("team", "team")
    assert sorted(out.room_recipients or []) == ["ann", "bob"]  # cat only invited
    assert w.post("bob", "nowhere").code == Code.NO_SUCH_ROOM
    # a room message is in no one's undelivered inbox
    undelivered = w.store.db.execute("SELECT count(*) FROM messages WHERE delivered = 0")
    assert undelivered.fetchone()[0] == 0


def test_removal_and_leaving_take_effect_at_once(w: World) -> None:
    w.create("ann", "team")
    for who in ("bob", "cat"):
        w.member(A.INVITE, "ann", "team", who)
        w.member(A.JOIN, who, "team", who)
    assert w.member(A.ADMIN, "bob", "team", "cat") == Code.NOT_ALLOWED  # the creator names admins
    assert w.member(A.ADMIN, "ann", "team", "bob") == Code.OK
    assert w.member(A.REMOVE, "bob", "team", "cat") == Code.OK  # an admin removes
    assert w.post("cat", "team").code == Code.NOT_A_MEMBER
    assert sorted(w.post("ann", "team").room_recipients or []) == ["ann", "bob"]
    assert w.member(A.REMOVE, "bob", "team", "ann") == Code.NOT_ALLOWED  # never the creator
    assert w.member(A.LEAVE, "bob", "team", "bob") == Code.OK
    assert w.members("team") == {"ann": (True, True)}
    assert w.member(A.LEAVE, "bob", "team", "bob") == Code.NOT_A_MEMBER


def test_limits_come_in_the_entry(w: World) -> None:
    assert w.create("ann", "one", max_rooms=1) == Code.OK
    assert w.create("ann", "two", max_rooms=1) == Code.ROOM_LIMIT
    w.member(A.INVITE, "ann", "one", "bob", max_members=2)
    assert w.member(A.INVITE, "ann", "one", "cat", max_members=2) == Code.ROOM_LIMIT
    assert w.create("cat", "three") == Code.OK
    assert w.member(A.INVITE, "cat", "three", "bob", max_rooms=1) == Code.ROOM_LIMIT


def test_read_markers_only_move_forward(w: World) -> None:
    w.create("ann", "team")
    for upto in (5, 3, 9):
        mark = log_pb2.MarkRead(username="ann", room="team", upto=upto)
        assert w.apply(E(mark_read=mark)).code == Code.OK
    row = w.store.db.execute("SELECT upto FROM read_markers").fetchall()
    assert row == [(9,)]
    outside = log_pb2.MarkRead(username="bob", room="team", upto=1)
    assert w.apply(E(mark_read=outside)).code == Code.NOT_A_MEMBER
    peer = log_pb2.MarkRead(username="bob", peer="ann", upto=4)
    assert w.apply(E(mark_read=peer)).code == Code.OK


def test_a_deleted_account_leaves_its_rooms(w: World) -> None:
    w.create("ann", "team")
    w.member(A.INVITE, "ann", "team", "bob")
    w.member(A.JOIN, "bob", "team", "bob")
    assert w.apply(E(delete_account=log_pb2.DeleteAccount(username="bob"))).code == Code.OK
    assert w.members("team") == {"ann": (True, True)}
    assert w.store.rooms.count_of(2, w.store.cluster_version) == 0


def test_the_caches_follow_the_tables_and_the_digest_covers_them(w: World) -> None:
    w.create("ann", "team", "plans")
    w.member(A.INVITE, "ann", "team", "bob")
    w.member(A.JOIN, "bob", "team", "bob")
    w.member(A.INVITE, "ann", "team", "cat")
    w.member(A.ADMIN, "ann", "team", "bob")
    before = w.members("team")
    digest = w.store.state_digest
    assert digest == statedigest.to_bytes(statedigest.scan(w.store.db))
    rows = w.store.db.execute("SELECT count(*) FROM room_members").fetchone()[0]
    assert rows == 3 and statedigest.NODE_LOCAL_TABLES.isdisjoint({"rooms", "room_members"})
    w.store.close()
    again = World(w.path)
    assert (
        again.members("team")
        == before
        == {
            "ann": (True, True),
            "bob": (True, True),
            "cat": (False, False),
        }
    )
    assert again.store.state_digest == digest
    again.store.close()


def test_a_reopened_store_joins_as_one_that_never_closed(w: World) -> None:
    """A join records the newest message id assigned so far; when the newest
    message was deleted (with its recipient's account), a reopened store must
    still count it, as a store that never closed does."""
    w.create("ann", "team")
    w.member(A.INVITE, "ann", "team", "bob")
    w.apply(E(send_message=log_pb2.SendMessage(sender="ann", recipient="dan", body="x")))
    w.apply(E(delete_account=log_pb2.DeleteAccount(username="dan")))
    assert w.store.last_message_id == 1
    w.store.close()
    again = World(w.path)
    assert again.store.last_message_id == 1
    again.member(A.JOIN, "bob", "team", "bob")
    room = again.store.rooms.find("team")
    assert room is not None and [m.since_id for m in room.members.values()] == [0, 1]
    again.store.close()


@pytest.fixture
def w3(w: World) -> World:
    """A store whose cluster speaks protocol 3 (its room rules)."""
    assert w.apply(E(set_cluster_version=log_pb2.SetClusterVersion(version=3))).code == Code.OK
    return w


def test_protocol_2_keeps_its_rules(w: World) -> None:
    """Before the cluster speaks 3, invitations count toward the quota and an
    empty room stays (as a node of protocol 2 applies the same log)."""
    assert w.store.cluster_version < 3
    w.create("ann", "one")
    assert w.member(A.INVITE, "ann", "one", "bob", max_rooms=1) == Code.OK
    assert w.create("bob", "two", max_rooms=1) == Code.ROOM_LIMIT
    assert w.member(A.LEAVE, "ann", "one", "ann") == Code.OK
    assert w.store.rooms.find("one") is not None


def test_invitations_wait_outside_the_quota_and_the_oldest_goes(w3: World) -> None:
    w = w3
    for name in ("a", "b", "c"):
        w.create("ann", name)
        assert w.member(A.INVITE, "ann", name, "bob", max_rooms=1, max_invitations=2) == Code.OK
    # at most two held: "a"'s, the oldest, went
    assert [r.name for r in w.store.rooms.invitations_of(2)] == ["b", "c"]
    assert w.create("bob", "own", max_rooms=1) == Code.OK  # invitations do not count
    assert w.member(A.JOIN, "bob", "b", "bob", max_rooms=1) == Code.ROOM_LIMIT
    assert w.member(A.DECLINE, "bob", "own", "bob") == Code.NOT_ALLOWED  # joined: leave
    assert w.member(A.DECLINE, "bob", "a", "bob") == Code.NOT_A_MEMBER
    assert w.member(A.DECLINE, "bob", "b", "bob") == Code.OK
    assert w.members("b") == {"ann": (True, True)}


def test_deleted_rooms_leave_nothing_and_the_digest_follows(w3: World) -> None:
    """DeleteRoom by an admin, a room whose last member left, one whose last
    member's account went: no row of them is left, the name is free, and
    the running state digest equals a scan of the tables, as after a reopen."""
    w = w3
    w.create("ann", "team")
    w.member(A.INVITE, "ann", "team", "bob")
    w.member(A.JOIN, "bob", "team", "bob")
    w.member(A.INVITE, "ann", "team", "cat")
    w.post("bob", "team")
    w.apply(E(mark_read=log_pb2.MarkRead(username="bob", room="team", upto=1)))
    out = w.apply(E(delete_room=log_pb2.DeleteRoom(actor="bob", room="team")))
    assert out.code == Code.NOT_ALLOWED  # not an admin
    assert w.apply(E(delete_room=log_pb2.DeleteRoom(actor="ann", room="team"))).code == Code.OK
    w.create("dan", "alone")
    w.member(A.LEAVE, "dan", "alone", "dan")
    w.create("cat", "gone")
    w.apply(E(delete_account=log_pb2.DeleteAccount(username="cat")))
    db = w.store.db
    for table in ("rooms", "room_members", "room_delivered", "read_markers"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert w.store.rooms.by_id == {} and w.store.rooms.of_user == {}
    assert w.create("bob", "TEAM") == Code.OK
    digest = w.store.state_digest
    assert digest == statedigest.to_bytes(statedigest.scan(db))
    w.store.close()
    again = World(w.path)
    assert again.store.state_digest == digest and again.members("team") == {"bob": (True, True)}
    again.store.close()
