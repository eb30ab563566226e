"""The room operations of the client API, over Chat (chatd.server.chat.rules):
validation and limits here, the membership rules in the apply
(chatd.server.storage.room_rules), reads from the caches and the committed tables.

A room's name follows the username alphabet, unique regardless of case;
its topic is at most MAX_TOPIC_CHARS characters. A member who joined sees
the room's whole history and gets its messages from the join on; one who
left or was removed neither gets nor reads any more of them. Every write
has a rate per user (chatd.server.chat.room_rates); a MarkRead that would not
move the marker writes nothing.

Room names are not secret (CreateRoom's ROOM_NAME_TAKEN tells whether one
exists): a call about a room that does not exist answers NO_SUCH_ROOM, and
one about a room the caller is not in NOT_A_MEMBER, on every RPC alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chatd.contract import USERNAME_RE, Code
from chatd.proto import log_pb2
from chatd.server.chat.limits import (
    CHAT_PAGE_DEFAULT,
    CHAT_PAGE_MAX,
    GET_MESSAGES_MAX_BYTES,
    newest_within,
)
from chatd.server.chat.rules import Chat
from chatd.server.errors import RequestRefused
from chatd.server.storage.rooms import Room
from chatd.server.storage.store import StoredMessage, conversation_key

MAX_TOPIC_CHARS = 256

Action = log_pb2.RoomMember.Action


@dataclass(frozen=True, slots=True)
class RoomInfo:
    name: str
    topic: str
    creator: str
    members: int  # who joined
    unread: int
    joined: bool
    admin: bool


@dataclass(frozen=True, slots=True)
class UnreadInfo:
    peer: str
    count: int
    last_message_id: int


@dataclass(frozen=True, slots=True)
class MemberInfo:
    username: str
    online: bool
    joined: bool
    admin: bool


class RoomOps:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def _room(self, name: str) -> Room:
        return self.chat.room_named(name)

    def _user(self, name: str) -> str:
        """The live account's name (in its own case), or NO_SUCH_USER."""
        found = self.chat.find_user(name)
        if found is None:
            raise RequestRefused(Code.NO_SUCH_USER)
        return found

    def _rate(self, kind: str, uid: int) -> None:
        self.chat.room_rates.take(kind, uid, time.monotonic())

    async def create(self, session_id: str, name: str, topic: str) -> None:
        s = self.chat.session(session_id)
        if not USERNAME_RE.fullmatch(name):
            raise RequestRefused(Code.INVALID_ROOM, "a room name is 1 to 32 of A-Z a-z 0-9 _ . -")
        if len(topic) > MAX_TOPIC_CHARS:
            raise RequestRefused(
                Code.INVALID_ROOM, f"a topic is at most {MAX_TOPIC_CHARS} characters"
            )
        if self.chat.store.rooms.find(name) is not None:
            raise RequestRefused(Code.ROOM_NAME_TAKEN)
        self._rate("create", s.uid)
        op = log_pb2.CreateRoom(
            creator=s.username,
            name=name,
            topic=topic,
            max_rooms=self.chat.limits.max_rooms_per_user,
        )
        await self.chat._submit(log_pb2.Entry(create_room=op))

    async def _member(self, session_id: str, action: int, room: str, username: str | None) -> None:
        """`username`: whom the action is about (None: the caller)."""
        s = self.chat.session(session_id)
        r = self._room(room)
        who = s.username
        if username is not None:
            who = self._user(username)
        if action == Action.DECLINE:
            me = r.members.get(s.uid)
            if me is None:
                raise RequestRefused(Code.NOT_A_MEMBER, f"no invitation to {r.name}")
            if me.joined:
                raise RequestRefused(Code.NOT_ALLOWED, f"you joined {r.name}: leave it instead")
        self._rate("invite" if action == Action.INVITE else "write", s.uid)
        limits = self.chat.limits
        op = log_pb2.RoomMember(
            action=action,  # type: ignore[arg-type]
            actor=s.username,
            room=r.name,
            username=who,
            max_members=limits.max_room_members,
            max_rooms=limits.max_rooms_per_user,
            max_invitations=limits.max_invitations,
        )
        await self.chat._submit(log_pb2.Entry(room_member=op))

    async def invite(self, session_id: str, room: str, username: str) -> None:
        await self._member(session_id, Action.INVITE, room, username)

    async def remove(self, session_id: str, room: str, username: str) -> None:
        await self._member(session_id, Action.REMOVE, room, username)

    async def name_admin(self, session_id: str, room: str, username: str) -> None:
        await self._member(session_id, Action.ADMIN, room, username)

    async def join(self, session_id: str, room: str) -> None:
        await self._member(session_id, Action.JOIN, room, None)

    async def leave(self, session_id: str, room: str) -> None:
        await self._member(session_id, Action.LEAVE, room, None)

    async def decline(self, session_id: str, room: str) -> None:
        await self._member(session_id, Action.DECLINE, room, None)

    async def delete(self, session_id: str, room: str) -> None:
        s = self.chat.session(session_id)
        r = self._room(room)
        me = r.members.get(s.uid)
        if me is None or not me.joined:
            raise RequestRefused(Code.NOT_A_MEMBER)
        if not me.admin:
            raise RequestRefused(Code.NOT_ALLOWED)
        self._rate("write", s.uid)
        op = log_pb2.DeleteRoom(actor=s.username, room=r.name)
        await self.chat._submit(log_pb2.Entry(delete_room=op))

    async def list_rooms(self, session_id: str) -> list[RoomInfo]:
        chat = self.chat
        s = chat.session(session_id)
        rooms = [chat.store.rooms.by_id[rid] for rid in chat.store.rooms.of_user.get(s.uid, ())]
        joined = [(r.id, r.members[s.uid].since_id) for r in rooms if r.members[s.uid].joined]
        visible = chat.writer.visible_message_id
        counts = await chat._read(chat.store.unread_in_rooms, s.uid, joined, visible)
        unread = dict(zip((rid for rid, _ in joined), counts, strict=True))
        out = [
            RoomInfo(
                r.name,
                r.topic,
                r.creator,
                len(r.joined_names()),
                unread.get(r.id, 0),
                r.members[s.uid].joined,
                r.members[s.uid].admin,
            )
            for r in rooms
        ]
        return sorted(out, key=lambda i: i.name.casefold())

    def members(self, session_id: str, room: str) -> list[MemberInfo]:
        s = self.chat.session(session_id)
        r = self._room(room)
        if s.uid not in r.members:
            raise RequestRefused(Code.NOT_A_MEMBER)
        out = [
            MemberInfo(m.name, self.chat.hub.online(m.name), m.joined, m.admin)
            for m in r.members.values()
        ]
        return sorted(out, key=lambda m: m.username.casefold())

    async def history(
        self, session_id: str, room: str, before_id: int, limit: int
    ) -> list[StoredMessage]:
        chat = self.chat
        s = chat.session(session_id)
        if before_id < 0 or limit < 0:
            raise RequestRefused(Code.INVALID_ARGUMENT, "before_message_id and limit are >= 0")
        r = self._room(room)
        me = r.members.get(s.uid)
        if me is None or not me.joined:
            raise RequestRefused(Code.NOT_A_MEMBER)
        limit = min(limit or CHAT_PAGE_DEFAULT, CHAT_PAGE_MAX)
        visible = chat.writer.visible_message_id + 1
        before = min(before_id, visible) if before_id else visible
        page = await chat._read(chat.store.room_before, r.id, before, limit)
        if not page:
            raise RequestRefused(Code.NO_MESSAGES)
        return newest_within(page, GET_MESSAGES_MAX_BYTES)

    async def mark_read(self, session_id: str, peer: str, room: str, upto: int) -> None:
        s = self.chat.session(session_id)
        if upto < 0 or bool(peer) == bool(room):
            raise RequestRefused(Code.INVALID_ARGUMENT, "one of peer and room, and upto >= 0")
        store = self.chat.store
        if room:
            r = self._room(room)
            if s.uid not in r.members:
                raise RequestRefused(Code.NOT_A_MEMBER)
            op = log_pb2.MarkRead(username=s.username, room=r.name, upto=upto)
            conv = r.conv
        else:
            op = log_pb2.MarkRead(username=s.username, peer=self._user(peer), upto=upto)
            conv = conversation_key(s.uid, store.users[op.peer].uid)
        if await self.chat._read(store.read_marker, s.uid, conv) >= upto:
            return  # the marker is there already: nothing to write
        self._rate("write", s.uid)
        await self.chat._submit(log_pb2.Entry(mark_read=op))

    async def unread(self, session_id: str) -> list[UnreadInfo]:
        """The one-to-one conversations with messages to me after my read
        marker there, the newest first."""
        chat = self.chat
        s = chat.session(session_id)
        visible = chat.writer.visible_message_id
        rows = await chat._read(chat.store.unread_from_peers, s.uid, visible)
        return [UnreadInfo(peer, count, last) for peer, count, last in rows]
