"""The ClientAccount servicer's search RPCs (chatd.server.chat.search_ops),
mixed into chatd.server.api.client_service.ClientAccountServicer: each is
relayed to the master by a slave, like every unary call
(chatd.server.api.unary). SearchUsers answers Users, which has no error
code: a refusal ends the call with its status (UNAUTHENTICATED when not
logged in, INVALID_ARGUMENT for a bad prefix or limit)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatd.proto import chat_pb2
from chatd.server.api.unary import to_proto, unary
from chatd.server.chat.search_ops import SearchOps

if TYPE_CHECKING:
    import grpc

    Ctx = grpc.aio.ServicerContext[Any, Any]


class SearchServicer:
    search_ops: SearchOps

    @unary(chat_pb2.SearchResults)
    async def SearchMessages(self, request: chat_pb2.SearchRequest, context: Ctx) -> Any:
        r = request
        found = await self.search_ops.messages(
            r.session_id, r.query, r.peer, r.room, r.before_message_id, r.limit
        )
        return chat_pb2.SearchResults(
            message=[to_proto(m) for m in found.messages], next_before_id=found.next_before_id
        )

    @unary()
    async def SearchUsers(self, request: chat_pb2.SearchUsersRequest, context: Ctx) -> Any:
        found = self.search_ops.users(request.session_id, request.prefix, request.limit)
        users = [
            chat_pb2.User(username=name, status="online" if online else "offline")
            for name, online in found
        ]
        return chat_pb2.Users(user=users)
