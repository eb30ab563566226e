"""Live delivery: the open Subscribe streams of each user, and who is online;
and the events (typing, read receipts) of the streams that take them.

A subscription holds a bounded queue. Publishing never waits: a subscription
whose queue is full is marked overflowed and dropped, so a slow reader never
stalls the writer nor grows memory without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque

from chatd.server.chat.events import TYPING_USER_BURST, TYPING_USER_RATE, Events, TypingNotice
from chatd.server.chat.ratelimit import RateLimiter
from chatd.server.storage.rows import ReadReceipt
from chatd.server.storage.store import StoredMessage


class Subscription:
    """One open Subscribe stream of one user (one session)."""

    def __init__(
        self, username: str, session_hash: bytes, capacity: int, events: bool = False
    ) -> None:
        self.username = username
        self.events = events  # it takes events too (edits, deletions, reactions)
        self.session_hash = session_hash
        self.capacity = capacity
        self.queue: deque[StoredMessage] = deque()
        self.overflowed = False
        self.stale = False  # messages became visible without being pushed
        self.ended: str | None = None
        self.retryable = False
        self._ready = asyncio.Event()

    def push(self, message: StoredMessage) -> None:
        if self.overflowed or (message.kind and not self.events):
            return
        if len(self.queue) >= self.capacity:
            self.overflowed = True
            self.queue.clear()
        else:
            self.queue.append(message)
        self._ready.set()

    def end(self, reason: str, *, retryable: bool = False) -> None:
        """Ends the stream; retryable means: the client should try again
        (elsewhere), not that its session is gone."""
        self.ended = reason
        self.retryable = retryable
        self._ready.set()

    def refresh(self) -> None:
        self.stale = True
        self._ready.set()

    def reset_overflow(self) -> None:
        self.overflowed = False
        self.queue.clear()

    async def wait(self) -> None:
        """Waits until there is something to read, an overflow, or an end."""
        if not self.queue and not self.overflowed and not self.stale and self.ended is None:
            self._ready.clear()
            await self._ready.wait()


class Hub:
    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._by_user: dict[str, set[Subscription]] = {}
        # users online through another node (a slave serving their
        # deliveries), counted per stream the slave holds here
        self._elsewhere: dict[str, int] = {}
        self._events: dict[str, set[Events]] = {}
        self._typing_rate = RateLimiter(TYPING_USER_RATE, TYPING_USER_BURST)

    def open(self, username: str, session_hash: bytes, events: bool = False) -> Subscription:
        sub = Subscription(username, session_hash, self.capacity, events)
        self._by_user.setdefault(username, set()).add(sub)
        return sub

    def close(self, sub: Subscription) -> None:
        subs = self._by_user.get(sub.username)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_user[sub.username]

    def publish(self, message: StoredMessage, to: list[str] | None = None) -> None:
        """To the streams of `to` (a room message's members, an event's
        parties), or of the message's recipient; an event only to the
        streams that take events."""
        for name in (message.recipient,) if to is None else to:
            for sub in self._by_user.get(name, ()):
                sub.push(message)

    def open_events(self, username: str, typing: bool, receipts: bool) -> Events:
        events = Events(username, typing, receipts)
        self._events.setdefault(username, set()).add(events)
        return events

    def close_events(self, events: Events) -> None:
        held = self._events.get(events.username)
        if held is not None:
            held.discard(events)
            if not held:
                del self._events[events.username]

    def event_streams(self, username: str) -> int:
        """The user's streams here that take events (a slave's carried ones
        included, on a master)."""
        return len(self._events.get(username, ()))

    def typing(self, notice: TypingNotice, to: list[str], now: float) -> int:
        """To the event streams of `to` that take typing; how many (0: none
        there, or over the sender's TYPING_USER_RATE, all its streams
        together: dropped)."""
        if not self._typing_rate.allow(notice.sender, now):
            return 0
        told = 0
        for name in to:
            for events in self._events.get(name, ()):
                if events.typing:
                    events.push(notice)
                    told += 1
        return told

    def receipt(self, receipt: ReadReceipt) -> None:
        """To the event streams of its parties that take receipts (a
        MarkRead applied here and committed)."""
        for name in receipt.to:
            for events in self._events.get(name, ()):
                if events.receipts:
                    events.push(receipt)

    def end_sessions(self, session_hashes: list[bytes]) -> None:
        ended = set(session_hashes)
        for subs in self._by_user.values():
            for sub in subs:
                if sub.session_hash in ended:
                    sub.end("session ended")

    def end_user(self, username: str) -> None:
        for sub in self._by_user.get(username, ()):
            sub.end("account deleted")

    def end_all(self, reason: str) -> None:
        for subs in self._by_user.values():
            for sub in subs:
                sub.end(reason, retryable=True)

    def refresh_all(self) -> None:
        """Messages became visible that were never published (a new master's
        inherited entries, once committed): every stream reads them from the
        store."""
        for subs in self._by_user.values():
            for sub in subs:
                sub.refresh()

    def attend(self, username: str) -> None:
        """The user's deliveries are served by another node: online here too."""
        self._elsewhere[username] = self._elsewhere.get(username, 0) + 1

    def leave(self, username: str) -> None:
        left = self._elsewhere.get(username, 0) - 1
        if left > 0:
            self._elsewhere[username] = left
        else:
            self._elsewhere.pop(username, None)

    def streams_of(self, username: str) -> int:
        """The user's streams with deliveries, here and (on a master) those
        its slaves serve."""
        return len(self._by_user.get(username, ())) + self._elsewhere.get(username, 0)

    def online(self, username: str) -> bool:
        return username in self._by_user or username in self._elsewhere

    def stream_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())
