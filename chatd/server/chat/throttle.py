"""Throttles on what costs a node most per request: password hashing.

A login or a sign-up costs one scrypt hash (about 70 ms of a core at the
default cost); without bounds, 200 wrong-password logins queued a real
user's login behind 11 s of hashing, and one client created 248 accounts in
15 s. Each throttle answers at once (the caller is told when to retry), so
nothing waits behind an attacker:

- at most HASH_QUEUE hashes waiting or running on a node, at most
  HASHES_PER_ADDRESS of them for one client address and HASHES_PER_NAME for
  one username; beyond any a login or sign-up is refused at once (so one
  address, or a flood on one name, never holds the hashing threads);
- failed logins per client address (ADDRESS_FAILURES, then one every
  ADDRESS_REFILL_S) and per username and address (USER_ADDRESS_FAILURES,
  then one every USER_ADDRESS_REFILL_S): over either, that address's logins
  are refused before any hashing;
- failed logins per username, from anywhere (USER_FAILURES, then one every
  USER_REFILL_S): over it, every login for that name waits USER_DELAY_S
  first. Slowed, not refused: the rightful owner still gets in;
- accounts created per client address: --account-rate an hour.

An address a user logged in from lately (the last KNOWN_ADDRESSES ones,
kept in memory on the node that checked) is that user's known device: its
logins for that name skip the per-name limits and may use RESERVE hashes
beyond HASH_QUEUE, so that the owner of a name under a flood from many
addresses still gets in from where they usually do. (A first login from a
new address during such a flood is refused until it passes.)

A client address is the caller's IP address (its port dropped); a call a
slave relays carries the address its client called from.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

from chatd.server.chat.ratelimit import RateLimiter
from chatd.server.errors import OverLimit

HASH_QUEUE = 32
HASHES_PER_ADDRESS = 4
HASHES_PER_NAME = 8  # more than one address may hold
RESERVE = 8
KNOWN_ADDRESSES = 8  # per user
KNOWN_USERS = 100_000
ADDRESS_FAILURES, ADDRESS_REFILL_S = 20, 3.0
USER_ADDRESS_FAILURES, USER_ADDRESS_REFILL_S = 5, 12.0
USER_FAILURES, USER_REFILL_S, USER_DELAY_S = 10, 6.0, 1.0


def address_key(address: str) -> str:
    """What the per-address limits count: an IPv4 address, or an IPv6
    address's /64 (one host holds a whole /64 and may rotate within it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def retry_hint(seconds: float) -> str:
    return f"retry in {max(1, math.ceil(seconds))} s"


@dataclass
class LoginThrottle:
    account_rate_per_hour: float = 20.0
    hashing: int = 0  # hashes waiting or running
    # the same per ("address", a) and per ("name", n)
    _inflight: dict[tuple[str, str], int] = field(default_factory=dict)
    # username -> the addresses it logged in from lately, oldest first
    _known: dict[str, dict[str, None]] = field(default_factory=dict)
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

    def known(self, username: str, address: str) -> bool:
        return address_key(address) in self._known.get(username, ())

    def start_hash(self, address: str, username: str = "") -> list[tuple[str, str]]:
        """A hash for `address` (a login for `username`) is about to be
        queued; OverLimit when too many are. end_hash(the result) must
        follow."""
        address = address_key(address)
        known = bool(username) and self.known(username, address)
        keys = [("address", address)]
        if username and not known:
            keys.append(("name", username))
        limits = {"address": HASHES_PER_ADDRESS, "name": HASHES_PER_NAME}
        for key in keys:
            if self._inflight.get(key, 0) >= limits[key[0]]:
                raise OverLimit(
                    f"at most {limits[key[0]]} logins or sign-ups at once for one {key[0]}; "
                    f"{retry_hint(1)}",
                    1.0,
                )
        if self.hashing >= HASH_QUEUE + (RESERVE if known else 0):
            raise OverLimit(
                f"this node is busy checking passwords ({self.hashing} at once); {retry_hint(1)}",
                1.0,
            )
        self.hashing += 1
        for key in keys:
            self._inflight[key] = self._inflight.get(key, 0) + 1
        return keys

    def end_hash(self, keys: list[tuple[str, str]]) -> None:
        self.hashing -= 1
        for key in keys:
            left = self._inflight[key] - 1
            if left:
                self._inflight[key] = left
            else:
                del self._inflight[key]

    def logged_in(self, username: str, address: str, now: float) -> None:
        """A login succeeded: its attempt, counted as failed, is given back,
        and `address` is now a known device of `username`."""
        address = address_key(address)
        self._by_address.refund(address, now)
        self._by_user_address.refund((username, address), now)
        self._by_user.refund(username, now)
        seen = self._known.pop(username, None)
        if seen is None:
            seen = {}
            if len(self._known) >= KNOWN_USERS:
                del self._known[next(iter(self._known))]  # the least recently used
        seen.pop(address, None)
        seen[address] = None
        while len(seen) > KNOWN_ADDRESSES:
            del seen[next(iter(seen))]
        self._known[username] = seen

    def check_login(self, username: str, address: str, now: float) -> float:
        """Before a login's hash: OverLimit when its address failed too often;
        else the delay to wait first (the username failed too often)."""
        address = address_key(address)
        wait = max(
            self._by_address.wait(address, now),
            self._by_user_address.wait((username, address), now),
        )
        if wait > 0:
            raise OverLimit(f"too many failed logins from this address; {retry_hint(wait)}", wait)
        if self.known(username, address):
            return 0.0
        return USER_DELAY_S if self._by_user.wait(username, now) > 0 else 0.0

    def failed_login(self, username: str, address: str, now: float) -> None:
        address = address_key(address)
        self._by_address.spend(address, now)
        self._by_user_address.spend((username, address), now)
        self._by_user.spend(username, now)

    def take_account(self, address: str, now: float) -> None:
        """Before a sign-up's hash: OverLimit when its address made too many
        (an attempt counts, so that concurrent ones cannot all pass)."""
        address = address_key(address)
        wait = self._accounts.wait(address, now)
        if wait > 0:
            raise OverLimit(
                f"at most {self.account_rate_per_hour:g} new accounts an hour from one "
                f"address; {retry_hint(wait)}",
                wait,
            )
        self._accounts.spend(address, now)
