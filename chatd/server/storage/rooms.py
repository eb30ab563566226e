"""Rooms as replicated state: the `rooms` and `room_members` tables and
their cache (`Rooms`).

A room has a name (the username alphabet; unique regardless of case, like
usernames), a topic and members. A member is invited (by an admin), then
joins; the creator joins at once as the first admin and may name more
admins among those who joined. Admins invite and remove (never the
creator); a member leaves (an invited user declines the same way). A room
message is stored once in `messages` (recipient: the room's name; `conv`:
the room's negative id; never in the per-message undelivered flag) and
reaches the members who joined, each from the message after the one that
was the last when they joined (`since_id`).

What may change a room, and how the rules changed with the cluster's
protocol 3, is chatd.server.storage.room_rules; how far each member's room
messages were handed out, and the read markers, chatd.server.storage.delivery.
The cache changes only after an entry's SQL held (`Applied.after`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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
"""

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
            self.add_room(Room(rid, name, topic, creator_uid, creator))
        for rid, uid, name, joined, admin, since in db.execute(  # type: ignore[attr-defined]
            "SELECT m.room_id, m.uid, u.username, m.joined, m.admin, m.since_id "
            "FROM room_members m JOIN users u ON u.uid = m.uid"
        ):
            self.put(self.by_id[rid], Member(uid, name, bool(joined), bool(admin), since))

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

    def add_room(self, room: Room) -> None:
        self.by_id[room.id] = room
        self.by_fold[room.name.casefold()] = room.id

    def put(self, room: Room, member: Member) -> None:
        room.members[member.uid] = member
        self.of_user.setdefault(member.uid, set()).add(room.id)

    def drop(self, room: Room, uid: int) -> None:
        room.members.pop(uid, None)
        rooms = self.of_user.get(uid)
        if rooms is not None:
            rooms.discard(room.id)
            if not rooms:
                del self.of_user[uid]

    def drop_user(self, uid: int) -> None:
        for rid in list(self.of_user.get(uid, ())):
            self.drop(self.by_id[rid], uid)

    def forget(self, room: Room) -> None:
        for uid in list(room.members):
            self.drop(room, uid)
        self.by_id.pop(room.id, None)
        self.by_fold.pop(room.name.casefold(), None)
