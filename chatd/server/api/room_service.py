"""The ClientAccount servicer's room RPCs (chatd.server.chat.room_ops), mixed
into chatd.server.api.client_service.ClientAccountServicer: each is relayed to
the master by a slave, like every unary call (chatd.server.api.unary)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatd.proto import chat_pb2
from chatd.server.api.unary import to_proto, unary
from chatd.server.chat.room_ops import RoomOps

if TYPE_CHECKING:
    import grpc

    Ctx = grpc.aio.ServicerContext[Any, Any]


class RoomServicer:
    room_ops: RoomOps

    @unary(chat_pb2.ServerResponse)
    async def CreateRoom(self, request: chat_pb2.RoomRequest, context: Ctx) -> Any:
        await self.room_ops.create(request.session_id, request.room, request.topic)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def InviteToRoom(self, request: chat_pb2.RoomMemberRequest, context: Ctx) -> Any:
        await self.room_ops.invite(request.session_id, request.room, request.username)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def JoinRoom(self, request: chat_pb2.RoomRequest, context: Ctx) -> Any:
        await self.room_ops.join(request.session_id, request.room)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def LeaveRoom(self, request: chat_pb2.RoomRequest, context: Ctx) -> Any:
        await self.room_ops.leave(request.session_id, request.room)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def DeclineInvite(self, request: chat_pb2.RoomRequest, context: Ctx) -> Any:
        await self.room_ops.decline(request.session_id, request.room)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def DeleteRoom(self, request: chat_pb2.RoomRequest, context: Ctx) -> Any:
        await self.room_ops.delete(request.session_id, request.room)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def RemoveFromRoom(self, request: chat_pb2.RoomMemberRequest, context: Ctx) -> Any:
        await self.room_ops.remove(request.session_id, request.room, request.username)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def NameRoomAdmin(self, request: chat_pb2.RoomMemberRequest, context: Ctx) -> Any:
        await self.room_ops.name_admin(request.session_id, request.room, request.username)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.Rooms)
    async def ListRooms(self, request: chat_pb2.RoomRequest, context: Ctx) -> Any:
        found = await self.room_ops.list_rooms(request.session_id)
        rooms = [
            chat_pb2.Room(
                name=r.name, topic=r.topic, members=r.members, unread=r.unread,
                joined=r.joined, admin=r.admin, creator=r.creator,
            )
            for r in found
        ]  # fmt: skip
        return chat_pb2.Rooms(room=rooms)

    @unary(chat_pb2.RoomMembers)
    async def ListRoomMembers(self, request: chat_pb2.RoomRequest, context: Ctx) -> Any:
        found = self.room_ops.members(request.session_id, request.room)
        members = [
            chat_pb2.RoomMember(
                username=m.username, online=m.online, joined=m.joined, admin=m.admin
            )
            for m in found
        ]
        return chat_pb2.RoomMembers(member=members)

    @unary(chat_pb2.Messages)
    async def GetRoomHistory(self, request: chat_pb2.RoomHistoryRequest, context: Ctx) -> Any:
        r = request
        found = await self.room_ops.history(r.session_id, r.room, r.before_message_id, r.limit)
        return chat_pb2.Messages(message=[to_proto(m) for m in found])

    @unary(chat_pb2.ServerResponse)
    async def MarkRead(self, request: chat_pb2.MarkReadRequest, context: Ctx) -> Any:
        r = request
        await self.room_ops.mark_read(r.session_id, r.peer, r.room, r.upto)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.UnreadCounts)
    async def ListUnread(self, request: chat_pb2.ReceiveRequest, context: Ctx) -> Any:
        found = await self.room_ops.unread(request.session_id)
        unread = [
            chat_pb2.Unread(peer=u.peer, count=u.count, last_message_id=u.last_message_id)
            for u in found
        ]
        return chat_pb2.UnreadCounts(unread=unread)
