"""The client service's unary RPCs: one decorator that relays a call to the
master or serves it here, turning the chat layer's refusals into error
codes (chatd.server.api.client_service, chatd.server.api.room_service)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from chatd.contract import REFUSED_HEADER, RETRY_AFTER_HEADER
from chatd.proto import chat_pb2
from chatd.server.errors import NodeError, OverLimit, RequestRefused
from chatd.server.storage.store import StoredMessage

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


def to_proto(m: StoredMessage) -> chat_pb2.Message:
    ts = Timestamp(seconds=m.time_us // 1_000_000, nanos=(m.time_us % 1_000_000) * 1000)
    return chat_pb2.Message(
        from_=m.sender,
        message=m.body,
        message_id=m.id,
        time_stamp=ts,
        to=m.recipient,
        room=m.room,
    )


def unavailable(exc: NodeError) -> tuple[tuple[str, str], ...]:
    """The trailing metadata of the UNAVAILABLE that answers `exc`: a node
    that is up and refuses says so (REFUSED_HEADER)."""
    return ((REFUSED_HEADER, "1"),) if exc.up else ()


def unary(answer: Callable[..., Any] | None = None) -> Callable[[Handler], Handler]:
    """Makes a handler that only runs the chat operation into the unary RPC
    of its name: relayed as it is to the master when this node is not it;
    served here, a refusal is answered with the RPC's response message
    `answer` carrying its `error_code` and `error_message` (None: the
    refusal is raised), going over a limit RESOURCE_EXHAUSTED, and a node
    that cannot serve UNAVAILABLE."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def rpc(self: Any, request: Any, context: Ctx) -> Any:
            if (relayed := await self._forward(rpc.__name__, request, context)) is not None:
                return relayed
            try:
                return await handler(self, request, context)
            except RequestRefused as exc:
                if answer is None:
                    raise
                return answer(error_code=int(exc.code), error_message=exc.message)
            except OverLimit as exc:
                retry = exc.retry_after_s
                hint = () if retry is None else ((RETRY_AFTER_HEADER, str(int(retry * 1000))),)
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), hint)
            except NodeError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc), unavailable(exc))

        return cast(Handler, rpc)

    return wrap
