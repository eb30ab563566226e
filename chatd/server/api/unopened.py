"""Connect streams that have not sent their open frame yet, per client address.

Such a stream holds no session: it waits --first-frame-timeout at most, and
one address may hold --max-unopened-streams of them. At that bound a new
stream is admitted and the OLDEST one of that address is ended instead: a
client that opens its stream at once leaves the set within a round trip, so
streams held silent by someone sharing its address (a NAT, a host) can
never keep it out; they only push each other out.

A stream pushed out still ends no sooner than GRACE_S after it started: an
address that starts many streams at once (a load generator, the users behind
one NAT) has them all started here before any of their open frames is read,
though each client sent its frame at once; that frame is read within the
grace and the stream is served. So an address holds at most the bound, plus
the streams it started within the last GRACE_S, before their open frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from chatd.server.errors import Evicted, NoOpenFrame

# the least time a stream pushed out has for its open frame, from its start
# (well beyond the few milliseconds a burst of streams takes to be read)
GRACE_S = 0.1


class _Waiting:
    __slots__ = ("deadline", "evicted", "started")

    def __init__(self, deadline: asyncio.Timeout, started: float) -> None:
        self.deadline = deadline
        self.started = started
        self.evicted = False

    def evict(self) -> None:
        """Ends the stream now, or GRACE_S after it started if that is later
        (unless its own deadline comes first)."""
        when = max(asyncio.get_running_loop().time(), self.started + GRACE_S)
        due = self.deadline.when()
        if due is None or when < due:
            self.evicted = True
            self.deadline.reschedule(when)


class Unopened:
    def __init__(self) -> None:
        # address key -> its waiting streams, oldest first (an ordered set)
        self._waiting: dict[str, dict[_Waiting, None]] = {}

    def held(self, key: str) -> int:
        return len(self._waiting.get(key, ()))

    async def first_frame(
        self, key: str, frames: AsyncIterator[Any], timeout_s: float, bound: int
    ) -> Any:
        """The stream's first frame (None: the client ended the stream
        first). Raises NoOpenFrame after `timeout_s`, Evicted when `bound`
        newer streams of `key` came meanwhile, silent too (no sooner than
        GRACE_S after its start)."""
        waiting = self._waiting.setdefault(key, {})
        while waiting and len(waiting) >= bound:
            oldest = next(iter(waiting))
            del waiting[oldest]
            oldest.evict()
        reading = asyncio.ensure_future(anext(aiter(frames), None))
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                me = _Waiting(deadline, asyncio.get_running_loop().time())
                waiting[me] = None
                try:
                    # (shielded: a frame read in the same turn of the loop as
                    # the deadline comes is not lost, and is taken below)
                    return await asyncio.shield(reading)
                finally:
                    waiting.pop(me, None)
                    if not waiting and self._waiting.get(key) is waiting:
                        del self._waiting[key]
        except TimeoutError:
            if reading.done() and not reading.cancelled() and reading.exception() is None:
                return reading.result()
            if me.evicted:
                raise Evicted(
                    f"this stream sent no open frame and {bound} newer Connect streams from "
                    "this address are waiting for theirs, the most allowed: the oldest is "
                    "ended; send the open frame as soon as the stream starts"
                ) from None
            raise NoOpenFrame(
                f"no open frame within {timeout_s:g} s of the stream's start"
            ) from None
        finally:
            reading.cancel()  # (nothing, once it is done)
