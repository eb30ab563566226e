"""One page's WebSocket: its messages read and answered (chatd web
protocol, docs/web.md), its calls and session streams run by the gateway,
and what a socket that sends nothing valid gets: closed.

A socket's first message comes within --first-frame-timeout, and every
message is one JSON object; one that is not gets an error message, and a
socket whose first message is not valid, or that sends MAX_INVALID invalid
ones in a row, is closed (1008, policy violation). A socket holds at most
MAX_STREAMS streams and MAX_CALLS calls under way: beyond that its messages
wait, unread (TCP then holds the page), as gRPC's flow control would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from chatd.proto import chat_pb2
from chatd.server.errors import BadMessage, reap
from chatd.server.web.codec import from_json
from chatd.server.web.gateway import Gateway, Stream

log = logging.getLogger(__name__)

PROTOCOL = 1
MAX_CALLS = 16  # unary calls under way on one socket
MAX_STREAMS = 4  # session streams open on one socket
MAX_INVALID = 16  # invalid messages in a row before the socket is closed
# ids of streams that ended lately: a frame the page wrote for one before
# it read the end is dropped (the end tells the page), not answered
ENDED_KEPT = 64
HELLO_EVERY_S = 2.0
MAX_ID = 2**53 - 1  # ids are JavaScript numbers


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class Session:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        gateway: Gateway,
        peer: str,
        hello: Callable[[], dict[str, Any]],
        first_message_timeout: float,
    ) -> None:
        self.ws = ws
        self.gateway = gateway
        self.peer = peer
        self.hello = hello
        self.first_message_timeout = first_message_timeout
        self.writing = asyncio.Lock()  # one message at a time on the socket
        self.calls = asyncio.Semaphore(MAX_CALLS)
        self.streams: dict[int, Stream] = {}
        self.ended: dict[int, None] = {}  # (ordered: the oldest first)
        self.tasks: set[asyncio.Task[None]] = set()
        # what a message may hold, and who handles it
        self.handlers = {
            "call": self._call,
            "connect": self._connect,
            "frame": self._frame,
            "close": self._close,
        }

    async def emit(self, message: dict[str, Any]) -> None:
        """Writes one message (the caller waits while the socket's buffer is
        full: a page that does not read holds its streams, as gRPC's flow
        control would). A socket that closed takes nothing: the read loop
        ends the session."""
        async with self.writing:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError):  # (it closed under the write)
                    await self.ws.send_str(_dumps(message))

    def _spawn(self, coro: Any) -> None:
        """Runs a call or a stream; one that fails is a bug, logged."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("web socket from %s: a task failed", self.peer, exc_info=exc)

    async def run(self) -> None:
        try:
            hello = {**self.hello(), "protocol": PROTOCOL}
            await self.emit({"hello": hello})  # (before anything else)
            self._spawn(self._hellos(hello))
            await self._read()
        finally:
            tasks = list(self.tasks)
            for task in tasks:
                task.cancel()
            await reap(tasks, log, f"web socket from {self.peer}", (ConnectionError,))

    async def _hellos(self, said: dict[str, Any]) -> None:
        """The hello again whenever what it says changes (a member's origin
        learned or gone, this node's role), looked at every HELLO_EVERY_S:
        the page fails over to the origins of the latest."""
        while True:
            await asyncio.sleep(HELLO_EVERY_S)
            hello = {**self.hello(), "protocol": PROTOCOL}
            if hello != said:
                await self.emit({"hello": hello})
                said = hello

    async def _read(self) -> None:
        valid = False
        invalid = 0
        while True:
            timeout = None if valid else self.first_message_timeout
            try:
                msg = await self.ws.receive(timeout=timeout)
            except TimeoutError:
                await self._refuse("no valid message came in time")
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type is WSMsgType.ERROR:
                log.debug("web socket from %s: %s", self.peer, self.ws.exception())
                return
            try:
                if msg.type is not WSMsgType.TEXT:
                    raise BadMessage("messages are JSON text")
                await self._handle(msg.data)
            except BadMessage as exc:
                invalid += 1
                said: dict[str, Any] = {} if exc.id is None else {"id": exc.id}
                said["error"] = {"code": "INVALID_ARGUMENT", "details": str(exc)}
                await self.emit(said)
                if not valid or invalid >= MAX_INVALID:
                    await self._refuse(f"invalid message: {exc}")
                    return
                continue
            valid, invalid = True, 0

    async def _refuse(self, why: str) -> None:
        log.debug("web socket from %s closed: %s", self.peer, why)
        await asyncio.sleep(0.05)  # (the error message goes out first)
        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=why[:120].encode())

    async def _handle(self, text: str) -> None:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            raise BadMessage("not JSON") from None
        if not isinstance(message, dict):
            raise BadMessage("a message is a JSON object")
        id_ = message.get("id")
        if type(id_) is not int or not 0 < id_ <= MAX_ID:
            raise BadMessage("a message needs an id, a whole number from 1")
        kinds = [k for k in self.handlers if k in message]
        if len(kinds) != 1:
            raise BadMessage(f"a message holds one of {', '.join(self.handlers)}", id_)
        try:
            await self.handlers[kinds[0]](id_, message)
        except BadMessage as exc:
            if exc.id is None:
                exc.id = id_
            raise

    async def _call(self, id_: int, message: dict[str, Any]) -> None:
        name = message["call"]
        request = self.gateway.request(name, message.get("request"))
        await self.calls.acquire()

        async def run() -> None:
            try:
                answer = await self.gateway.call(name, request, self.peer)
            finally:
                self.calls.release()
            await self.emit({"id": id_, **answer})

        self._spawn(run())

    async def _connect(self, id_: int, message: dict[str, Any]) -> None:
        if id_ in self.streams:
            raise BadMessage(f"stream {id_} is open already", id_)
        if len(self.streams) >= MAX_STREAMS:
            raise BadMessage(f"at most {MAX_STREAMS} streams on one socket", id_)
        opening = from_json(message["connect"], chat_pb2.OpenFrame)
        stream = Stream(self.gateway, id_, self.emit)
        self.streams[id_] = stream
        self.ended.pop(id_, None)

        async def run() -> None:
            try:
                await stream.run(opening, self.peer)
            finally:
                self.streams.pop(id_, None)
                self.ended[id_] = None
                if len(self.ended) > ENDED_KEPT:
                    del self.ended[next(iter(self.ended))]

        self._spawn(run())

    def _open(self, id_: int) -> Stream | None:
        """The stream of that id; None for one that ended lately (the page
        wrote before it read the end: nothing to answer); BadMessage for
        one never opened."""
        stream = self.streams.get(id_)
        if stream is None and id_ not in self.ended:
            raise BadMessage(f"no stream {id_} is open", id_)
        return stream

    async def _frame(self, id_: int, message: dict[str, Any]) -> None:
        if (stream := self._open(id_)) is not None:
            await stream.feed(message["frame"])

    async def _close(self, id_: int, message: dict[str, Any]) -> None:
        if (stream := self._open(id_)) is not None:
            await stream.close()
