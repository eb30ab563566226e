"""The client library's search calls (docs/clients.md, "Search"), mixed
into ChatClient (chatd.client.api): each a unary call, failing over as
every call does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from chatd.client.errors import CallFailed, InvalidArguments, NotLoggedIn
from chatd.client.model import Message, User, message_of
from chatd.contract import Code
from chatd.proto import chat_pb2


@dataclass(frozen=True, slots=True)
class SearchPage:
    messages: list[Message]  # newest first
    next_before: int  # `before` for the next page; 0: there is none


class SearchCalls:
    if TYPE_CHECKING:
        _ok: Callable[[str, Any], Awaitable[Any]]
        _call: Callable[[str, Any], Awaitable[Any]]
        _session: Callable[[], str]

    async def search_messages(
        self, query: str, *, peer: str = "", room: str = "", before: int = 0, limit: int = 20
    ) -> SearchPage:
        """The messages I may read holding every word of `query` (the last
        one also as the start of a word), newest first, with id < `before`
        (0: the newest); only in my conversation with `peer`, or in `room`,
        when given. InvalidArguments for a query without a word (letters or
        digits) or too long; NotAMember or NoSuchRoom for a room I am not
        in; NoSuchRecipient for a peer who never was."""
        request = chat_pb2.SearchRequest(
            session_id=self._session(),
            query=query,
            peer=peer,
            room=room,
            before_message_id=before,
            limit=limit,
        )
        r = await self._ok("SearchMessages", request)
        return SearchPage([message_of(m) for m in r.message], r.next_before_id)

    async def search_users(self, prefix: str, limit: int = 20) -> list[User]:
        """The accounts whose name starts with `prefix` (in any case), in
        name order, with whether each is online."""
        request = chat_pb2.SearchUsersRequest(
            session_id=self._session(), prefix=prefix, limit=limit
        )
        try:
            r = await self._call("SearchUsers", request)
        except CallFailed as exc:  # (Users has no error code: a status says it)
            if exc.status == grpc.StatusCode.UNAUTHENTICATED:
                raise NotLoggedIn(Code.NOT_LOGGED_IN, _details(exc)) from exc
            if exc.status == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArguments(Code.INVALID_ARGUMENT, _details(exc)) from exc
            raise
        return [User(u.username, u.status == "online") for u in r.user]


def _details(exc: CallFailed) -> str:
    return exc.message.removeprefix(f"{exc.status.name}: ")
