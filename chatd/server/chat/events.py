"""A stream's events beside its messages (a Connect opened with `events`):
typing notices and read receipts, each stream's own bounded queue.

Events are best effort: pushing one never waits, and one that finds the
queue full is dropped (counted), never ending the stream nor holding the
writer or a sender. What a typing notice costs, and who may send one, is
chatd.server.chat.presence.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from chatd.server.storage.rows import ReadReceipt

EVENT_QUEUE = 64  # events waiting to be written to one stream; more are dropped
# typing notices passed on from one user, all its streams together (the
# master sees them all), a second and at once; more are dropped
TYPING_USER_RATE = 8.0
TYPING_USER_BURST = 8


@dataclass(frozen=True, slots=True)
class TypingNotice:
    """`sender` types to `peer`, or in `room`: shown for `expires_ms`."""

    sender: str
    peer: str
    room: str
    expires_ms: int


Event = TypingNotice | ReadReceipt


class Events:
    """One stream's events. `typing`, `receipts`: which kinds it takes (a
    stream a slave carries to the master takes typing there, and its
    receipts from the slave's own replica)."""

    def __init__(self, username: str, typing: bool, receipts: bool) -> None:
        self.username = username
        self.typing = typing
        self.receipts = receipts
        self.items: deque[Event] = deque()
        self.dropped = 0
        self._ready = asyncio.Event()

    def push(self, event: Event) -> None:
        if len(self.items) >= EVENT_QUEUE:
            self.dropped += 1
            return
        self.items.append(event)
        self._ready.set()

    async def get(self) -> Event:
        while not self.items:
            self._ready.clear()
            await self._ready.wait()
        return self.items.popleft()
