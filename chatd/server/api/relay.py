"""A client's stream that a slave carries to the master: a Connect, frames
both ways (and, when the slave serves the session's deliveries itself, its
own deliveries merged in), or a Subscribe; and what the client is told when
the master's side ends one (`lost`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from chatd.contract import DELIVERED_HEADER, MASTER_HEADER, MASTER_LOST_HEADER, REFUSED_HEADER
from chatd.core.types import Role
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.api.handlers import Malformed
from chatd.server.api.router import Router
from chatd.server.api.session_stream import EXPECTED, OUT_QUEUE, Frame, deliver, pass_events
from chatd.server.api.status import End, end_call, relayed
from chatd.server.api.unary import to_proto
from chatd.server.chat.presence import TypingGate
from chatd.server.chat.rules import Chat
from chatd.server.errors import RequestRefused, reap

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)

TYPING_SINCE = 4  # the cluster protocol whose masters take typing frames
BAD_FRAME = object()  # (a relayed Connect's client sent a frame that does not parse)


def serves_deliveries(chat: Chat, first: chat_pb2.ClientFrame) -> bool:
    """Whether this slave serves the session's deliveries itself: when
    it asks for them and its session is known here (a replica that
    lags, as a slave outside a majority may, leaves them to the master)."""
    if first.open.sends_only:
        return False
    try:
        chat.session(first.open.session_id)
    except RequestRefused:
        return False
    return True


def lost(router: Router, exc: grpc.aio.AioRpcError, route: tuple[Role, str]) -> End:
    """The end of a relayed stream the master's side ended: its status, and
    for UNAVAILABLE trailing metadata naming the master (MASTER_LOST_HEADER),
    the node the client lost (this one still answers), unless the master
    answered that it is up and refuses (REFUSED_HEADER, passed on)."""
    master = router.for_clients(route)
    if exc.code() != grpc.StatusCode.UNAVAILABLE or not master:
        return relayed(exc, ())
    told: Any = exc.trailing_metadata() or ()
    if any(key == REFUSED_HEADER for key, _ in told):
        return relayed(exc, ((REFUSED_HEADER, "1"),))
    return relayed(exc, ((MASTER_LOST_HEADER, master),))


async def relay_connect(
    chat: Chat,
    router: Router,
    first: chat_pb2.ClientFrame,
    frames: AsyncIterator[Any],
    context: Ctx,
    route: tuple[Role, str],
    meta: tuple[tuple[str, str], ...],
) -> AsyncIterator[Frame]:
    """Carries the stream to the master (`meta`: the call's metadata), with
    the deliveries served here from this node's replica when it can
    (serves_deliveries: the master then takes sends and acknowledgements
    only, and counts the user online). Typing frames within the stream's
    bound go to the master (which checks them and passes typing down the
    streams of those who should see it, carried ones included); with
    `events`, a stream whose deliveries are served here gets its receipts
    here too, from this node's replica (the master sends it typing only)."""
    local = serves_deliveries(chat, first)
    # (the session was found just now, by serves_deliveries)
    events_of = first.open.events and local
    receipts_of = chat.session(first.open.session_id).username if events_of else ""
    if local:
        meta = (*meta, (DELIVERED_HEADER, "1"))
        opening = chat_pb2.ClientFrame()
        opening.CopyFrom(first)
        opening.open.sends_only = True
        first = opening
    # the master's frames pass through undecoded (bytes): to the client as they came
    call: Any = router.connect_call(route[1])(metadata=meta)
    # frames from the master or this node's deliveries, an error that
    # ended either, None at the master's end, or BAD_FRAME when the
    # client sent a frame that does not parse
    down: asyncio.Queue[Any] = asyncio.Queue(OUT_QUEUE)

    gate = TypingGate()

    async def up() -> None:
        await call.write(first)
        async for frame in frames:
            if isinstance(frame, Malformed):
                await down.put(BAD_FRAME)
                return
            if frame.WhichOneof("frame") == "typing":
                t = frame.typing
                # (a master of protocol 3 would end the stream for it)
                if chat.store.cluster_version < TYPING_SINCE or not gate.allow(
                    t.peer, t.room, loop.time()
                ):
                    if (wait := gate.pause(loop.time())) > 0:
                        await asyncio.sleep(wait)  # a flood: its client is held
                    continue
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

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(up()), asyncio.create_task(from_master())]
    events = None
    try:
        router.learn(route[1], await call.initial_metadata())
        await context.send_initial_metadata(((MASTER_HEADER, router.for_clients(route)),))
        if local and not call.done():  # the master took the session (see Connect)
            tasks.append(asyncio.create_task(deliver(chat, opening.open, down, to_proto)))
            if receipts_of:
                events = chat.hub.open_events(receipts_of, typing=False, receipts=True)
                tasks.append(asyncio.create_task(pass_events(events, down)))
        while (item := await down.get()) is not None:
            if item is BAD_FRAME:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "a frame that is not a ClientFrame"
                )
            if isinstance(item, grpc.aio.AioRpcError):
                await end_call(context, lost(router, item, route))
            if isinstance(item, End):
                if item.status is not None:
                    await end_call(context, item)
                return
            yield item
    except grpc.aio.AioRpcError as exc:  # (at the opening)
        await end_call(context, lost(router, exc, route))
    finally:
        if events is not None:
            chat.hub.close_events(events)
        for task in tasks:
            task.cancel()
        # (the stream's own ending is already decided; a task's error, a
        # bug included, must not replace it: it is logged)
        await reap(tasks, log, "relayed Connect stream", EXPECTED)
        call.cancel()


async def relay_subscribe(
    router: Router,
    stub: chat_pb2_grpc.ClientAccountStub,
    request: chat_pb2.SubscribeRequest,
    context: Ctx,
    route: tuple[Role, str],
) -> AsyncIterator[chat_pb2.Message]:
    """Carries a Subscribe to the master."""
    call: Any = stub.Subscribe(request, metadata=router.metadata)
    try:
        # answer only once the master has opened the stream, so a
        # client's next call cannot overtake the subscription
        router.learn(route[1], await call.initial_metadata())
        await context.send_initial_metadata(((MASTER_HEADER, router.for_clients(route)),))
        async for m in call:
            yield m
    except grpc.aio.AioRpcError as exc:
        await end_call(context, lost(router, exc, route))
    finally:
        call.cancel()
