"""What may change a room: the apply rules of the entries CreateRoom,
RoomMember and DeleteRoom, and what deleting an account does to the rooms.

From the entry that raised the cluster's protocol to 3 (`rules` below: the
cluster's version, replicated state like the rest) three rules change.
Invitations wait outside the invitee's room quota (`max_rooms` counts the
rooms a user joined; a JOIN over it is refused), and a user holds at most
`max_invitations` of them: a new one drops the oldest (an invited member's
`since_id` is the invitation's time then), so no number of invitations
keeps a user from being invited, creating or joining. An admin may delete
a room, and a room nobody has joined any more (the last member left, was
removed or deleted their account) goes away: its members and invitations,
its messages, read markers and delivery marks, and its name is free again.
An invited user may decline (DECLINE) without having joined. Before 3 a
user's invitations count toward `max_rooms` and an empty room stays, as
nodes of protocol 2 apply it.

Like every family of apply (the kinds in chatd.server.storage.apply), every
rule here reads only the entry and the state before it; the master's limits
come in the entry. Each rule runs inside an entry's savepoint and returns
(code, the cache change of chatd.server.storage.rooms to make once the
entry's SQL held); the kinds' functions at the end put that change in
`Applied.after`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatd.contract import Code
from chatd.proto import log_pb2
from chatd.server.storage import edits
from chatd.server.storage.rooms import RULES_3, Change, Db, Member, Room, Rooms
from chatd.server.storage.rows import Applied
from chatd.server.storage.tables import Tables

Action = log_pb2.RoomMember.Action


def _delete(rooms: Rooms, db: Db, room: Room) -> Callable[[], None]:
    """Deletes the room and everything of it; the cache change."""
    edits.forget_conversation(db, room.conv)
    for sql in (
        "DELETE FROM messages WHERE conv = ?",
        "DELETE FROM read_markers WHERE conv = ?",
    ):
        db.execute(sql, (room.conv,))
    for sql in (
        "DELETE FROM room_members WHERE room_id = ?",
        "DELETE FROM room_delivered WHERE room_id = ?",
        "DELETE FROM rooms WHERE id = ?",
    ):
        db.execute(sql, (room.id,))
    return lambda: rooms.forget(room)


def _remove_member(rooms: Rooms, db: Db, room: Room, uid: int) -> Callable[[], None]:
    db.execute("DELETE FROM room_members WHERE room_id = ? AND uid = ?", (room.id, uid))
    db.execute("DELETE FROM read_markers WHERE uid = ? AND conv = ?", (uid, room.conv))
    db.execute("DELETE FROM room_delivered WHERE uid = ? AND room_id = ?", (uid, room.id))
    return lambda: rooms.drop(room, uid)


def _without(rooms: Rooms, db: Db, room: Room, uid: int, rules: int) -> Callable[[], None]:
    """The user leaves the room (is removed, declines); under the rules
    of 3 a room nobody else joined goes with them."""
    if rules >= RULES_3 and _nobody_else_joined(room, uid):
        return _delete(rooms, db, room)
    return _remove_member(rooms, db, room, uid)


def apply_user_gone(rooms: Rooms, db: Db, uid: int, rules: int) -> Change:
    """An account is deleted: under the rules of 3, each room of the
    user's that nobody else joined goes (its rows of the user's other
    rooms the store deletes itself)."""
    if rules < RULES_3:
        return None
    changes = [
        _delete(rooms, db, room)
        for room in (rooms.by_id[rid] for rid in sorted(rooms.of_user.get(uid, ())))
        if _nobody_else_joined(room, uid)
    ]

    def cache() -> None:
        for change in changes:
            change()

    return cache


def apply_delete(
    rooms: Rooms, db: Db, op: log_pb2.DeleteRoom, actor_uid: int
) -> tuple[Code, Change]:
    """An admin who joined deletes the room."""
    room = rooms.find(op.room)
    if room is None:
        return Code.NO_SUCH_ROOM, None
    actor = room.members.get(actor_uid)
    if actor is None or not actor.joined:
        return Code.NOT_A_MEMBER, None
    if not actor.admin:
        return Code.NOT_ALLOWED, None
    return Code.OK, _delete(rooms, db, room)


def apply_create(
    rooms: Rooms,
    db: Db,
    op: log_pb2.CreateRoom,
    creator_uid: int,
    time_us: int,
    last_id: int,
    rules: int,
) -> tuple[Code, Change]:
    """`op.creator` is the creator's account name (its uid `creator_uid`)."""
    if rooms.find(op.name) is not None:
        return Code.ROOM_NAME_TAKEN, None
    if op.max_rooms and rooms.count_of(creator_uid, rules) >= op.max_rooms:
        return Code.ROOM_LIMIT, None
    cur = db.execute(
        "INSERT INTO rooms(name, topic, creator_uid, created_us) VALUES (?, ?, ?, ?)",
        (op.name, op.topic, creator_uid, time_us),
    )
    rid = int(cur.lastrowid or 0)  # type: ignore[attr-defined]
    member = Member(creator_uid, op.creator, joined=True, admin=True, since_id=last_id)
    _insert_member(db, rid, member)

    def cache() -> None:
        room = Room(rid, op.name, op.topic, creator_uid, op.creator)
        rooms.add_room(room)
        rooms.put(room, member)

    return Code.OK, cache


def apply_member(
    rooms: Rooms,
    db: Db,
    op: log_pb2.RoomMember,
    actor_uid: int,
    target_uid: int | None,
    last_id: int,
    time_us: int,
    rules: int,
) -> tuple[Code, Change]:
    """`target_uid`: the uid of the account `op.username` names (None: no
    such user)."""
    room = rooms.find(op.room)
    if room is None:
        return Code.NO_SUCH_ROOM, None
    actor = room.members.get(actor_uid)
    if target_uid is None:
        return Code.NO_SUCH_USER, None
    target = room.members.get(target_uid)
    action = op.action
    if action in (Action.INVITE, Action.REMOVE, Action.ADMIN):
        if actor is None or not actor.joined:
            return Code.NOT_A_MEMBER, None
        allowed = actor.admin if action != Action.ADMIN else actor_uid == room.creator_uid
        if not allowed:
            return Code.NOT_ALLOWED, None
    elif actor_uid != target_uid:  # JOIN, LEAVE and DECLINE are one's own
        return Code.NOT_ALLOWED, None
    if action == Action.INVITE:
        return _invite(rooms, db, op, room, target, target_uid, time_us, rules)
    if action == Action.JOIN:
        if target is None:
            return Code.NOT_A_MEMBER, None
        if target.joined:
            return Code.OK, None
        over = op.max_rooms and rooms.count_of(target_uid, rules) >= op.max_rooms
        if rules >= RULES_3 and over:
            return Code.ROOM_LIMIT, None
        db.execute(
            "UPDATE room_members SET joined = 1, since_id = ? WHERE room_id = ? AND uid = ?",
            (last_id, room.id, target_uid),
        )

        def joined() -> None:
            target.joined, target.since_id = True, last_id

        return Code.OK, joined
    if action in (Action.LEAVE, Action.REMOVE, Action.DECLINE):
        if target is None:
            return Code.NOT_A_MEMBER, None
        if action == Action.REMOVE and target_uid == room.creator_uid:
            return Code.NOT_ALLOWED, None
        if action == Action.DECLINE and target.joined:  # (one who joined leaves)
            return Code.NOT_ALLOWED, None
        return Code.OK, _without(rooms, db, room, target_uid, rules)
    if action == Action.ADMIN:
        if target is None or not target.joined:
            return Code.NOT_A_MEMBER, None
        db.execute(
            "UPDATE room_members SET admin = 1 WHERE room_id = ? AND uid = ?",
            (room.id, target_uid),
        )

        def admin() -> None:
            target.admin = True

        return Code.OK, admin
    return Code.INVALID_ARGUMENT, None


def _invite(
    rooms: Rooms,
    db: Db,
    op: log_pb2.RoomMember,
    room: Room,
    target: Member | None,
    target_uid: int,
    time_us: int,
    rules: int,
) -> tuple[Code, Change]:
    if target is not None:
        return Code.OK, None  # invited or joined already
    if op.max_members and len(room.members) >= op.max_members:
        return Code.ROOM_LIMIT, None
    if rules < RULES_3:
        if op.max_rooms and rooms.count_of(target_uid, rules) >= op.max_rooms:
            return Code.ROOM_LIMIT, None
        time_us = 0
    changes: list[Callable[[], None]] = []
    if op.max_invitations:
        pending = rooms.invitations_of(target_uid)
        for old in pending[: max(0, len(pending) - op.max_invitations + 1)]:
            changes.append(_without(rooms, db, old, target_uid, rules))
    member = Member(target_uid, op.username, joined=False, admin=False, since_id=time_us)
    _insert_member(db, room.id, member)

    def cache() -> None:
        for change in changes:
            change()
        rooms.put(room, member)

    return Code.OK, cache


def apply_message_to(rooms: Rooms, name: str, sender_uid: int) -> tuple[Code, Room | None]:
    """The room a message goes to, if its sender joined it."""
    room = rooms.find(name)
    if room is None:
        return Code.NO_SUCH_ROOM, None
    member = room.members.get(sender_uid)
    if member is None or not member.joined:
        return Code.NOT_A_MEMBER, None
    return Code.OK, room


def _insert_member(db: Db, room_id: int, m: Member) -> None:
    db.execute(
        "INSERT INTO room_members(room_id, uid, joined, admin, since_id) VALUES (?, ?, ?, ?, ?)",
        (room_id, m.uid, int(m.joined), int(m.admin), m.since_id),
    )


def _nobody_else_joined(room: Room, uid: int) -> bool:
    return not any(m.joined for m in room.members.values() if m.uid != uid)


# -- the entry kinds --


def _changed(out: Applied, result: tuple[Code, Any]) -> Applied:
    """A room apply function's (code, change) into `out`: its code, and the
    change readers hear of once the batch is durable (None: nothing)."""
    out.code, change = result
    if change is not None:
        out.after.append(change)
    return out


def apply_create_room(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.create_room
    if (creator := t.directory.known(out, op.creator, Code.NOT_LOGGED_IN)) is None:
        return out
    last, rules = t.last_message_id, t.cluster_version
    return _changed(out, apply_create(t.rooms, t.db, op, creator.uid, entry.time_us, last, rules))


def apply_room_member(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.room_member
    if (actor := t.directory.known(out, op.actor, Code.NOT_LOGGED_IN)) is None:
        return out
    target = t.directory.users.get(op.username)
    target_uid = target.uid if target else None
    last, time_us, rules = t.last_message_id, entry.time_us, t.cluster_version
    return _changed(
        out, apply_member(t.rooms, t.db, op, actor.uid, target_uid, last, time_us, rules)
    )


def apply_delete_room(t: Tables, out: Applied, entry: log_pb2.Entry) -> Applied:
    op = entry.delete_room
    if (actor := t.directory.known(out, op.actor, Code.NOT_LOGGED_IN)) is None:
        return out
    return _changed(out, apply_delete(t.rooms, t.db, op, actor.uid))


APPLY: dict[str, Callable[[Tables, Applied, log_pb2.Entry], Applied]] = {
    "create_room": apply_create_room,
    "room_member": apply_room_member,
    "delete_room": apply_delete_room,
}
