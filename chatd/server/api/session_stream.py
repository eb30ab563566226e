"""Connect: one stream per client session, on the node that serves it.

The first frame opens the session's deliveries (as Subscribe does); then
send frames become Sends and ack frames acknowledgements, on that session.
Each send gets one result frame when its write is acknowledged by the
cluster (or refused), possibly out of order; deliveries go out as they are
committed. A stream opened with `events` also gets typing and receipt
frames (chatd.server.chat.events, presence); a typing frame is never
answered. Frames are taken from the stream in order, and a send starts
before the next frame is read, so a client's sends are written in the order
it sent them. At most MAX_UNANSWERED sends wait for their results: beyond
that no frame is read (gRPC's flow control then holds the client), and the
outgoing frames wait in a queue of OUT_QUEUE, behind which the delivery
subscription's own bound (--subscriber-queue) ends a stream whose client
does not read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from chatd.contract import Code
from chatd.proto import chat_pb2
from chatd.server.api.handlers import Malformed
from chatd.server.api.status import End, send_result, status_of
from chatd.server.chat.events import Event, Events, TypingNotice
from chatd.server.chat.presence import Presence, TypingGate
from chatd.server.chat.rules import Chat, written
from chatd.server.chat.streams import subscribe
from chatd.server.errors import (
    CallerError,
    NodeError,
    RequestRefused,
    ServerError,
    reap,
)
from chatd.server.storage.store import Applied, StoredMessage

log = logging.getLogger(__name__)

# what a stream's own tasks may end with when it ends (a write to a call
# that ended, a refusal of a send still under way): said at debug level
EXPECTED = (grpc.aio.AioRpcError, asyncio.InvalidStateError, ServerError)
MAX_UNANSWERED = 64  # sends a stream may have waiting for their results
OUT_QUEUE = 256  # frames waiting to be written to one stream


# a frame to write, or one already encoded (the Connect handler's serializer
# passes bytes through: chatd.server.api.handlers)
Frame = chat_pb2.ServerFrame | bytes
ENCODED_KEPT = 1024  # the newest messages' delivery frames, kept encoded
# (an OrderedDict: a dict's oldest key, after many dropped before it, is
# found by walking past their empty slots)
_encoded: OrderedDict[int, tuple[StoredMessage, Any, bytes]] = OrderedDict()


def to_frame(m: StoredMessage, to_proto: Any) -> bytes:
    """The delivery frame of `m`, encoded: once for all the streams it goes
    to (a published message is one object for every stream of the node;
    a message read from the store is another object, encoded anew)."""
    got = _encoded.get(m.id)
    if got is not None and got[0] is m and got[1] is to_proto:
        return got[2]
    data: bytes = chat_pb2.ServerFrame(message=to_proto(m)).SerializeToString()
    _encoded[m.id] = (m, to_proto, data)
    if len(_encoded) > ENCODED_KEPT:
        _encoded.popitem(last=False)
    return data


def event_frame(e: Event) -> chat_pb2.ServerFrame:
    if isinstance(e, TypingNotice):
        typing = chat_pb2.Typing(from_=e.sender, peer=e.peer, room=e.room, expires_ms=e.expires_ms)
        return chat_pb2.ServerFrame(typing=typing)
    receipt = chat_pb2.Receipt(username=e.username, peer=e.peer, room=e.room, upto=e.upto)
    return chat_pb2.ServerFrame(receipt=receipt)


async def pass_events(events: Events, out: asyncio.Queue[Any]) -> None:
    """A stream's events as frames into `out`. Never holds the hub: while
    `out` is full the stream's own events queue fills, and drops the rest."""
    while True:
        await out.put(event_frame(await events.get()))


async def deliver(
    chat: Chat, open_: chat_pb2.OpenFrame, out: asyncio.Queue[Any], to_proto: Any
) -> None:
    """A session's deliveries from this node, as frames into `out`, then the
    End an error of them means (a Connect served here, or a slave's own
    deliveries of a stream it carries to the master)."""
    try:
        opened = (open_.session_id, open_.after_message_id, open_.live_only, open_.events)
        async for m in subscribe(chat, *opened):
            await out.put(to_frame(m, to_proto))
    except (RequestRefused, CallerError, NodeError) as exc:
        await out.put(status_of(exc))


class SessionStream:
    """One Connect call served here (this node is the master)."""

    def __init__(
        self,
        chat: Chat,
        to_proto: Any,
        on_result: Callable[[chat_pb2.SendResult, float], None] | None = None,
    ) -> None:
        """`on_result(result, seconds)`: told of every send's result."""
        self.on_result = on_result
        self.chat = chat
        self.to_proto = to_proto
        self.out: asyncio.Queue[Frame | End] = asyncio.Queue(OUT_QUEUE)
        self.unanswered = asyncio.Semaphore(MAX_UNANSWERED)
        self.sends: set[asyncio.Future[Applied]] = set()  # sends not answered yet
        self._behind: deque[Frame | End] = deque()  # `out` was full
        self._mover: asyncio.Task[None] | None = None
        self.closed = False  # the stream ended: frames go nowhere
        self.end = End()
        self.broken: End | None = None  # a send failed for the node's sake: read no more
        self.presence = Presence(chat)
        self.gate = TypingGate()

    async def run(
        self, open_: chat_pb2.OpenFrame, frames: AsyncIterator[Any], carried: bool = False
    ) -> AsyncIterator[Frame]:
        """The frames to write, until the stream ends; then `self.end` says
        how (a status to end the call with, or OK). (A stream a slave
        carries, whose deliveries it serves, is counted online by the
        servicer before the stream opens; `carried`: such a stream, which
        takes typing here and its receipts from the slave.)"""
        session_id = open_.session_id
        user = self.chat.session(session_id).username  # RequestRefused: not logged in
        tasks = [asyncio.create_task(self._read(session_id, frames))]
        if not open_.sends_only:
            tasks.append(asyncio.create_task(deliver(self.chat, open_, self.out, self.to_proto)))
        events = None
        if open_.events and (carried or not open_.sends_only):
            events = self.chat.hub.open_events(user, typing=True, receipts=not carried)
            tasks.append(asyncio.create_task(pass_events(events, self.out)))
        try:
            while True:
                item = await self.out.get()
                if isinstance(item, End):
                    self.end = item
                    return
                yield item
        finally:
            self.closed = True
            if events is not None:
                self.chat.hub.close_events(events)
            if self._mover is not None:
                tasks.append(self._mover)
            for task in tasks:
                task.cancel()
            await reap(tasks, log, "Connect stream", EXPECTED)

    async def _read(self, session_id: str, frames: AsyncIterator[Any]) -> None:
        try:
            async for frame in frames:
                if self.broken is not None:
                    return
                if isinstance(frame, Malformed):
                    await self.out.put(
                        End(grpc.StatusCode.INVALID_ARGUMENT, "a frame that is not a ClientFrame")
                    )
                    return
                kind = frame.WhichOneof("frame")
                if kind == "send":
                    await self.unanswered.acquire()
                    self._send(session_id, frame.send)  # queued before the next frame
                elif kind == "ack":
                    await self.chat.acknowledge(session_id, list(frame.ack.message_ids))
                elif kind == "typing":
                    self._typing(session_id, frame.typing)
                    if (wait := self.gate.pause(time.monotonic())) > 0:
                        await asyncio.sleep(wait)  # a flood: its client is held
                else:
                    await self.out.put(
                        End(grpc.StatusCode.INVALID_ARGUMENT, f"unexpected {kind} frame")
                    )
                    return
            # the client is done sending: answer what is under way, then end
            while self.sends:
                await asyncio.gather(*self.sends, return_exceptions=True)
            self._put(End())  # after the results (some may wait behind a full queue)
        except (RequestRefused, CallerError, NodeError) as exc:
            await self.out.put(status_of(exc))

    def _typing(self, session_id: str, f: chat_pb2.TypingFrame) -> None:
        """Passed on when its stream's gate and the typer's rights let it
        (chatd.server.chat.presence); else dropped, never answered."""
        if self.gate.allow(f.peer, f.room, time.monotonic()):
            self.presence.typing(session_id, f.peer, f.room)

    def _send(self, session_id: str, f: chat_pb2.SendFrame) -> None:
        """Queues the send's entry at once (in frame order), its result
        frame written once it is answered: a callback, no task a send."""
        start = time.perf_counter()
        try:
            if not f.request_id:
                raise RequestRefused(Code.INVALID_ARGUMENT, "a send frame needs a request_id")
            fut = self.chat.start_send(
                session_id, f.to, f.message, f.request_id, f.room, f.reply_to, f.file_id
            )
        except Exception as exc:
            self._answer(f.request_id, start, None, exc)
            return
        self.sends.add(fut)
        fut.add_done_callback(lambda done: self._answered(f.request_id, start, done))

    def _answered(self, request_id: str, start: float, fut: asyncio.Future[Applied]) -> None:
        self.sends.discard(fut)
        if fut.cancelled():  # (the stream ended first: no one to answer)
            self.unanswered.release()
            return
        try:
            message_id = written(fut.result()).message_id  # (raises what refused it)
        except Exception as exc:
            self._answer(request_id, start, None, exc)
        else:
            self._answer(request_id, start, message_id, None)

    def _answer(
        self, request_id: str, start: float, message_id: int | None, exc: Exception | None
    ) -> None:
        result = chat_pb2.SendResult(request_id=request_id)
        if exc is None:
            result.message_id = message_id or 0
        else:
            if not isinstance(exc, (CallerError, NodeError)):
                # a bug in apply (the writer refused this entry only)
                log.error("send frame %r failed", request_id, exc_info=exc)
            end = send_result(result, exc)  # chatd.server.api.status
            if isinstance(exc, NodeError):
                # this node cannot write now: no later frame of this stream may
                # be written before the client sends this one again (elsewhere,
                # or here once the stream is open again), so the stream ends
                self.broken = end
        self.unanswered.release()
        if self.on_result is not None:
            self.on_result(result, time.perf_counter() - start)
        self._put(chat_pb2.ServerFrame(result=result))
        if self.broken is not None:
            self._put(self.broken)

    def _put(self, item: Frame | End) -> None:
        """Into `out` without waiting; behind a full queue (a client that
        does not read), in order after what already waits there."""
        if self.closed:  # a send answered after the stream ended: no one reads
            return
        if self._behind or self.out.full():
            self._behind.append(item)
            if self._mover is None:
                self._mover = asyncio.get_running_loop().create_task(self._move())
        else:
            self.out.put_nowait(item)

    async def _move(self) -> None:
        try:
            while self._behind:
                await self.out.put(self._behind[0])
                self._behind.popleft()
        finally:
            self._mover = None
