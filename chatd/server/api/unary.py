"""The client service's unary RPCs: one decorator that relays a call to the
master or serves it here, turning the chat layer's refusals into error
codes (chatd.server.api.client_service, chatd.server.api.room_service)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from chatd.proto import chat_pb2
from chatd.server.api.status import abort
from chatd.server.errors import NodeError, OverLimit, RequestRefused
from chatd.server.storage.rows import FileRef
from chatd.server.storage.store import StoredMessage

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


def to_proto(m: StoredMessage) -> chat_pb2.Message:
    ts = Timestamp(seconds=m.time_us // 1_000_000, nanos=(m.time_us % 1_000_000) * 1000)
    out = chat_pb2.Message(
        from_=m.sender,
        message=m.body,
        message_id=m.id,
        time_stamp=ts,
        to=m.recipient,
        room=m.room,
    )
    if m.kind:  # an event (chatd.server.storage.edits)
        out.kind = m.kind  # type: ignore[assignment]
        out.target_id = m.target_id
        return out
    if m.reply_to or m.edited or m.deleted or m.reactions:
        out.reply_to, out.edited, out.deleted = m.reply_to, m.edited, m.deleted
        for emoji, users in m.reactions:
            out.reactions.add(emoji=emoji, users=users)
    if m.file is not None and not m.deleted:
        out.file.CopyFrom(file_ref(m.file))
    return out


def file_ref(f: FileRef) -> chat_pb2.FileRef:
    return chat_pb2.FileRef(
        file_id=f.file_id,
        name=f.name,
        content_type=f.content_type,
        size=f.size,
        has_thumbnail=f.has_thumbnail,
        sha256=f.sha256,
    )


def unary(answer: Callable[..., Any] | None = None) -> Callable[[Handler], Handler]:
    """Makes a handler that only runs the chat operation into the unary RPC
    of its name: relayed as it is to the master when this node is not it;
    served here, a refusal is answered with the RPC's response message
    `answer` carrying its `error_code` and `error_message` (None: the call
    ends with the refusal's status, chatd.server.api.status), going over a
    limit RESOURCE_EXHAUSTED, and a node that cannot serve UNAVAILABLE."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def rpc(self: Any, request: Any, context: Ctx) -> Any:
            if (relayed := await self._forward(rpc.__name__, request, context)) is not None:
                return relayed
            try:
                return await handler(self, request, context)
            except RequestRefused as exc:
                if answer is None:  # no error code to carry it: a status
                    await abort(context, exc)
                return answer(error_code=int(exc.code), error_message=exc.message)
            except (OverLimit, NodeError) as exc:
                await abort(context, exc)  # chatd.server.api.status

        return cast(Handler, rpc)

    return wrap
