"""The client library's room calls (docs/clients.md, "Rooms"), mixed into
ChatClient (chatd.client.api): each a unary call, failing over as every call
does. A room message is sent with `ChatClient.send(..., room=NAME)` and
arrives on `subscribe()` and `inbox()` as any message, with `Message.room`
set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatd.client.model import Message
from chatd.proto import chat_pb2


@dataclass(frozen=True, slots=True)
class Room:
    name: str
    topic: str
    creator: str
    members: int  # who joined
    unread: int  # messages after my read marker, not my own
    joined: bool  # False: I am invited
    admin: bool


@dataclass(frozen=True, slots=True)
class RoomMember:
    name: str
    online: bool
    joined: bool  # False: invited
    admin: bool


@dataclass(frozen=True, slots=True)
class Unread:
    peer: str
    count: int  # messages from `peer` after my read marker there
    last_message_id: int  # the newest of them


class RoomCalls:
    if TYPE_CHECKING:
        _ok: Callable[[str, Any], Awaitable[Any]]
        _page: Callable[[str, Any], Awaitable[list[Message]]]
        _call: Callable[[str, Any], Awaitable[Any]]
        _session: Callable[[], str]

    async def _room_call(self, name: str, room: str, username: str | None = None) -> None:
        if username is None:
            await self._ok(name, chat_pb2.RoomRequest(session_id=self._session(), room=room))
        else:
            request = chat_pb2.RoomMemberRequest(
                session_id=self._session(), room=room, username=username
            )
            await self._ok(name, request)

    async def create_room(self, name: str, topic: str = "") -> None:
        """Creates a room, with me its first member and admin."""
        request = chat_pb2.RoomRequest(session_id=self._session(), room=name, topic=topic)
        await self._ok("CreateRoom", request)

    async def invite(self, room: str, username: str) -> None:
        await self._room_call("InviteToRoom", room, username)

    async def remove_from_room(self, room: str, username: str) -> None:
        await self._room_call("RemoveFromRoom", room, username)

    async def name_room_admin(self, room: str, username: str) -> None:
        await self._room_call("NameRoomAdmin", room, username)

    async def join_room(self, room: str) -> None:
        await self._room_call("JoinRoom", room)

    async def leave_room(self, room: str) -> None:
        await self._room_call("LeaveRoom", room)

    async def decline_invite(self, room: str) -> None:
        """Declines my invitation to a room I have not joined (NotAllowed
        if I joined: leave it instead)."""
        await self._room_call("DeclineInvite", room)

    async def delete_room(self, room: str) -> None:
        """Deletes a room I am an admin of: its members, invitations and
        history go, and its name is free again."""
        await self._room_call("DeleteRoom", room)

    async def rooms(self) -> list[Room]:
        """The rooms I am in or invited to, with member and unread counts."""
        r = await self._ok("ListRooms", chat_pb2.RoomRequest(session_id=self._session()))
        return [
            Room(x.name, x.topic, x.creator, x.members, x.unread, x.joined, x.admin) for x in r.room
        ]

    async def room_members(self, room: str) -> list[RoomMember]:
        request = chat_pb2.RoomRequest(session_id=self._session(), room=room)
        r = await self._ok("ListRoomMembers", request)
        return [RoomMember(m.username, m.online, m.joined, m.admin) for m in r.member]

    async def room_history(self, room: str, before: int = 0, limit: int = 50) -> list[Message]:
        """One page of a room's messages (newest before `before`), oldest first."""
        request = chat_pb2.RoomHistoryRequest(
            session_id=self._session(), room=room, before_message_id=before, limit=limit
        )
        return await self._page("GetRoomHistory", request)

    async def mark_read(self, upto: int, *, peer: str = "", room: str = "") -> None:
        """I have read the conversation with `peer`, or `room`, up to `upto`."""
        request = chat_pb2.MarkReadRequest(
            session_id=self._session(), peer=peer, room=room, upto=upto
        )
        await self._ok("MarkRead", request)

    async def unread(self) -> list[Unread]:
        """The one-to-one conversations with messages to me after my read
        marker there (every device of mine agrees), the newest first; a
        room's count is in `rooms()`."""
        r = await self._ok("ListUnread", chat_pb2.ReceiveRequest(session_id=self._session()))
        return [Unread(u.peer, u.count, u.last_message_id) for u in r.unread]


@dataclass(frozen=True, slots=True)
class RoomChanges:
    """What changed in my rooms between two listings that I did not do
    myself here: the server sends no event for an invitation or a removal,
    so the front ends list my rooms every few seconds and tell me these."""

    invited: list[Room]  # new invitations (the first listing: those pending)
    gone: list[Room]  # rooms I was in, or invited to, and am not any more


def room_changes(before: dict[str, Room] | None, now: list[Room]) -> RoomChanges:
    """`before`: the last listing by name (None: there was none yet, as
    after a login)."""
    known = before or {}
    current = {r.name for r in now}
    return RoomChanges(
        invited=[r for r in now if not r.joined and r.name not in known],
        gone=[r for name, r in sorted(known.items()) if name not in current],
    )
