"""The ClientAccount servicer's read receipt RPCs (chatd.server.chat.presence),
mixed into chatd.server.api.client_service.ClientAccountServicer: each is
relayed to the master by a slave, like every unary call
(chatd.server.api.unary). Typing is a Connect frame (session_stream)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatd.proto import chat_pb2
from chatd.server.api.unary import unary
from chatd.server.chat.presence import Presence

if TYPE_CHECKING:
    import grpc

    Ctx = grpc.aio.ServicerContext[Any, Any]


class PresenceServicer:
    presence: Presence

    @unary(chat_pb2.Receipts)
    async def ListReceipts(self, request: chat_pb2.ReceiptsRequest, context: Ctx) -> Any:
        r = request
        shares, found = await self.presence.receipts(r.session_id, r.peer, r.room)
        receipts = [
            chat_pb2.Receipt(username=name, upto=upto, peer=r.peer, room=r.room)
            for name, upto in found
        ]
        return chat_pb2.Receipts(receipt=receipts, not_sharing=not shares)

    @unary(chat_pb2.ServerResponse)
    async def ShareReceipts(self, request: chat_pb2.ShareReceiptsRequest, context: Ctx) -> Any:
        await self.presence.share_receipts(request.session_id, request.share)
        return chat_pb2.ServerResponse()
