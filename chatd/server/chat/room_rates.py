"""Rates of the room writes, per user as Send's rate is (all the user's
sessions together; a token bucket each, chatd.server.chat.ratelimit). Every room
write is a replicated entry on every node, so each has a rate:

- rooms created: --room-rate an hour, in bursts of as many;
- invitations: --invite-rate a minute, in bursts of as many;
- every other room write (join, leave, remove, admin, decline, delete) and
  each MarkRead that moves a marker: --room-write-rate a second, in bursts
  of WRITE_BURST_S seconds' worth.

A rate of 0 is no limit. Over one, the call is refused at once with
RESOURCE_EXHAUSTED and when to retry (OverLimit); nothing is written.
"""

from __future__ import annotations

import math

from chatd.server.chat.ratelimit import RateLimiter
from chatd.server.chat.throttle import retry_hint
from chatd.server.errors import OverLimit
from chatd.words import counted

WRITE_BURST_S = 5


class RoomRates:
    def __init__(
        self, create_per_hour: float, invite_per_minute: float, write_per_s: float
    ) -> None:
        self._limits = {
            "create": (
                RateLimiter(create_per_hour / 3600, math.ceil(create_per_hour)),
                f"at most {counted(create_per_hour, 'new room')} an hour from one user",
            ),
            "invite": (
                RateLimiter(invite_per_minute / 60, math.ceil(invite_per_minute)),
                f"at most {counted(invite_per_minute, 'invitation')} a minute from one user",
            ),
            "write": (
                RateLimiter(write_per_s, math.ceil(write_per_s * WRITE_BURST_S)),
                "at most "
                + counted(
                    write_per_s, "room change or read marker", "room changes and read markers"
                )
                + " a second from one user",
            ),
        }

    def take(self, kind: str, uid: int, now: float) -> None:
        """One `kind` ("create", "invite", "write") of the user's: OverLimit
        when over its rate."""
        limiter, text = self._limits[kind]
        wait = limiter.wait(uid, now)
        if wait > 0:
            raise OverLimit(f"{text}; {retry_hint(wait)}", wait)
        limiter.spend(uid, now)
