"""The ClientAccount servicer: protobuf in, chat operation, protobuf out.

It translates only: application errors travel in `error_code` (API.md), and
gRPC statuses are kept for transport-level trouble. A Subscribe stream with a
bad session ends UNAUTHENTICATED; one that falls too far behind ends
RESOURCE_EXHAUSTED. On a node that is not the master every call, Subscribe
included, is relayed as it is to the master (UNAVAILABLE while none is known).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from chatd.contract import MASTER_HEADER, Code
from chatd.core.types import Role
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.chat import Chat
from chatd.server.errors import (
    CallerError,
    NodeError,
    NoMaster,
    OverLimit,
    RequestRefused,
    SessionEnded,
)
from chatd.server.store import StoredMessage

log = logging.getLogger(__name__)

T = TypeVar("T")
if TYPE_CHECKING:
    from chatd.server.peers import Peers
    from chatd.server.replication import Replicator

    Ctx = grpc.aio.ServicerContext[Any, Any]


def to_proto(m: StoredMessage) -> chat_pb2.Message:
    ts = Timestamp(seconds=m.time_us // 1_000_000, nanos=(m.time_us % 1_000_000) * 1000)
    return chat_pb2.Message(
        from_=m.sender, message=m.body, message_id=m.id, time_stamp=ts, to=m.recipient
    )


async def _guard(context: Ctx, op: Awaitable[T]) -> T:
    """Runs an operation; a node that cannot write answers UNAVAILABLE."""
    try:
        return await op
    except NodeError as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        raise  # unreachable: abort raises
    except OverLimit as exc:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        raise


def _response(exc: RequestRefused) -> chat_pb2.ServerResponse:
    return chat_pb2.ServerResponse(error_code=int(exc.code), error_message=exc.message)


def _messages_error(exc: RequestRefused) -> chat_pb2.Messages:
    return chat_pb2.Messages(error_code=int(exc.code), error_message=exc.message)


class Router:
    """Where client calls go: here (None) or the master's stub."""

    def __init__(self, repl: Replicator, peers: Peers) -> None:
        self.repl = repl
        self.peers = peers

    def master_stub(self) -> chat_pb2_grpc.ClientAccountStub | None:
        c = self.repl.core
        if c.role is Role.MASTER:
            return None
        address = c.membership.addresses.get(c.master) if c.role is Role.SLAVE else None
        if not address:
            raise NoMaster("no master is reachable right now; try again shortly")
        return chat_pb2_grpc.ClientAccountStub(self.peers.channel(address))

    def master_address(self) -> str:
        c = self.repl.core
        return c.membership.addresses.get(c.master, "") if c.master else ""


def _relay_timeout(context: Ctx) -> float:
    left = context.time_remaining()
    return 30.0 if left is None else max(0.0, left)


class ClientAccountServicer(chat_pb2_grpc.ClientAccountServicer):
    def __init__(self, chat: Chat, router: Router, max_request_bytes: int) -> None:
        self.chat = chat
        self.router = router
        self.max_request_bytes = max_request_bytes

    async def _forward(self, name: str, request: Any, context: Ctx) -> Any:
        """Relays a unary call to the master when this node is not it; returns
        None when the call is to be served here. Every answer names the
        master (trailing metadata `chatd-master`) so clients can go there."""
        context.set_trailing_metadata(((MASTER_HEADER, self.router.master_address()),))
        if request.ByteSize() > self.max_request_bytes:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request larger than {self.max_request_bytes} bytes",
            )
        try:
            stub = self.router.master_stub()
        except NoMaster as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if stub is None:
            return None
        try:
            return await getattr(stub, name)(request, timeout=_relay_timeout(context))
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "")

    async def CreateAccount(
        self, request: chat_pb2.CreateAccountRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        if (relayed := await self._forward("CreateAccount", request, context)) is not None:
            return relayed  # type: ignore[no-any-return]
        try:
            await _guard(context, self.chat.create_account(request.username, request.password))
        except RequestRefused as exc:
            return _response(exc)
        return chat_pb2.ServerResponse()

    async def ListUsers(self, request: chat_pb2.Empty, context: Ctx) -> chat_pb2.Users:
        if (relayed := await self._forward("ListUsers", request, context)) is not None:
            return relayed  # type: ignore[no-any-return]
        users = [
            chat_pb2.User(username=name, status="online" if online else "offline")
            for name, online in self.chat.list_users()
        ]
        return chat_pb2.Users(user=users)

    async def Login(self, request: chat_pb2.LoginRequest, context: Ctx) -> chat_pb2.ServerResponse:
        if (relayed := await self._forward("Login", request, context)) is not None:
            return relayed  # type: ignore[no-any-return]
        try:
            sid = await _guard(context, self.chat.login(request.username, request.password))
        except RequestRefused as exc:
            return _response(exc)
        return chat_pb2.ServerResponse(session_id=sid)

    async def Send(self, request: chat_pb2.SendRequest, context: Ctx) -> chat_pb2.ServerResponse:
        if (relayed := await self._forward("Send", request, context)) is not None:
            return relayed  # type: ignore[no-any-return]
        try:
            mid = await _guard(
                context,
                self.chat.send(request.session_id, request.to, request.message, request.request_id),
            )
        except RequestRefused as exc:
            return _response(exc)
        return chat_pb2.ServerResponse(message_id=mid)

    async def GetMessages(
        self, request: chat_pb2.ReceiveRequest, context: Ctx
    ) -> chat_pb2.Messages:
        if (relayed := await self._forward("GetMessages", request, context)) is not None:
            return relayed  # type: ignore[no-any-return]
        try:
            found = await _guard(context, self.chat.get_messages(request.session_id))
        except RequestRefused as exc:
            return _messages_error(exc)
        return chat_pb2.Messages(message=[to_proto(m) for m in found])

    async def GetChat(self, request: chat_pb2.ChatRequest, context: Ctx) -> chat_pb2.Messages:
        if (relayed := await self._forward("GetChat", request, context)) is not None:
            return relayed  # type: ignore[no-any-return]
        try:
            found = await _guard(
                context,
                self.chat.get_chat(
                    request.session_id,
                    request.username,
                    request.before_message_id,
                    request.limit,
                ),
            )
        except RequestRefused as exc:
            return _messages_error(exc)
        return chat_pb2.Messages(message=[to_proto(m) for m in found])

    async def AcknowledgeReceivedMessages(
        self,
        request: chat_pb2.AcknowledgeReceivedMessagesRequest,
        context: Ctx,
    ) -> chat_pb2.ServerResponse:
        if (
            relayed := await self._forward("AcknowledgeReceivedMessages", request, context)
        ) is not None:
            return relayed  # type: ignore[no-any-return]
        try:
            await _guard(
                context, self.chat.acknowledge(request.session_id, list(request.message_ids))
            )
        except RequestRefused as exc:
            return _response(exc)
        return chat_pb2.ServerResponse()

    async def DeleteAccount(
        self, request: chat_pb2.DeleteAccountRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        if (relayed := await self._forward("DeleteAccount", request, context)) is not None:
            return relayed  # type: ignore[no-any-return]
        try:
            await _guard(context, self.chat.delete_account(request.session_id))
        except RequestRefused as exc:
            return _response(exc)
        return chat_pb2.ServerResponse()

    async def Logout(
        self, request: chat_pb2.DeleteAccountRequest, context: Ctx
    ) -> chat_pb2.ServerResponse:
        if (relayed := await self._forward("Logout", request, context)) is not None:
            return relayed  # type: ignore[no-any-return]
        try:
            await _guard(context, self.chat.logout(request.session_id))
        except RequestRefused as exc:
            return _response(exc)
        return chat_pb2.ServerResponse()

    async def Subscribe(
        self, request: chat_pb2.SubscribeRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.Message]:
        # CancelledError must propagate (a handler that swallows it leaks
        # native memory per call in grpc.aio), so only our own ends are caught.
        if request.ByteSize() > self.max_request_bytes:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "request too large")
        try:
            stub = self.router.master_stub()
        except NoMaster as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        master_md = ((MASTER_HEADER, self.router.master_address()),)
        if stub is not None:
            call: Any = stub.Subscribe(request)
            try:
                # answer only once the master has opened the stream, so a
                # client's next call cannot overtake the subscription
                await call.initial_metadata()
                await context.send_initial_metadata(master_md)
                async for m in call:
                    yield m
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
            finally:
                call.cancel()
            return
        # the subscription opens right after this, before any other event
        await context.send_initial_metadata(master_md)
        status: grpc.StatusCode | None = None
        detail = ""
        try:
            async for m in self.chat.subscribe(
                request.session_id, request.after_message_id, request.live_only
            ):
                yield to_proto(m)
        except RequestRefused as exc:
            status = (
                grpc.StatusCode.UNAUTHENTICATED
                if exc.code == Code.NOT_LOGGED_IN
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            detail = exc.message
        except SessionEnded as exc:
            status, detail = grpc.StatusCode.UNAUTHENTICATED, str(exc)
        except CallerError as exc:  # over a limit, or too slow
            status, detail = grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
        except NodeError as exc:  # the node dropped the stream
            status, detail = grpc.StatusCode.UNAVAILABLE, str(exc)
        if status is not None:
            await context.abort(status, detail)
