"""Throttles on what costs a node most per request: password hashing.

A login or a sign-up costs one scrypt hash (about 70 ms of a core at the
default cost); without bounds, 200 wrong-password logins queued a real
user's login behind 11 s of hashing, and one client created 248 accounts in
15 s. Each throttle answers at once (the caller is told when to retry), so
nothing waits behind an attacker:

- at most HASH_QUEUE hashes waiting or running on a node, and at most
  HASHES_PER_ADDRESS of them for one client address; beyond either a login
  or sign-up is refused at once (so one address never holds the hashing
  threads for more than a moment);
- failed logins per client address (ADDRESS_FAILURES, then one every
  ADDRESS_REFILL_S) and per username and address (USER_ADDRESS_FAILURES,
  then one every USER_ADDRESS_REFILL_S): over either, that address's logins
  are refused before any hashing;
- failed logins per username, from anywhere (USER_FAILURES, then one every
  USER_REFILL_S): over it, every login for that name waits USER_DELAY_S
  first. Slowed, not refused: the rightful owner still gets in;
- accounts created per client address: --account-rate an hour.

A client address is the caller's IP address (its port dropped); a call a
slave relays carries the address its client called from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from chatd.server.errors import OverLimit
from chatd.server.ratelimit import RateLimiter

HASH_QUEUE = 32
HASHES_PER_ADDRESS = 4
ADDRESS_FAILURES, ADDRESS_REFILL_S = 20, 3.0
USER_ADDRESS_FAILURES, USER_ADDRESS_REFILL_S = 5, 12.0
USER_FAILURES, USER_REFILL_S, USER_DELAY_S = 10, 6.0, 1.0


def retry_hint(seconds: float) -> str:
    return f"retry in {max(1, math.ceil(seconds))} s"


@dataclass
class LoginThrottle:
    account_rate_per_hour: float = 20.0
    hashing: int = 0  # hashes waiting or running
    _by_caller: dict[str, int] = field(default_factory=dict)  # the same, per address
    _by_address: RateLimiter = field(init=False)
    _by_user_address: RateLimiter = field(init=False)
    _by_user: RateLimiter = field(init=False)
    _accounts: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self._by_address = RateLimiter(1 / ADDRESS_REFILL_S, ADDRESS_FAILURES)
        self._by_user_address = RateLimiter(1 / USER_ADDRESS_REFILL_S, USER_ADDRESS_FAILURES)
        self._by_user = RateLimiter(1 / USER_REFILL_S, USER_FAILURES)
        rate = self.account_rate_per_hour
        self._accounts = RateLimiter(rate / 3600, max(1, math.ceil(rate)))

    def start_hash(self, address: str) -> None:
        """A hash for `address` is about to be queued; OverLimit when too
        many are (end_hash must follow once it is done)."""
        mine = self._by_caller.get(address, 0)
        if mine >= HASHES_PER_ADDRESS:
            raise OverLimit(
                f"at most {HASHES_PER_ADDRESS} logins or sign-ups at once from one address; "
                f"{retry_hint(1)}",
                1.0,
            )
        if self.hashing >= HASH_QUEUE:
            raise OverLimit(
                f"this node is busy checking passwords ({HASH_QUEUE} at once); {retry_hint(1)}",
                1.0,
            )
        self.hashing += 1
        self._by_caller[address] = mine + 1

    def end_hash(self, address: str) -> None:
        self.hashing -= 1
        left = self._by_caller[address] - 1
        if left:
            self._by_caller[address] = left
        else:
            del self._by_caller[address]

    def check_login(self, username: str, address: str, now: float) -> float:
        """Before a login's hash: OverLimit when its address failed too often;
        else the delay to wait first (the username failed too often)."""
        wait = max(
            self._by_address.wait(address, now),
            self._by_user_address.wait((username, address), now),
        )
        if wait > 0:
            raise OverLimit(f"too many failed logins from this address; {retry_hint(wait)}", wait)
        return USER_DELAY_S if self._by_user.wait(username, now) > 0 else 0.0

    def failed_login(self, username: str, address: str, now: float) -> None:
        self._by_address.spend(address, now)
        self._by_user_address.spend((username, address), now)
        self._by_user.spend(username, now)

    def take_account(self, address: str, now: float) -> None:
        """Before a sign-up's hash: OverLimit when its address made too many
        (an attempt counts, so that concurrent ones cannot all pass)."""
        wait = self._accounts.wait(address, now)
        if wait > 0:
            raise OverLimit(
                f"at most {self.account_rate_per_hour:g} new accounts an hour from one "
                f"address; {retry_hint(wait)}",
                wait,
            )
        self._accounts.spend(address, now)
