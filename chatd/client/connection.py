"""The client library's one Connect stream per session: sends and deliveries.

`Connection` keeps one Connect stream open for a session while it has work:
sends waiting for their results, or a reader of deliveries (`subscribe()`
or `inbox()`). Each send is written as a frame as soon as it is made,
without waiting for the results of those before it (the concurrent sends of
a session are all in flight at once on its one stream, written in the order
made; the node answers each by request id); `send()` returns when the
frame's result arrives. Deliveries go to the reader, which
attaches with a function giving the last id it has seen; the stream is then
opened again with deliveries after that id (without a reader it is opened
for sends only).

When the stream breaks (a node died, a failover), it is opened again, on
the next node when this one failed, with deliveries after the last id the
reader saw, and every send still unanswered is written again in the order
first sent, with its request id: the node stores each once and answers it
with the same message id, so every send is stored exactly once and in
order, and the reader sees every message once (it drops ids it has seen).

Where: any node serves Connect (a slave serves the deliveries from its own
replica and carries the sends to the master), so the stream stays at the
node it opened on, which is one of the addresses given picked at random:
a cluster's sessions spread over its nodes instead of all fanning out from
the master (`ChatClient(spread=False)` opens it where calls go, the master
once one answered). It moves on only when that node fails.

Events: a stream with a reader opens with `events`: its edits, deletions
and reactions come to the reader as messages do, and its typing and
receipt frames go to `on_event` (never waiting: the caller keeps it quick;
None: dropped). A typing frame (`typing()`) goes only
on a stream that is open now; else it is dropped, as it is best effort.

A server without Connect (UNIMPLEMENTED) makes `send()` and the reader
raise NoStream: the caller falls back to the unary Send and Subscribe (as
does a second reader of the same session while the first one reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from chatd.client.errors import (
    CallFailed,
    ChatError,
    NotLoggedIn,
    RefusedForNow,
    Unavailable,
    error_for,
)
from chatd.client.failover import Backoff, Failover, refused
from chatd.contract import Code, status_named
from chatd.proto import chat_pb2

log = logging.getLogger(__name__)

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
READER_QUEUE = 1000  # deliveries read but not yet taken by the reader


class NoStream(Exception):
    """This server has no Connect: use the unary Send and Subscribe."""


OPENED = object()  # to the reader: a stream opened (an inbox reads the unread now)


@dataclass(eq=False)
class Reader:
    """One reader's deliveries. Taking a frame from the stream never waits
    for the reader (a send's result may be right behind it): beyond
    READER_QUEUE waiting, deliveries are dropped (every one, so that none is
    skipped) until the reader has taken the rest and the stream is opened
    again after the last one it saw."""

    last: Callable[[], int]  # the last message id the reader saw
    unread: bool  # an inbox: live only while nothing was seen (GetMessages does the rest)
    items: deque[Any] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    overflowed: bool = False

    def push(self, item: Any) -> None:
        if self.overflowed:
            return
        if len(self.items) >= READER_QUEUE:
            self.overflowed = True
        else:
            self.items.append(item)
        self.ready.set()

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self.ready.set()


class Connection:
    def __init__(self, failover: Failover, session_id: str, *, spread: bool = True) -> None:
        """`spread`: the stream opens at one of the addresses picked at
        random (else at the node calls go to)."""
        self.failover = failover
        self.session_id = session_id
        # unanswered sends, in the order sent: request id -> (frame, its future)
        self.pending: dict[str, tuple[chat_pb2.ClientFrame, asyncio.Future[int]]] = {}
        # request ids of sends to write, and typing frames
        self.outbox: asyncio.Queue[str | chat_pb2.ClientFrame] = asyncio.Queue()
        self.reader: Reader | None = None
        self.unsupported = False
        self.address = random.choice(failover.addresses) if spread else failover.address
        self.open_at = ""  # the address of the stream while it is open
        self._reopen = asyncio.Event()
        self._answered = False  # a send was answered since the last refusal
        self._task: asyncio.Task[None] | None = None
        self.closed: BaseException | None = None
        self.on_event: Callable[[chat_pb2.ServerFrame], None] | None = None

    # -- sends --

    async def send(
        self,
        to: str,
        body: str,
        request_id: str,
        room: str = "",
        reply_to: int = 0,
        file_id: str = "",
    ) -> int:
        """The message id; NoStream: use the unary Send (with this request
        id); Unavailable after the client's retry time."""
        if self.unsupported:
            raise NoStream()
        if self.closed is not None:
            raise self.closed
        waiting = self.pending.get(request_id)
        if waiting is not None:  # the same send, under way: its answer is this one's
            return await asyncio.shield(waiting[1])
        frame = chat_pb2.ClientFrame(
            send=chat_pb2.SendFrame(
                request_id=request_id,
                to=to,
                message=body,
                room=room,
                reply_to=reply_to,
                file_id=file_id,
            )
        )
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = (frame, fut)
        self.outbox.put_nowait(request_id)
        self._start()
        try:
            # as long as the unary path would try (retry_for, and the last
            # attempt's timeout)
            async with asyncio.timeout(self.failover.retry_for + self.failover.timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            raise Unavailable("no node answered the send in time") from None
        finally:
            if self.pending.get(request_id, (None, None))[1] is fut:
                del self.pending[request_id]

    def typing(self, peer: str, room: str) -> bool:
        """Writes a typing frame on the stream if it is open (False: not)."""
        if not self.open_at or self.closed is not None:
            return False
        frame = chat_pb2.TypingFrame(peer=peer, room=room)
        self.outbox.put_nowait(chat_pb2.ClientFrame(typing=frame))
        return True

    # -- deliveries --

    async def deliveries(
        self, last: Callable[[], int], unread: bool
    ) -> AsyncGenerator[tuple[chat_pb2.Message | None, bool], None]:
        """(message, live) pairs for one reader; (None, False) each time a
        stream opened. Ids may repeat after a reopening: the reader drops
        those at or below `last()`. Raises NoStream, NotLoggedIn or
        Unavailable."""
        if self.unsupported or self.reader is not None:  # (a second reader: Subscribe)
            raise NoStream()
        if self.closed is not None:
            raise self.closed
        reader = self.reader = Reader(last, unread)
        self._reopen.set()
        self._start()
        try:
            while True:
                if reader.items:
                    item = reader.items.popleft()
                    yield (None, False) if item is OPENED else (item, True)
                elif reader.error is not None:
                    raise reader.error
                else:
                    if reader.overflowed:  # all taken: open again after the last one
                        self._reopen.set()
                    reader.ready.clear()
                    await reader.ready.wait()
        finally:
            if self.reader is reader:
                self.reader = None
                self._reopen.set()  # sends only now, or nothing

    # -- the stream --

    async def close(self, exc: BaseException | None = None) -> None:
        """Ends the stream; whatever waits gets `exc` (Unavailable: closed)."""
        exc = exc or Unavailable("the client was closed")
        self.closed = exc
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail(exc, reader=True)

    def _start(self) -> None:
        if self.closed is None and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run())

    def _fail(self, exc: BaseException, reader: bool = False) -> None:
        """Fails every waiting send (and the reader, when asked)."""
        for _, fut in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(exc)
        self.pending.clear()
        if reader and self.reader is not None:
            self.reader.fail(exc)

    def _opening(self) -> chat_pb2.ClientFrame:
        reader = self.reader
        if reader is None:
            return chat_pb2.ClientFrame(
                open=chat_pb2.OpenFrame(session_id=self.session_id, sends_only=True)
            )
        after = reader.last()
        return chat_pb2.ClientFrame(
            open=chat_pb2.OpenFrame(
                session_id=self.session_id,
                after_message_id=after,
                live_only=reader.unread and after == 0,
                events=True,
            )
        )

    async def _run(self) -> None:
        """Keeps a stream open while there is work, failing over like a call."""
        nodes = self.failover
        backoff = Backoff(nodes)
        # sends refused by a node that is up: the stream opens each time, so
        # this run counts from the first refusal until a send is answered
        refusals = Backoff(nodes)
        while self.pending or self.reader is not None:
            address, losses = self.address, nodes.losses
            self._reopen.clear()
            call: Any = nodes.stub(address).Connect()  # type: ignore[call-arg]
            try:
                await call.write(self._opening())
                nodes.note_master(await call.initial_metadata())
                if not call.done():  # (a stream that failed to open ends at once)
                    self.open_at = address
                    backoff.succeeded()
                    if losses == nodes.losses:
                        nodes.stream_opened(address)
                reader = self.reader  # (the one this stream was opened for)
                if reader is not None:
                    reader.overflowed = False  # (opened after the last one it saw)
                    reader.push(OPENED)
                # everything unanswered, in order, then what comes
                self.outbox = asyncio.Queue()
                for rid in self.pending:
                    self.outbox.put_nowait(rid)
                await self._serve(call, reader)
                if self._reopen.is_set():
                    continue  # the reader came or went: open again at once
                if self.pending or self.reader is not None:
                    await asyncio.sleep(backoff.delay)  # the node ended the stream
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                nodes.note_master(exc.trailing_metadata())
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    self.unsupported = True
                    self._fail(NoStream(), reader=True)
                    return
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    ended = NotLoggedIn(Code.NOT_LOGGED_IN, exc.details() or "not logged in")
                    self._fail(ended, reader=True)
                    return
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (
                    exc.details() or ""
                ):
                    # a frame over the node's request limit, refused by gRPC
                    # (which ends the stream): each waiting send goes as a
                    # unary Send, so only the one at fault fails
                    self._fail(NoStream())
                elif refused(exc):
                    # the node is up and refuses the sends for now: tried
                    # there again; refused all along, they fail with its
                    # reason (the deliveries go on)
                    if self._answered:
                        refusals.succeeded()
                    self._answered = False
                    try:
                        refusals.failed(address, exc, lost=False)
                    except RefusedForNow as error:
                        self._fail(error)
                        refusals.succeeded()
                    await refusals.wait()
                    continue
                else:
                    # (RESOURCE_EXHAUSTED: a reader too slow, which opens
                    # again at once, or too many streams of this user)
                    lost = code != grpc.StatusCode.RESOURCE_EXHAUSTED
                    try:
                        lost_master = backoff.failed(address, exc, lost=lost)
                    except ChatError as error:
                        self._fail(error, reader=True)
                        return
                    # (a stream that was open here and lost the master
                    # behind this node opens here again: it answers)
                    if lost and not (lost_master and self.open_at == address):
                        self.address = nodes.addresses[nodes.next_after(address)]
                await backoff.wait()
            finally:
                self.open_at = ""
                call.cancel()

    async def _serve(self, call: Any, reader: Reader | None) -> None:
        """Writes sends and reads frames until the stream ends (raising its
        error) or the reader changes."""
        writer = asyncio.create_task(self._write(call))
        reading = asyncio.create_task(self._read(call, reader))
        reopen = asyncio.create_task(self._reopen.wait())
        try:
            await asyncio.wait((reading, reopen), return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                reading.result()  # the stream's error
        finally:
            for task in (writer, reading, reopen):
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
                    # a write to a call that ended raises InvalidStateError;
                    # the reading's error was taken above
                    log.debug("Connect stream: %s ended with %r (the stream ended)", task, exc)
                except Exception:
                    log.exception("Connect stream: %s raised", task)

    async def _write(self, call: Any) -> None:
        outbox = self.outbox
        while True:
            rid = await outbox.get()
            if isinstance(rid, chat_pb2.ClientFrame):  # typing
                await call.write(rid)
                continue
            entry = self.pending.get(rid)
            if entry is not None:
                await call.write(entry[0])

    async def _read(self, call: Any, reader: Reader | None) -> None:
        async for frame in call:
            if frame.HasField("result"):
                self._answer(frame.result)
            elif frame.HasField("typing") or frame.HasField("receipt"):
                if self.on_event is not None:
                    self.on_event(frame)
            elif reader is not None and self.reader is reader:
                reader.push(frame.message)

    def _answer(self, result: chat_pb2.SendResult) -> None:
        """Hands a result to its send. UNAVAILABLE leaves it waiting: the
        node ends the stream, and it is sent again on the next one."""
        entry = self.pending.get(result.request_id)
        if entry is None or result.status == UNAVAILABLE:
            return  # (None: answered already, a frame written twice)
        fut = entry[1]
        if fut.done():
            return
        self._answered = True
        if result.status:
            fut.set_exception(CallFailed(status_named(result.status), result.error_message))
        elif result.error_code:
            fut.set_exception(error_for(result.error_code, result.error_message))
        else:
            fut.set_result(int(result.message_id))
