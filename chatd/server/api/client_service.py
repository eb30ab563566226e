"""The ClientAccount servicer: protobuf in, chat operation, protobuf out.

It translates only: application errors travel in `error_code` (API.md), and
gRPC statuses are kept for transport-level trouble. A Subscribe stream with a
bad session ends UNAUTHENTICATED; one that falls too far behind ends
RESOURCE_EXHAUSTED. On a node that is not the master every call, Subscribe
included, is relayed as it is to the master (UNAVAILABLE while none is known).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from chatd.config import is_node_address
from chatd.contract import (
    CLIENT_HEADER,
    DELIVERED_HEADER,
    MASTER_HEADER,
    MASTER_LOST_HEADER,
    REFUSED_HEADER,
    RETRY_AFTER_HEADER,
)
from chatd.core.types import Role
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.api.handlers import Malformed
from chatd.server.api.ports import Cluster, Links
from chatd.server.api.room_service import RoomServicer
from chatd.server.api.session_stream import EXPECTED, OUT_QUEUE, SessionStream, deliver
from chatd.server.api.status import End, abort, status_of
from chatd.server.api.unary import to_proto, unary
from chatd.server.api.unopened import Unopened
from chatd.server.chat.delivery import attend, subscribe
from chatd.server.chat.room_ops import RoomOps
from chatd.server.chat.rules import Chat
from chatd.server.chat.throttle import address_key
from chatd.server.errors import CallerError, Evicted, NodeError, NoMaster, RequestRefused, reap

log = logging.getLogger(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


class Router:
    """Where client calls go: here (None) or the master's stub (over the
    peer listener, with the cluster secret), and which address clients are
    told the master has (its client listener's, learned from its answers)."""

    def __init__(self, repl: Cluster, peers: Links) -> None:
        self.repl = repl
        self.peers = peers
        self.client_address = ""  # this node's, once it listens
        self._client_addresses: dict[str, str] = {}  # peer address -> client address

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self.peers.metadata

    def master_stub(self, role: Role, address: str) -> chat_pb2_grpc.ClientAccountStub | None:
        if role is Role.MASTER:
            return None
        if role is not Role.SLAVE or not address:
            raise NoMaster("no master is reachable right now; try again shortly")
        return chat_pb2_grpc.ClientAccountStub(self.peers.channel(address))

    def route(self) -> tuple[Role, str]:
        """(this node's role, the master's peer address or "")."""
        return self.repl.route()

    def for_clients(self, route: tuple[Role, str]) -> str:
        """The master's client address, "" while it is not known yet."""
        role, address = route
        if role is Role.MASTER:
            return self.client_address
        return self._client_addresses.get(address, "") if address else ""

    def learn(self, address: str, metadata: Any) -> None:
        """The master at peer `address` named itself in an answer (every
        answer of a master names its own client address)."""
        for key, value in metadata or ():
            if key == MASTER_HEADER:
                told = value if isinstance(value, str) else value.decode(errors="replace")
                self.heard(address, told)

    def heard(self, address: str, client_address: str) -> None:
        """The master at peer `address` said where its clients reach it (in
        an answer's metadata, or in its status: a slave no client call went
        through yet has heard no answer of the first kind)."""
        if is_node_address(client_address):
            self._client_addresses[address] = client_address


def _relay_timeout(context: Ctx) -> float:
    left = context.time_remaining()
    return 30.0 if left is None else max(0.0, left)


BAD_FRAME = object()  # (a relayed Connect's client sent a frame that does not parse)


def peer_host(context: Ctx) -> str:
    """The caller's IP address, its port dropped ("ipv4:10.0.0.7:5123" ->
    "10.0.0.7", "ipv6:[::1]:5123" -> "::1")."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer
    host = rest.rpartition(":")[0]
    return host.strip("[]")


class ClientAccountServicer(RoomServicer, chat_pb2_grpc.ClientAccountServicer):
    """`relays`: this servicer is the peer listener's, whose callers are
    nodes relaying their clients' calls (and say where those came from)."""

    def __init__(
        self, chat: Chat, router: Router, max_request_bytes: int, relays: bool = False
    ) -> None:
        self.chat = chat
        self.room_ops = RoomOps(chat)
        self.router = router
        self.max_request_bytes = max_request_bytes
        self.relays = relays
        # told of each Connect send's result and its seconds (the metrics)
        self.on_stream_send: Callable[[chat_pb2.SendResult, float], None] | None = None
        self._unopened = Unopened()  # Connect streams before their open frame

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
            meta = (*self.router.metadata, (CLIENT_HEADER, self.client(context)))
            call = getattr(stub, name)(request, timeout=_relay_timeout(context), metadata=meta)
            answer = await call
            self.router.learn(route[1], await call.trailing_metadata())
            context.set_trailing_metadata(((MASTER_HEADER, self.router.for_clients(route)),))
            return answer
        except grpc.aio.AioRpcError as exc:
            told: Any = exc.trailing_metadata() or ()
            hint = tuple((k, v) for k, v in told if k in (RETRY_AFTER_HEADER, REFUSED_HEADER))
            await context.abort(exc.code(), exc.details() or "", hint)

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
        mid = await self.chat.send(r.session_id, r.to, r.message, r.request_id, r.room)
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

    async def Connect(
        self, frames: AsyncIterator[Any], context: Ctx
    ) -> AsyncIterator[chat_pb2.ServerFrame]:
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
            relay = self._relay_connect(stub, first, frames, context, route, self._local(first))
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
            async for frame in stream.run(first.open, frames):
                yield frame
        except (RequestRefused, CallerError) as exc:  # at the open: the session, a limit
            stream.end = status_of(exc)
        finally:
            if attending is not None:
                self.chat.hub.leave(attending)
        if stream.end.status is not None:
            await context.abort(stream.end.status, stream.end.detail, stream.end.trailers)

    async def _first_frame(self, frames: AsyncIterator[Any], context: Ctx) -> Any:
        """A Connect stream's first frame (None: the client ended the stream
        first). Until it comes the stream holds no session: it ends after
        --first-frame-timeout (DEADLINE_EXCEEDED), and one client address
        may hold --max-unopened-streams such streams: beyond them the
        address's oldest one ends (RESOURCE_EXHAUSTED) and the new one is
        taken (chatd.server.api.unopened)."""
        limits = self.chat.limits
        bound = limits.max_unopened_streams
        try:
            return await self._unopened.first_frame(
                address_key(self.client(context)), frames, limits.first_frame_timeout, bound
            )
        except Evicted:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this stream sent no open frame and {bound} newer Connect streams from "
                f"this address are waiting for theirs, the most allowed: the oldest is "
                f"ended; send the open frame as soon as the stream starts",
            )
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no open frame within {limits.first_frame_timeout:g} s of the stream's start",
            )

    def _local(self, first: chat_pb2.ClientFrame) -> bool:
        """Whether this slave serves the session's deliveries itself: when
        it asks for them and its session is known here (a replica that
        lags, as a slave outside a majority may, leaves them to the master)."""
        if first.open.sends_only:
            return False
        try:
            self.chat.session(first.open.session_id)
        except RequestRefused:
            return False
        return True

    def _lost(self, exc: grpc.aio.AioRpcError, route: tuple[Role, str]) -> tuple[Any, ...]:
        """The trailing metadata of a relayed stream the master's side ended:
        UNAVAILABLE names the master (MASTER_LOST_HEADER), the node the
        client lost (this one still answers), unless the master answered
        that it is up and refuses (REFUSED_HEADER, passed on)."""
        master = self.router.for_clients(route)
        if exc.code() != grpc.StatusCode.UNAVAILABLE or not master:
            return ()
        told: Any = exc.trailing_metadata() or ()
        if any(key == REFUSED_HEADER for key, _ in told):
            return ((REFUSED_HEADER, "1"),)
        return ((MASTER_LOST_HEADER, master),)

    async def _relay_connect(
        self,
        stub: chat_pb2_grpc.ClientAccountStub,
        first: chat_pb2.ClientFrame,
        frames: AsyncIterator[Any],
        context: Ctx,
        route: tuple[Role, str],
        local: bool,
    ) -> AsyncIterator[chat_pb2.ServerFrame]:
        """Carries the stream to the master; `local`: with the deliveries
        served here, from this node's replica (the master then takes sends
        and acknowledgements only, and counts the user online)."""
        meta = (*self.router.metadata, (CLIENT_HEADER, self.client(context)))
        if local:
            meta = (*meta, (DELIVERED_HEADER, "1"))
            opening = chat_pb2.ClientFrame()
            opening.CopyFrom(first)
            opening.open.sends_only = True
            first = opening
        call: Any = stub.Connect(metadata=meta)  # type: ignore[call-arg]
        # frames from the master or this node's deliveries, an error that
        # ended either, None at the master's end, or BAD_FRAME when the
        # client sent a frame that does not parse
        down: asyncio.Queue[Any] = asyncio.Queue(OUT_QUEUE)

        async def up() -> None:
            await call.write(first)
            async for frame in frames:
                if isinstance(frame, Malformed):
                    await down.put(BAD_FRAME)
                    return
                await call.write(frame)
            await call.done_writing()

        async def from_master() -> None:
            try:
                async for frame in call:
                    await down.put(frame)
            except grpc.aio.AioRpcError as exc:
                await down.put(exc)
            else:
                await down.put(None)

        tasks = [asyncio.create_task(up()), asyncio.create_task(from_master())]
        try:
            self.router.learn(route[1], await call.initial_metadata())
            await context.send_initial_metadata(((MASTER_HEADER, self.router.for_clients(route)),))
            if local and not call.done():  # the master took the session (see Connect)
                tasks.append(asyncio.create_task(deliver(self.chat, opening.open, down, to_proto)))
            while (item := await down.get()) is not None:
                if item is BAD_FRAME:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "a frame that is not a ClientFrame"
                    )
                if isinstance(item, grpc.aio.AioRpcError):
                    await context.abort(item.code(), item.details() or "", self._lost(item, route))
                if isinstance(item, End):
                    if item.status is not None:
                        await context.abort(item.status, item.detail, item.trailers)
                    return
                yield item
        except grpc.aio.AioRpcError as exc:  # (at the opening)
            await context.abort(exc.code(), exc.details() or "", self._lost(exc, route))
        finally:
            for task in tasks:
                task.cancel()
            # (the stream's own ending is already decided; a task's error, a
            # bug included, must not replace it: it is logged)
            await reap(tasks, log, "relayed Connect stream", EXPECTED)
            call.cancel()

    async def Subscribe(
        self, request: chat_pb2.SubscribeRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.Message]:
        # CancelledError must propagate (a handler that swallows it leaks
        # native memory per call in grpc.aio), so only our own ends are caught.
        route = self.router.route()
        stub = await self._master_stub(request, context, "request too large", route)
        master_md = ((MASTER_HEADER, self.router.for_clients(route)),)
        if stub is not None:
            call: Any = stub.Subscribe(request, metadata=self.router.metadata)
            try:
                # answer only once the master has opened the stream, so a
                # client's next call cannot overtake the subscription
                self.router.learn(route[1], await call.initial_metadata())
                await context.send_initial_metadata(
                    ((MASTER_HEADER, self.router.for_clients(route)),)
                )
                async for m in call:
                    yield m
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "", self._lost(exc, route))
            finally:
                call.cancel()
            return
        # the subscription opens right after this, before any other event
        await context.send_initial_metadata(master_md)
        ended: CallerError | NodeError | None = None
        try:
            async for m in subscribe(
                self.chat, request.session_id, request.after_message_id, request.live_only
            ):
                yield to_proto(m)
        except (CallerError, NodeError) as exc:  # refused, too slow, or the node dropped it
            ended = exc
        if ended is not None:
            await abort(context, ended)
