"""The async client library: every RPC of the client API, with failover.

`ChatClient(addresses)` knows every node it was given. It sends each call to
the master it last heard of (every answer names it), and on UNAVAILABLE, a
timeout or a broken stream tries the other addresses with backoff until
`retry_for` seconds have passed. A `send` is retried with the same request
id, so a retry never stores a message twice. `subscribe()` survives
failover: it resumes after the last message it yielded, so the caller sees
every message exactly once, in order. Connection changes are reported to
the `on_connection` callback, never printed. Where calls go and how they
fail over is chatd.client.failover's, shared by the unary calls, Subscribe
and the session's Connect stream (chatd.client.connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc

from chatd.client.connection import Connection, NoStream
from chatd.client.errors import (
    CallFailed,
    ChatError,
    NoMessages,
    NotLoggedIn,
    RefusedForNow,
    error_for,
)
from chatd.client.failover import Backoff, Failover
from chatd.client.files import FileCalls, Profile
from chatd.client.model import ConnectionEvent, FileRef, Message, User, message_of
from chatd.client.presence import PresenceCalls
from chatd.client.rooms import RoomCalls
from chatd.client.search import SearchCalls
from chatd.contract import Code
from chatd.proto import chat_pb2
from chatd.tls import client_credentials

__all__ = ["ChatClient", "ConnectionEvent", "FileRef", "Message", "Profile", "User"]

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


class ChatClient(RoomCalls, PresenceCalls, SearchCalls, FileCalls):
    def __init__(
        self,
        addresses: Sequence[str] | str,
        *,
        on_connection: Callable[[ConnectionEvent], None] | None = None,
        timeout: float = 5.0,
        retry_for: float = 30.0,
        tls: bool = False,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        streams: bool = True,
        spread: bool = True,
    ) -> None:
        """`tls`: talk TLS, verifying the nodes' certificates against the
        system's roots; `tls_ca`: against this CA (PEM file) instead (TLS
        without `tls`); `tls_cert` and `tls_key`: a client certificate, for
        nodes that require one;
        `streams`: send and receive over the session's Connect stream (else
        a unary Send each, and Subscribe); `spread`: hold that stream at one
        of the addresses picked at random (else at the node calls go to,
        the master once one answered)."""
        if isinstance(addresses, str):
            addresses = [a.strip() for a in addresses.split(",") if a.strip()]
        if not addresses:
            raise ValueError("at least one HOST:PORT address is needed")
        self.failover = Failover(
            addresses,
            client_credentials(tls, tls_ca, tls_cert, tls_key),
            timeout=timeout,
            retry_for=retry_for,
            on_connection=on_connection or (lambda event: None),
        )
        self.session_id: str | None = None
        self.username: str | None = None
        self.streams = streams
        self.spread = spread
        self._connection: Connection | None = None
        self.transport = ""  # what the last send went over: "stream" or "unary"
        self._typed = {}

    # -- plumbing --

    @property
    def addresses(self) -> list[str]:
        return self.failover.addresses

    @property
    def address(self) -> str:
        """The node calls go to now."""
        return self.failover.address

    @property
    def timeout(self) -> float:
        return self.failover.timeout

    @property
    def retry_for(self) -> float:
        return self.failover.retry_for

    @property
    def on_connection(self) -> Callable[[ConnectionEvent], None]:
        return self.failover.on_connection

    @on_connection.setter
    def on_connection(self, callback: Callable[[ConnectionEvent], None]) -> None:
        self.failover.on_connection = callback

    def _reached(self, address: str, master: str | None, losses: int) -> None:
        """A call succeeded at `address` (Failover.reached)."""
        streaming = self._connection is not None and bool(self._connection.open_at)
        self.failover.reached(address, master, losses, streaming=streaming)

    async def _call(self, name: str, request: Any, more_time: float = 0.0) -> Any:
        """One call answered by one message, retried on other nodes until
        `retry_for` passes. A client-streaming call's `request` makes its
        stream anew for each try; `more_time`: seconds beyond the timeout."""
        timeout = self.failover.timeout + more_time

        async def once(stub: Any) -> tuple[Any, Any]:
            call = getattr(stub, name)(request() if callable(request) else request, timeout=timeout)
            return await call, call

        return await self._retried(once)

    async def _retried(self, once: Callable[[Any], Awaitable[tuple[T, Any]]]) -> T:
        """`once(stub)`'s result (with the call whose trailing metadata names
        the master), tried at one node after another, with backoff, until
        `retry_for` passes; CallFailed at once for a status not worth a retry."""
        nodes = self.failover
        backoff = Backoff(nodes, failing=True)
        while True:
            address, losses = nodes.address, nodes.losses
            try:
                result, call = await once(nodes.stub(address))
            except grpc.aio.AioRpcError as exc:
                nodes.note_master(exc.trailing_metadata())
                if exc.code() not in RETRYABLE:
                    raise CallFailed(exc.code(), exc.details()) from exc
                backoff.failed(address, exc)
                await backoff.wait()
                continue
            self._reached(address, nodes.note_master(await call.trailing_metadata()), losses)
            return result

    async def _ok(self, name: str, request: Any, more_time: float = 0.0) -> Any:
        response = await self._call(name, request, more_time)
        if response.error_code:
            raise error_for(response.error_code, response.error_message)
        return response

    async def _page(self, name: str, request: Any) -> list[Message]:
        """A call answering Messages: its messages ([] for "no messages")."""
        try:
            r = await self._ok(name, request)
        except NoMessages:
            return []
        return [message_of(m) for m in r.message]

    def _session(self) -> str:
        if not self.session_id:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        return self.session_id

    async def _drop_connection(self, exc: BaseException | None = None) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close(exc)

    async def _session_connection(self) -> Connection:
        """The session's Connect stream (chatd.client.connection)."""
        session = self._session()
        connection = self._connection
        if connection is None or connection.session_id != session:
            old = connection
            connection = Connection(self.failover, session, spread=self.spread)
            self._connection = connection  # (before any await: one a session)
            if old is not None:
                await old.close(NotLoggedIn(Code.NOT_LOGGED_IN, "logged in again"))
        return connection

    async def close(self) -> None:
        await self._drop_connection()
        await self.failover.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the API --

    async def create_account(self, username: str, password: str) -> None:
        await self._ok(
            "CreateAccount", chat_pb2.CreateAccountRequest(username=username, password=password)
        )

    async def login(self, username: str, password: str) -> str:
        r = await self._ok("Login", chat_pb2.LoginRequest(username=username, password=password))
        self.session_id, self.username = r.session_id, username
        return str(r.session_id)

    async def logout(self) -> None:
        # NotLoggedIn: already ended (e.g. a retry after the first attempt ended it)
        await self._drop_connection(NotLoggedIn(Code.NOT_LOGGED_IN, "logged out"))
        with contextlib.suppress(NotLoggedIn):
            await self._ok("Logout", chat_pb2.DeleteAccountRequest(session_id=self._session()))
        self.session_id = self.username = None

    async def forget_session(self) -> None:
        """The node ended the session (an operator logged the user out or
        disabled the account, or the account was deleted): no call is made."""
        await self._drop_connection(NotLoggedIn(Code.NOT_LOGGED_IN, "session ended"))
        self.session_id = self.username = None

    async def change_password(self, old: str, new: str) -> None:
        """My new password (WrongPassword if `old` is not the current one);
        my other sessions end, this one stays."""
        request = chat_pb2.ChangePasswordRequest(
            session_id=self._session(), old_password=old, new_password=new
        )
        await self._ok("ChangePassword", request)

    async def delete_account(self) -> None:
        await self._drop_connection(NotLoggedIn(Code.NOT_LOGGED_IN, "account deleted"))
        await self._ok("DeleteAccount", chat_pb2.DeleteAccountRequest(session_id=self._session()))
        self.session_id = self.username = None

    async def list_users(self) -> list[User]:
        r = await self._call("ListUsers", chat_pb2.Empty())
        return [User(u.username, u.status == "online") for u in r.user]

    async def send(
        self,
        to: str,
        body: str,
        request_id: str | None = None,
        *,
        room: str = "",
        reply_to: int = 0,
        file_id: str = "",
    ) -> int:
        """Sends a message to user `to`, or with `room` to that room (`to`
        unused), answering message `reply_to` (0: none), carrying my file
        `file_id` (upload_file's; the body may then be ""); returns its id.
        Over the session's Connect stream (chatd.client.connection), or a
        unary Send against a server without it; retried with one request id
        either way, so it is stored once."""
        rid = request_id or uuid.uuid4().hex
        if self.streams:
            connection = await self._session_connection()
            with contextlib.suppress(NoStream):
                mid = await connection.send(to, body, rid, room, reply_to, file_id)
                self.transport = "stream"
                return mid
        self.transport = "unary"
        request = chat_pb2.SendRequest(
            to=to,
            message=body,
            session_id=self._session(),
            request_id=rid,
            room=room,
            reply_to=reply_to,
            file_id=file_id,
        )
        r = await self._ok("Send", request)
        return int(r.message_id)

    # -- edits, deletions, reactions: each answers the id of the event it
    # made (0: a reaction already there, or taken back where there was none)

    async def edit_message(self, message_id: int, body: str) -> int:
        """The new text of a message of one's own (within the node's edit
        window: EditWindowPassed after it)."""
        request = chat_pb2.EditMessageRequest(
            session_id=self._session(), message_id=message_id, message=body
        )
        return int((await self._ok("EditMessage", request)).message_id)

    async def delete_message(self, message_id: int) -> int:
        """Deletes a message of one's own, or any of a room one is an admin of."""
        request = chat_pb2.MessageRequest(session_id=self._session(), message_id=message_id)
        return int((await self._ok("DeleteMessage", request)).message_id)

    async def react(self, message_id: int, emoji: str) -> int:
        """Reacts to a message with one of chatd.contract.REACTIONS."""
        request = chat_pb2.ReactRequest(
            session_id=self._session(), message_id=message_id, emoji=emoji
        )
        return int((await self._ok("React", request)).message_id)

    async def unreact(self, message_id: int, emoji: str) -> int:
        request = chat_pb2.ReactRequest(
            session_id=self._session(), message_id=message_id, emoji=emoji, remove=True
        )
        return int((await self._ok("React", request)).message_id)

    async def get_messages(self) -> list[Message]:
        """Undelivered messages, oldest first (then marked delivered)."""
        return await self._page("GetMessages", chat_pb2.ReceiveRequest(session_id=self._session()))

    async def get_chat(self, peer: str, before: int = 0, limit: int = 50) -> list[Message]:
        """One page of a conversation (newest before `before`), oldest first."""
        request = chat_pb2.ChatRequest(
            session_id=self._session(), username=peer, before_message_id=before, limit=limit
        )
        return await self._page("GetChat", request)

    async def acknowledge(self, message_ids: Sequence[int]) -> None:
        await self._ok(
            "AcknowledgeReceivedMessages",
            chat_pb2.AcknowledgeReceivedMessagesRequest(
                session_id=self._session(), message_ids=list(message_ids)
            ),
        )

    async def inbox(self) -> AsyncGenerator[Message, None]:
        """Unread messages (oldest first), then live ones, across failovers,
        each exactly once and in order, all marked delivered: what a chat
        front end shows as "new"; among the live ones, the events of the
        user's conversations (Message.event: edits, deletions, reactions;
        model.applied applies one). Ends only by the caller, or NotLoggedIn."""
        seen = [0]  # the last id yielded, read by each reconnection
        acks: list[int] = []
        flusher: asyncio.Task[None] | None = None

        async def flush() -> None:
            await asyncio.sleep(0.2)
            ids = acks[:]
            del acks[:]
            with contextlib.suppress(ChatError):
                await self.acknowledge(ids)

        try:
            async for m, live in self._streams(lambda: seen[0], unread=True):
                if m.id <= seen[0]:
                    continue
                seen[0] = m.id
                if live and not m.event:  # marked delivered shortly, in batches
                    acks.append(m.id)
                    if flusher is None or flusher.done():
                        flusher = asyncio.create_task(flush())
                yield m
        finally:
            if flusher is not None:
                flusher.cancel()

    async def _streams(
        self, last: Callable[[], int], *, unread: bool
    ) -> AsyncGenerator[tuple[Message, bool], None]:
        """(message, from the stream?) pairs, on the session's Connect stream
        or, against a server without it, on Subscribe streams: on each
        (re)connection, from the last id seen; with `unread`, the stream is
        live only while nothing was seen yet, and the unread messages
        (GetMessages) come right after it opened (ids may repeat: the caller
        drops those at or below its last)."""
        if self.streams:
            connection = await self._session_connection()
            try:
                async for pm, live in connection.deliveries(last, unread):
                    if pm is not None:
                        yield message_of(pm), live
                    elif unread:  # a stream opened: the unread ones, now
                        try:
                            unread_now = await self.get_messages()
                        except RefusedForNow:  # (taking them is a write: next time)
                            unread_now = []
                        for m in unread_now:
                            yield m, False
                return
            except NoStream:
                pass
        async for pair in self._subscriptions(last, unread=unread):
            yield pair

    async def _subscriptions(
        self, last: Callable[[], int], *, unread: bool
    ) -> AsyncGenerator[tuple[Message, bool], None]:
        """As _streams, on Subscribe: on each (re)connection, a
        Subscribe from the last id seen; with `unread`, the stream is live
        only while nothing was seen yet, and the unread messages
        (GetMessages) come right after it opened (ids may repeat: the caller
        drops those at or below its last)."""
        nodes = self.failover
        backoff = Backoff(nodes)
        redirect = True
        while True:
            address, losses = nodes.address, nodes.losses
            after = last()
            request = chat_pb2.SubscribeRequest(
                session_id=self._session(),
                after_message_id=after,
                live_only=unread and after == 0,
                events=True,
            )
            call: Any = nodes.stub(address).Subscribe(request)
            try:
                master = nodes.note_master(await call.initial_metadata())
                if redirect and nodes.address != address:
                    redirect = False  # a relay: once, open the stream at the master itself
                    continue
                redirect = True
                if not call.done() or await call.code() == grpc.StatusCode.OK:
                    # (a stream that failed before it opened has empty metadata)
                    self._reached(address, master, losses)
                for m in await self.get_messages() if unread else []:
                    yield m, False
                backoff.succeeded()
                async for pm in call:
                    yield message_of(pm), True
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    raise NotLoggedIn(Code.NOT_LOGGED_IN, exc.details() or "not logged in") from exc
                nodes.note_master(exc.trailing_metadata())
                if code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    backoff.failed(address, exc)
                    await backoff.wait()
            finally:
                call.cancel()

    async def subscribe(self, after: int = 0) -> AsyncGenerator[Message, None]:
        """Every message to this user with id > `after`, and every event of
        the user's conversations (Message.event), backlog then live, across
        failovers, each exactly once and in order. Ends only by the caller,
        or with NotLoggedIn when the session ends."""
        seen = [after]
        async for m, _ in self._streams(lambda: seen[0], unread=False):
            if m.id > seen[0]:
                seen[0] = m.id
                yield m
