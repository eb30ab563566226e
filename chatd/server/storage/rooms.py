"""Rooms as replicated state: their tables, caches and apply rules.

A room has a name (the username alphabet; unique regardless of case, like
usernames), a topic and members. A member is invited (by an admin), then
joins; the creator joins at once as the first admin and may name more
admins among those who joined. Admins invite and remove (never the
creator); a member leaves (an invited user declines the same way). A room
message is stored once in `messages` (recipient: the room's name; `conv`:
the room's negative id; never in the per-message undelivered flag) and
reaches the members who joined, each from the message after the one that
was the last when they joined (`since_id`); for a member who was not
connected, GetMessages hands them out as it does messages to the user, and
`room_delivered` records how far (acknowledgements move it too). Read
markers record, per user and conversation (a peer or a room), the message
id read up to.

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

Like the rest of apply (chatd.server.storage.store), every rule here reads only the
entry and the state before it; the master's limits come in the entry. The
store calls `apply_*` inside an entry's savepoint; each returns the cache
change to make once the entry's SQL held (`Applied.after`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatd.contract import Code
from chatd.proto import log_pb2

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    topic TEXT NOT NULL,
    creator_uid INTEGER NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS rooms_name ON rooms(name);
CREATE TABLE IF NOT EXISTS room_members (
    room_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    joined INTEGER NOT NULL,
    admin INTEGER NOT NULL,
    since_id INTEGER NOT NULL,
    PRIMARY KEY (room_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS room_members_uid ON room_members(uid, room_id);
CREATE TABLE IF NOT EXISTS room_delivered (
    uid INTEGER NOT NULL,
    room_id INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    PRIMARY KEY (uid, room_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_markers (
    uid INTEGER NOT NULL,
    conv INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    PRIMARY KEY (uid, conv)
) WITHOUT ROWID;
"""

Action = log_pb2.RoomMember.Action
RULES_3 = 3  # the cluster version from which the rules of protocol 3 hold
Change = Callable[[], None] | None


class Db(Protocol):
    def execute(self, sql: str, parameters: tuple[object, ...] = ..., /) -> object: ...


@dataclass(slots=True)
class Member:
    uid: int
    name: str  # the user's name (a deleted user leaves every room)
    joined: bool
    admin: bool
    # joined: room messages after this one reach the member; invited: the
    # invitation's time (microseconds; 0 before the rules of protocol 3)
    since_id: int


@dataclass(slots=True)
class Room:
    id: int
    name: str
    topic: str
    creator_uid: int
    creator: str  # the creator's name (kept if the account is deleted)
    members: dict[int, Member] = field(default_factory=dict)

    @property
    def conv(self) -> int:
        """The room's conversation key in `messages` (a peer pair's is positive)."""
        return -self.id

    def joined_names(self) -> list[str]:
        return [m.name for m in self.members.values() if m.joined]


class Rooms:
    """The rooms and their members, in memory (loaded from the tables,
    changed only after an entry's SQL held)."""

    def __init__(self) -> None:
        self.by_id: dict[int, Room] = {}
        self.by_fold: dict[str, int] = {}  # casefold of a name -> room id
        self.of_user: dict[int, set[int]] = {}  # uid -> ids of the rooms they are in

    def clear(self) -> None:
        self.by_id.clear()
        self.by_fold.clear()
        self.of_user.clear()

    def load(self, db: Db) -> None:
        self.clear()
        for rid, name, topic, creator_uid, creator in db.execute(  # type: ignore[attr-defined]
            "SELECT r.id, r.name, r.topic, r.creator_uid, coalesce(u.username, '') "
            "FROM rooms r LEFT JOIN users u ON u.uid = r.creator_uid"
        ):
            self._add_room(Room(rid, name, topic, creator_uid, creator))
        for rid, uid, name, joined, admin, since in db.execute(  # type: ignore[attr-defined]
            "SELECT m.room_id, m.uid, u.username, m.joined, m.admin, m.since_id "
            "FROM room_members m JOIN users u ON u.uid = m.uid"
        ):
            self._put(self.by_id[rid], Member(uid, name, bool(joined), bool(admin), since))

    def find(self, name: str) -> Room | None:
        """The room `name` names, in any case."""
        rid = self.by_fold.get(name.casefold())
        return None if rid is None else self.by_id[rid]

    def count_of(self, uid: int, rules: int) -> int:
        """What counts toward the user's room quota: the rooms they joined
        (before the rules of 3: and those they are invited to)."""
        rooms = self.of_user.get(uid, ())
        if rules < RULES_3:
            return len(rooms)
        return sum(1 for rid in rooms if self.by_id[rid].members[uid].joined)

    def invitations_of(self, uid: int) -> list[Room]:
        """The rooms the user is invited to and has not joined, oldest
        invitation first."""
        rooms = [self.by_id[rid] for rid in self.of_user.get(uid, ())]
        pending = [r for r in rooms if not r.members[uid].joined]
        return sorted(pending, key=lambda r: (r.members[uid].since_id, r.id))

    def _add_room(self, room: Room) -> None:
        self.by_id[room.id] = room
        self.by_fold[room.name.casefold()] = room.id

    def _put(self, room: Room, member: Member) -> None:
        room.members[member.uid] = member
        self.of_user.setdefault(member.uid, set()).add(room.id)

    def _drop(self, room: Room, uid: int) -> None:
        room.members.pop(uid, None)
        rooms = self.of_user.get(uid)
        if rooms is not None:
            rooms.discard(room.id)
            if not rooms:
                del self.of_user[uid]

    def drop_user(self, uid: int) -> None:
        for rid in list(self.of_user.get(uid, ())):
            self._drop(self.by_id[rid], uid)

    def _forget(self, room: Room) -> None:
        for uid in list(room.members):
            self._drop(room, uid)
        self.by_id.pop(room.id, None)
        self.by_fold.pop(room.name.casefold(), None)

    def _delete(self, db: Db, room: Room) -> Callable[[], None]:
        """Deletes the room and everything of it; the cache change."""
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
        return lambda: self._forget(room)

    def _remove_member(self, db: Db, room: Room, uid: int) -> Callable[[], None]:
        db.execute("DELETE FROM room_members WHERE room_id = ? AND uid = ?", (room.id, uid))
        db.execute("DELETE FROM read_markers WHERE uid = ? AND conv = ?", (uid, room.conv))
        db.execute("DELETE FROM room_delivered WHERE uid = ? AND room_id = ?", (uid, room.id))
        return lambda: self._drop(room, uid)

    def _without(self, db: Db, room: Room, uid: int, rules: int) -> Callable[[], None]:
        """The user leaves the room (is removed, declines); under the rules
        of 3 a room nobody else joined goes with them."""
        if rules >= RULES_3 and _nobody_else_joined(room, uid):
            return self._delete(db, room)
        return self._remove_member(db, room, uid)

    def apply_user_gone(self, db: Db, uid: int, rules: int) -> Change:
        """An account is deleted: under the rules of 3, each room of the
        user's that nobody else joined goes (its rows of the user's other
        rooms the store deletes itself)."""
        if rules < RULES_3:
            return None
        changes = [
            self._delete(db, room)
            for room in (self.by_id[rid] for rid in sorted(self.of_user.get(uid, ())))
            if _nobody_else_joined(room, uid)
        ]

        def cache() -> None:
            for change in changes:
                change()

        return cache

    def apply_delete(self, db: Db, op: log_pb2.DeleteRoom, actor_uid: int) -> tuple[Code, Change]:
        """An admin who joined deletes the room."""
        room = self.find(op.room)
        if room is None:
            return Code.NO_SUCH_ROOM, None
        actor = room.members.get(actor_uid)
        if actor is None or not actor.joined:
            return Code.NOT_A_MEMBER, None
        if not actor.admin:
            return Code.NOT_ALLOWED, None
        return Code.OK, self._delete(db, room)

    # -- apply: each returns (code, the cache change to make once the SQL held) --

    def apply_create(
        self,
        db: Db,
        op: log_pb2.CreateRoom,
        creator_uid: int,
        time_us: int,
        last_id: int,
        rules: int,
    ) -> tuple[Code, Change]:
        """`op.creator` is the creator's account name (its uid `creator_uid`)."""
        if self.find(op.name) is not None:
            return Code.ROOM_NAME_TAKEN, None
        if op.max_rooms and self.count_of(creator_uid, rules) >= op.max_rooms:
            return Code.ROOM_LIMIT, None
        cur = db.execute(
            "INSERT INTO rooms(name, topic, creator_uid, created_us) VALUES (?, ?, ?, ?)",
            (op.name, op.topic, creator_uid, time_us),
        )
        rid = int(cur.lastrowid or 0)  # type: ignore[attr-defined]
        member = Member(creator_uid, op.creator, joined=True, admin=True, since_id=last_id)
        self._insert_member(db, rid, member)

        def cache() -> None:
            room = Room(rid, op.name, op.topic, creator_uid, op.creator)
            self._add_room(room)
            self._put(room, member)

        return Code.OK, cache

    def apply_member(
        self,
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
        room = self.find(op.room)
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
            return self._invite(db, op, room, target, target_uid, time_us, rules)
        if action == Action.JOIN:
            if target is None:
                return Code.NOT_A_MEMBER, None
            if target.joined:
                return Code.OK, None
            over = op.max_rooms and self.count_of(target_uid, rules) >= op.max_rooms
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
            return Code.OK, self._without(db, room, target_uid, rules)
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
        self,
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
            if op.max_rooms and self.count_of(target_uid, rules) >= op.max_rooms:
                return Code.ROOM_LIMIT, None
            time_us = 0
        changes: list[Callable[[], None]] = []
        if op.max_invitations:
            pending = self.invitations_of(target_uid)
            for old in pending[: max(0, len(pending) - op.max_invitations + 1)]:
                changes.append(self._without(db, old, target_uid, rules))
        member = Member(target_uid, op.username, joined=False, admin=False, since_id=time_us)
        self._insert_member(db, room.id, member)

        def cache() -> None:
            for change in changes:
                change()
            self._put(room, member)

        return Code.OK, cache

    def apply_message_to(self, name: str, sender_uid: int) -> tuple[Code, Room | None]:
        """The room a message goes to, if its sender joined it."""
        room = self.find(name)
        if room is None:
            return Code.NO_SUCH_ROOM, None
        member = room.members.get(sender_uid)
        if member is None or not member.joined:
            return Code.NOT_A_MEMBER, None
        return Code.OK, room

    def _insert_member(self, db: Db, room_id: int, m: Member) -> None:
        db.execute(
            "INSERT INTO room_members(room_id, uid, joined, admin, since_id) "
            "VALUES (?, ?, ?, ?, ?)",
            (room_id, m.uid, int(m.joined), int(m.admin), m.since_id),
        )


def _nobody_else_joined(room: Room, uid: int) -> bool:
    return not any(m.joined for m in room.members.values() if m.uid != uid)


def apply_mark_read(db: Db, uid: int, conv: int, upto: int) -> None:
    """Moves the user's read marker of a conversation forward to `upto`."""
    db.execute(
        "INSERT INTO read_markers(uid, conv, upto) VALUES (?, ?, ?) "
        "ON CONFLICT(uid, conv) DO UPDATE SET upto = max(upto, excluded.upto)",
        (uid, conv, upto),
    )


# A member's room messages not yet handed out: after the join and after
# what GetMessages or an acknowledgement already delivered, and not the
# member's own (it has those).
_UNDELIVERED = (
    "FROM room_members r JOIN messages m ON m.conv = -r.room_id "
    "AND m.id > max(r.since_id, coalesce((SELECT upto FROM room_delivered d "
    "WHERE d.uid = r.uid AND d.room_id = r.room_id), 0)) AND m.sender_uid != r.uid "
    "WHERE r.uid = ? AND r.joined = 1"
)


def undelivered(db: Db, uid: int, limit: int) -> list[tuple[Any, ...]]:
    """Up to `limit` of the member's undelivered room messages, oldest first:
    (id, sender, recipient, body, time_us, conv) rows."""
    rows: list[tuple[Any, ...]] = db.execute(  # type: ignore[attr-defined]
        f"SELECT m.id, m.sender, m.recipient, m.body, m.time_us, m.conv {_UNDELIVERED} "
        "ORDER BY m.id LIMIT ?",
        (uid, limit),
    ).fetchall()
    return rows


def undelivered_among(db: Db, uid: int, ids_json: str) -> list[tuple[int, int]]:
    """(id, room id) of those of the ids (a JSON list) that are the member's
    undelivered room messages."""
    rows = db.execute(  # type: ignore[attr-defined]
        f"SELECT m.id, r.room_id {_UNDELIVERED} "
        "AND m.id IN (SELECT value FROM json_each(?)) ORDER BY m.id",
        (uid, ids_json),
    ).fetchall()
    return [(int(a), int(b)) for a, b in rows]


def mark_delivered(db: Db, uid: int, upto: dict[int, int]) -> None:
    """The member's room messages are delivered up to upto[room id]."""
    for room_id, mid in sorted(upto.items()):
        db.execute(
            "INSERT INTO room_delivered(uid, room_id, upto) VALUES (?, ?, ?) "
            "ON CONFLICT(uid, room_id) DO UPDATE SET upto = max(upto, excluded.upto)",
            (uid, room_id, mid),
        )
