"""The client library's sends over one Connect stream.

`StreamSender` keeps one Connect stream open for a session and writes each
send on it as a frame; `send()` returns when the frame's result arrives. The
stream is opened for sends only (`sends_only`: the library's deliveries
come on Subscribe). When the stream
breaks (a node died, a failover), it is opened again on the next address,
the way every call of the library fails over, and every send still
unanswered is written again, in the order first sent, with its request id:
the node stores each once and answers it with the same message id, so
every send is stored exactly once and in order. A server without Connect
(UNIMPLEMENTED) makes `send()` raise NoStream, and the caller falls back to
the unary Send with the same request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import grpc

from chatd.client.errors import CallFailed, NotLoggedIn, Unavailable, error_for
from chatd.contract import Code, status_named
from chatd.proto import chat_pb2

if TYPE_CHECKING:
    from chatd.client.api import ChatClient

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


class NoStream(Exception):
    """This server has no Connect: use the unary Send."""


class StreamSender:
    def __init__(self, client: ChatClient, session_id: str) -> None:
        self.client = client
        self.session_id = session_id
        # unanswered sends, in the order sent: request id -> (frame, its future)
        self.pending: dict[str, tuple[chat_pb2.ClientFrame, asyncio.Future[int]]] = {}
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.unsupported = False
        self._task: asyncio.Task[None] | None = None

    async def send(self, to: str, body: str, request_id: str) -> int:
        """The message id; NoStream: use the unary Send (with this request
        id); Unavailable after the client's retry time."""
        if self.unsupported:
            raise NoStream()
        waiting = self.pending.get(request_id)
        if waiting is not None:  # the same send, under way: its answer is this one's
            return await asyncio.shield(waiting[1])
        frame = chat_pb2.ClientFrame(
            send=chat_pb2.SendFrame(request_id=request_id, to=to, message=body)
        )
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = (frame, fut)
        self.outbox.put_nowait(request_id)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            # as long as the unary path would try (retry_for, and the last
            # attempt's timeout)
            async with asyncio.timeout(self.client.retry_for + self.client.timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            raise Unavailable("no node answered the send in time") from None
        finally:
            if self.pending.get(request_id, (None, None))[1] is fut:
                del self.pending[request_id]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail(Unavailable("the client was closed"))

    def _fail(self, exc: BaseException) -> None:
        for _, fut in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(exc)

    async def _run(self) -> None:
        """Keeps a stream open while sends wait, failing over like a call."""
        from chatd.client.api import RETRY_FIRST_DELAY, RETRY_MAX_DELAY, ConnectionEvent

        client = self.client
        delay = RETRY_FIRST_DELAY
        failing_since: float | None = None
        redirect = True
        while self.pending:
            address, losses = client.address, client._losses
            call: Any = client._stub(address).Connect()  # type: ignore[call-arg]
            try:
                opening = chat_pb2.OpenFrame(session_id=self.session_id, sends_only=True)
                await call.write(chat_pb2.ClientFrame(open=opening))
                master = client._note_master(await call.initial_metadata())
                if redirect and client.address != address:
                    redirect = False  # a relay: once, open the stream at the master itself
                    continue
                redirect = True
                if master is not None:  # (a stream that failed to open names none)
                    client._reached(address, master, losses)
                # everything unanswered, in order, then what comes
                self.outbox = asyncio.Queue()
                for rid in self.pending:
                    self.outbox.put_nowait(rid)
                writer = asyncio.create_task(self._write(call))
                try:
                    async for frame in call:
                        if frame.HasField("result") and self._answer(frame.result):
                            failing_since, delay = None, RETRY_FIRST_DELAY  # a send went through
                finally:
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await writer
                if self.pending:
                    await asyncio.sleep(delay)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                client._note_master(exc.trailing_metadata())
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    self.unsupported = True
                    self._fail(NoStream())
                    return
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    self._fail(NotLoggedIn(Code.NOT_LOGGED_IN, exc.details() or "not logged in"))
                    return
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    # a frame over the node's request limit (which ends the
                    # stream), or too many streams: each waiting send goes as
                    # a unary Send, so only the one at fault fails
                    self._fail(NoStream())
                    return
                client._lost(address, exc)
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > client.retry_for:
                    client.on_connection(ConnectionEvent("gave-up", address, code.name))
                    self._fail(Unavailable(f"no node answered: {exc.details()}"))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)
            finally:
                call.cancel()

    async def _write(self, call: Any) -> None:
        outbox = self.outbox
        while True:
            rid = await outbox.get()
            entry = self.pending.get(rid)
            if entry is not None:
                await call.write(entry[0])

    def _answer(self, result: chat_pb2.SendResult) -> bool:
        """Hands a result to its send; True when the node took it (stored or
        refused). UNAVAILABLE leaves it waiting: the node ends the stream,
        and it is sent again on the next one."""
        entry = self.pending.get(result.request_id)
        if entry is None or result.status == UNAVAILABLE:
            return False  # (None: answered already, a frame written twice)
        fut = entry[1]
        if fut.done():
            return True
        if result.status:
            fut.set_exception(CallFailed(status_named(result.status), result.error_message))
        elif result.error_code:
            fut.set_exception(error_for(result.error_code, result.error_message))
        else:
            fut.set_result(int(result.message_id))
        return True
