"""A page's calls, run by the client servicer: a unary call by its RPC name
(a 1:1 mapping of the ClientAccount service's unary RPCs), and a Connect
session stream whose frames come from the page.

No chat rule lives here: the servicer relays to the master, applies the
limits and throttles (keyed by the page's address), and maps every refusal
to the status a gRPC client would get; this module turns that status into
the JSON the page reads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from chatd.proto import chat_pb2
from chatd.server.errors import BadMessage
from chatd.server.web.codec import client_frame, from_json, server_frame_json, to_json
from chatd.server.web.context import WebContext, metadata_json

log = logging.getLogger(__name__)

SERVICE = chat_pb2.DESCRIPTOR.services_by_name["ClientAccount"]
# name -> request message class, for every unary RPC of the client service
UNARY: dict[str, Any] = {
    m.name: getattr(chat_pb2, m.input_type.name)
    for m in SERVICE.methods
    if not m.client_streaming and not m.server_streaming
}
STREAM_QUEUE = 64  # a stream's frames from the page not yet read by the servicer
END = object()  # the page is done sending on a stream


def status_json(code: grpc.StatusCode, details: str, trailers: Any = ()) -> dict[str, Any]:
    return {"code": code.name, "details": details, "metadata": metadata_json(trailers)}


class Gateway:
    """The client servicer as the pages call it."""

    def __init__(self, servicer: Any) -> None:
        self.servicer = servicer

    def request(self, name: Any, value: Any) -> Message:
        """The request of unary call `name` from its JSON; BadMessage for a
        name or a request that is no call."""
        cls = UNARY.get(name) if isinstance(name, str) else None
        if cls is None:
            raise BadMessage(f"no call named {str(name)[:64]!r}")
        request: Message = from_json({} if value is None else value, cls)
        return request

    async def call(self, name: str, request: Message, peer: str) -> dict[str, Any]:
        """The answer to unary call `name`: {"response", "metadata"} or
        {"error"}."""
        context = WebContext(peer)
        try:
            response = await getattr(self.servicer, name)(request, context)
        except grpc.aio.AbortError:  # (the context holds the status, as grpc's does)
            return {"error": context.ended()}
        except Exception:
            log.exception("web call %s failed", name)
            return {"error": status_json(grpc.StatusCode.INTERNAL, f"{name} failed")}
        return {"response": to_json(response), "metadata": metadata_json(context.trailing)}


class Stream:
    """One Connect stream of a page: `feed` the page's frames in, and the
    servicer's frames go out through `emit`, then one end."""

    def __init__(
        self, gateway: Gateway, stream_id: int, emit: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> None:
        self.gateway = gateway
        self.id = stream_id
        self.emit = emit
        self.frames: asyncio.Queue[Any] = asyncio.Queue(STREAM_QUEUE)

    async def feed(self, value: Any) -> None:
        """One more frame from the page (BadMessage: not a ClientFrame)."""
        await self.frames.put(client_frame(value))

    async def close(self) -> None:
        await self.frames.put(END)

    async def _incoming(self) -> AsyncIterator[Any]:
        while (frame := await self.frames.get()) is not END:
            yield frame

    async def run(self, opening: chat_pb2.OpenFrame, peer: str) -> None:
        """Serves the stream until it ends, and tells the page how."""

        async def opened(metadata: Any) -> None:
            await self.emit({"id": self.id, "opened": {"metadata": metadata_json(metadata)}})

        context = WebContext(peer, timeout=None, on_initial=opened)
        await self.frames.put(chat_pb2.ClientFrame(open=opening))
        end = {"code": "OK", "details": "", "metadata": {}}
        try:
            async for frame in self.gateway.servicer.Connect(self._incoming(), context):
                if type(frame) is bytes:  # a delivery, encoded once for gRPC's streams
                    frame = chat_pb2.ServerFrame.FromString(frame)
                await self.emit({"id": self.id, "frame": server_frame_json(frame)})
        except grpc.aio.AbortError:
            end = context.ended()
        except Exception:
            log.exception("web Connect stream failed")
            end = status_json(grpc.StatusCode.INTERNAL, "the stream failed")
        await self.emit({"id": self.id, "end": end})
