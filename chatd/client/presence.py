"""The client library's typing notices and read receipts (docs/clients.md),
mixed into ChatClient (chatd.client.api).

`typing(peer=...)` or `typing(room=...)`: call it on every keystroke; a
frame goes on the session's Connect stream at most once per TYPING_EVERY_S
per conversation (the node passes one a second per conversation at most,
and drops the rest). `events()` yields the typing notices and live receipts
of the conversations I am in, while my messages are read on the same
session (`inbox()` or `subscribe()`: the stream they hold open carries
them). `list_receipts()` and `share_receipts()` are unary calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chatd.client.model import Receipt, Typing
from chatd.proto import chat_pb2

if TYPE_CHECKING:
    from chatd.client.connection import Connection

TYPING_EVERY_S = 3.0  # one typing frame per conversation in this time, at most
EVENT_QUEUE = 256  # events not yet taken by the caller; beyond it the oldest go


def event_of(frame: chat_pb2.ServerFrame, now: float) -> Typing | Receipt:
    """A typing or receipt frame as the library hands it out (`now`: the
    event loop's time, from which a notice expires)."""
    if frame.HasField("typing"):
        t = frame.typing
        return Typing(t.from_, t.peer, t.room, now + t.expires_ms / 1000)
    r = frame.receipt
    return Receipt(r.username, r.upto, r.peer, r.room)


class PresenceCalls:
    if TYPE_CHECKING:
        _ok: Callable[[str, Any], Awaitable[Any]]
        _session: Callable[[], str]
        _session_connection: Callable[[], Awaitable[Connection]]
        streams: bool

    _typed: dict[tuple[str, str], float]  # conversation -> when I last said so

    async def typing(self, *, peer: str = "", room: str = "") -> bool:
        """Tells `peer`, or the members of `room`, that I am typing;
        throttled here (TYPING_EVERY_S). Whether a frame went out (none
        while no stream of this session is open, or over the throttle)."""
        if not self.streams:
            return False
        typed = self._typed
        key, now = (peer.casefold(), room.casefold()), time.monotonic()
        if now - typed.get(key, -TYPING_EVERY_S) < TYPING_EVERY_S:
            return False
        connection = await self._session_connection()
        if not connection.typing(peer, room):
            return False
        if len(typed) > 64:
            typed.clear()
        typed[key] = now
        return True

    async def events(self) -> AsyncGenerator[Typing | Receipt, None]:
        """Typing notices and live receipts (chatd.client.model), while
        `inbox()` or `subscribe()` reads on this session; ends only by the
        caller. One reader of events at a time."""
        connection = await self._session_connection()
        loop = asyncio.get_running_loop()
        items: deque[Typing | Receipt] = deque(maxlen=EVENT_QUEUE)
        ready = asyncio.Event()

        def on_event(frame: chat_pb2.ServerFrame) -> None:
            items.append(event_of(frame, loop.time()))
            ready.set()

        connection.on_event = on_event
        try:
            while True:
                while items:
                    yield items.popleft()
                ready.clear()
                await ready.wait()
        finally:
            if connection.on_event is on_event:
                connection.on_event = None

    async def list_receipts(self, *, peer: str = "", room: str = "") -> list[Receipt]:
        """How far each other party of my conversation with `peer`, or of
        `room`, has read it (those who share receipts; none if I do not)."""
        request = chat_pb2.ReceiptsRequest(session_id=self._session(), peer=peer, room=room)
        r = await self._ok("ListReceipts", request)
        return [Receipt(x.username, x.upto, x.peer, x.room) for x in r.receipt]

    async def shares_receipts(self) -> bool:
        """Whether I share my read receipts (the setting, as the node has it)."""
        request = chat_pb2.ReceiptsRequest(session_id=self._session())
        return not (await self._ok("ListReceipts", request)).not_sharing

    async def share_receipts(self, share: bool) -> None:
        """Whether others see how far I have read (and I theirs)."""
        request = chat_pb2.ShareReceiptsRequest(session_id=self._session(), share=share)
        await self._ok("ShareReceipts", request)
