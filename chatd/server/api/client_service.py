"""The ClientAccount servicer: protobuf in, chat operation, protobuf out.

It translates only: application errors travel in `error_code` (API.md), and
gRPC statuses are kept for transport-level trouble. A Subscribe stream with a
bad session ends UNAUTHENTICATED; one that falls too far behind ends
RESOURCE_EXHAUSTED. On a node that is not the master every call, Subscribe
included, is relayed as it is to the master (UNAVAILABLE while none is known).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc

from chatd.contract import CLIENT_HEADER, DELIVERED_HEADER, MASTER_HEADER
from chatd.core.types import Role
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.api.file_service import FileServicer
from chatd.server.api.handlers import Malformed
from chatd.server.api.presence_service import PresenceServicer
from chatd.server.api.relay import relay_connect, relay_subscribe
from chatd.server.api.room_service import RoomServicer
from chatd.server.api.router import Router, peer_host, relay_timeout
from chatd.server.api.search_service import SearchServicer
from chatd.server.api.session_stream import Frame, SessionStream
from chatd.server.api.status import abort, end_call, relayed, status_of
from chatd.server.api.unary import to_proto, unary
from chatd.server.api.unopened import Unopened
from chatd.server.chat.edit_ops import EditOps
from chatd.server.chat.file_ops import FileOps
from chatd.server.chat.presence import Presence
from chatd.server.chat.ratelimit import RateLimiter
from chatd.server.chat.room_ops import RoomOps
from chatd.server.chat.rules import Chat
from chatd.server.chat.search_ops import SearchOps
from chatd.server.chat.streams import attend, subscribe
from chatd.server.chat.throttle import address_key
from chatd.server.errors import (
    CallerError,
    Evicted,
    NodeError,
    NoMaster,
    NoOpenFrame,
    RequestRefused,
)

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)


class ClientAccountServicer(
    RoomServicer,
    PresenceServicer,
    SearchServicer,
    FileServicer,
    chat_pb2_grpc.ClientAccountServicer,
):
    """`relays`: this servicer is the peer listener's, whose callers are
    nodes relaying their clients' calls (and say where those came from)."""

    def __init__(
        self,
        chat: Chat,
        router: Router,
        max_request_bytes: int,
        file_ops: FileOps,
        relays: bool = False,
    ) -> None:
        self.chat = chat
        self.file_ops = file_ops
        self.room_ops = RoomOps(chat)
        self.edit_ops = EditOps(chat)
        self.presence = Presence(chat)
        self.search_ops = SearchOps(chat)
        self.router = router
        self.max_request_bytes = max_request_bytes
        self.relays = relays
        # told of each Connect send's result and its seconds (the metrics)
        self.on_stream_send: Callable[[chat_pb2.SendResult, float], None] | None = None
        self._unopened = Unopened()  # Connect streams before their open frame
        # their ends' log lines, per client address: a burst, then one a second
        # (an address opening streams it never opens cannot flood the log)
        self._unopened_said = RateLimiter(rate=1.0, burst=16)

    def client(self, context: Ctx) -> str:
        """Where the call came from: its caller, or on the peer listener the
        address the relaying node names."""
        if self.relays:
            for key, value in context.invocation_metadata() or ():
                if key == CLIENT_HEADER:
                    return value if isinstance(value, str) else value.decode(errors="replace")
        return peer_host(context)

    async def _master_stub(
        self, request: Any, context: Ctx, too_large: str, route: tuple[Role, str]
    ) -> chat_pb2_grpc.ClientAccountStub | None:
        """The master's stub, or None when the call is served here; a request
        over the size limit ends RESOURCE_EXHAUSTED (`too_large`), and one
        while no master is known UNAVAILABLE."""
        if request.ByteSize() > self.max_request_bytes:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, too_large)
        try:
            return self.router.master_stub(*route)
        except NoMaster as exc:
            await abort(context, exc)

    async def _forward(self, name: str, request: Any, context: Ctx) -> Any:
        """Relays a unary call to the master when this node is not it; returns
        None when the call is to be served here. Every answer names the
        master (trailing metadata `chatd-master`) so clients can go there."""
        route = self.router.route()
        context.set_trailing_metadata(((MASTER_HEADER, self.router.for_clients(route)),))
        too_large = f"request larger than {self.max_request_bytes} bytes"
        stub = await self._master_stub(request, context, too_large, route)
        if stub is None:
            return None
        try:
            meta = self._relay_metadata(context)
            call = getattr(stub, name)(request, timeout=relay_timeout(context), metadata=meta)
            answer = await call
            self.router.learn(route[1], await call.trailing_metadata())
            context.set_trailing_metadata(((MASTER_HEADER, self.router.for_clients(route)),))
            return answer
        except grpc.aio.AioRpcError as exc:
            await end_call(context, relayed(exc))

    def _relay_metadata(self, context: Ctx) -> tuple[tuple[str, str], ...]:
        """A relayed call's metadata: the cluster's, and where it came from."""
        return (*self.router.metadata, (CLIENT_HEADER, self.client(context)))

    @unary(chat_pb2.ServerResponse)
    async def CreateAccount(
        self, request: chat_pb2.CreateAccountRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        await self.chat.create_account(request.username, request.password, self.client(context))
        return chat_pb2.ServerResponse()

    @unary()
    async def ListUsers(self, request: chat_pb2.Empty, context: Ctx) -> chat_pb2.Users:
        users = [
            chat_pb2.User(username=name, status="online" if online else "offline")
            for name, online in self.chat.list_users()
        ]
        return chat_pb2.Users(user=users)

    @unary(chat_pb2.ServerResponse)
    async def Login(self, request: chat_pb2.LoginRequest, context: Ctx) -> chat_pb2.ServerResponse:
        sid = await self.chat.login(request.username, request.password, self.client(context))
        return chat_pb2.ServerResponse(session_id=sid)

    @unary(chat_pb2.ServerResponse)
    async def Send(self, request: chat_pb2.SendRequest, context: Ctx) -> chat_pb2.ServerResponse:
        r = request
        mid = await self.chat.send(
            r.session_id, r.to, r.message, r.request_id, r.room, r.reply_to, r.file_id
        )
        return chat_pb2.ServerResponse(message_id=mid)

    @unary(chat_pb2.ServerResponse)
    async def EditMessage(
        self, request: chat_pb2.EditMessageRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        r = request
        mid = await self.edit_ops.edit(r.session_id, r.message_id, r.message)
        return chat_pb2.ServerResponse(message_id=mid)

    @unary(chat_pb2.ServerResponse)
    async def DeleteMessage(
        self, request: chat_pb2.MessageRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        mid = await self.edit_ops.delete(request.session_id, request.message_id)
        return chat_pb2.ServerResponse(message_id=mid)

    @unary(chat_pb2.ServerResponse)
    async def React(self, request: chat_pb2.ReactRequest, context: Ctx) -> chat_pb2.ServerResponse:
        r = request
        mid = await self.edit_ops.react(r.session_id, r.message_id, r.emoji, r.remove)
        return chat_pb2.ServerResponse(message_id=mid)

    @unary(chat_pb2.Messages)
    async def GetMessages(
        self, request: chat_pb2.ReceiveRequest, context: Ctx
    ) -> chat_pb2.Messages:
        found = await self.chat.get_messages(request.session_id)
        return chat_pb2.Messages(message=[to_proto(m) for m in found])

    @unary(chat_pb2.Messages)
    async def GetChat(self, request: chat_pb2.ChatRequest, context: Ctx) -> chat_pb2.Messages:
        r = request
        found = await self.chat.get_chat(r.session_id, r.username, r.before_message_id, r.limit)
        return chat_pb2.Messages(message=[to_proto(m) for m in found])

    @unary(chat_pb2.ServerResponse)
    async def AcknowledgeReceivedMessages(
        self, request: chat_pb2.AcknowledgeReceivedMessagesRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        await self.chat.acknowledge(request.session_id, list(request.message_ids))
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def DeleteAccount(
        self, request: chat_pb2.DeleteAccountRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        await self.chat.delete_account(request.session_id)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def ChangePassword(
        self, request: chat_pb2.ChangePasswordRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        r = request
        client = self.client(context)
        await self.chat.change_password(r.session_id, r.old_password, r.new_password, client)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.ServerResponse)
    async def Logout(
        self, request: chat_pb2.DeleteAccountRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        await self.chat.logout(request.session_id)
        return chat_pb2.ServerResponse()

    async def Connect(  # type: ignore[override]  # (frames may come encoded: Frame)
        self, frames: AsyncIterator[Any], context: Ctx
    ) -> AsyncIterator[Frame]:
        """The session's one stream (chatd.server.api.session_stream); a slave
        carries the whole stream to the master, frames both ways."""
        route = self.router.route()
        first = await self._first_frame(frames, context)
        if first is None:
            return
        if isinstance(first, Malformed) or first.WhichOneof("frame") != "open":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first frame of Connect must be open"
            )
        stub = await self._master_stub(first, context, "frame too large", route)
        if stub is not None:
            meta = self._relay_metadata(context)
            relay = relay_connect(self.chat, self.router, first, frames, context, route, meta)
            async for frame in relay:
                yield frame
            return
        stream = SessionStream(self.chat, to_proto, self.on_stream_send)
        elsewhere = self.relays and any(
            key == DELIVERED_HEADER for key, _ in context.invocation_metadata() or ()
        )
        attending = None  # the user a slave's stream makes online here
        try:
            # the session is checked, and a slave's stream counted against the
            # user's limit, before the stream opens: the slave serving its
            # deliveries starts them only once the master took it
            user = self.chat.session(first.open.session_id).username
            if elsewhere:
                attend(self.chat, user)  # OverLimit: the user's streams, on every node
                attending = user
            await context.send_initial_metadata(((MASTER_HEADER, self.router.for_clients(route)),))
            async for frame in stream.run(first.open, frames, carried=elsewhere):
                yield frame
        except (RequestRefused, CallerError) as exc:  # at the open: the session, a limit
            stream.end = status_of(exc)
        finally:
            if attending is not None:
                self.chat.hub.leave(attending)
        if stream.end.status is not None:
            await end_call(context, stream.end)

    async def _first_frame(self, frames: AsyncIterator[Any], context: Ctx) -> Any:
        """A Connect stream's first frame (None: the client ended the stream
        first). Until it comes the stream holds no session: it ends after
        --first-frame-timeout (DEADLINE_EXCEEDED), and one client address
        may hold --max-unopened-streams such streams: beyond them the
        address's oldest one ends (RESOURCE_EXHAUSTED; no sooner than a grace
        after its start) and the new one is taken (chatd.server.api.unopened).
        Either end is logged at info level, with the client's address (16
        lines at once per address, then one a second)."""
        limits = self.chat.limits
        bound = limits.max_unopened_streams
        client = self.client(context)
        try:
            return await self._unopened.first_frame(
                address_key(client), frames, limits.first_frame_timeout, bound
            )
        except (NoOpenFrame, Evicted) as exc:
            if self._unopened_said.allow(address_key(client), time.monotonic()):
                log.info("a Connect stream from %s ended before it opened: %s", client, exc)
            await abort(context, exc)

    async def Subscribe(
        self, request: chat_pb2.SubscribeRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.Message]:
        # CancelledError must propagate (a handler that swallows it leaks
        # native memory per call in grpc.aio), so only our own ends are caught.
        route = self.router.route()
        stub = await self._master_stub(request, context, "request too large", route)
        master_md = ((MASTER_HEADER, self.router.for_clients(route)),)
        if stub is not None:
            async for message in relay_subscribe(self.router, stub, request, context, route):
                yield message
            return
        # the subscription opens right after this, before any other event
        await context.send_initial_metadata(master_md)
        ended: CallerError | NodeError | None = None
        try:
            r = request
            async for m in subscribe(
                self.chat, r.session_id, r.after_message_id, r.live_only, r.events
            ):
                yield to_proto(m)
        except (CallerError, NodeError) as exc:  # refused, too slow, or the node dropped it
            ended = exc
        if ended is not None:
            await abort(context, ended)
