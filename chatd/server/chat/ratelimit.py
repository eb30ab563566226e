"""Rate limits that protect a node: a token bucket per key, time passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Allows `rate` events a second per key, in bursts of up to `burst`.
    A rate of 0 allows everything. Keys idle long enough to be full again
    are dropped, so memory follows the active keys only."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_keys = max_keys
        self._buckets: dict[object, Bucket] = {}

    def allow(self, key: object, now: float) -> bool:
        if self.rate <= 0:
            return True
        b = self._refill(key, now)
        if b.tokens < 1:
            return False
        b.tokens -= 1
        return True

    def _refill(self, key: object, now: float) -> Bucket:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            b = self._buckets[key] = Bucket(float(self.burst), now)
        b.tokens = min(self.burst, b.tokens + max(0.0, now - b.at) * self.rate)
        b.at = max(b.at, now)
        return b

    def wait(self, key: object, now: float) -> float:
        """Seconds until `key` has a token (0: it has one now); spends none."""
        if self.rate <= 0:
            return 0.0
        b = self._refill(key, now)
        return 0.0 if b.tokens >= 1 else (1 - b.tokens) / self.rate

    def spend(self, key: object, now: float) -> None:
        """Takes a token from `key` (none left: it stays empty)."""
        if self.rate > 0:
            b = self._refill(key, now)
            b.tokens = max(0.0, b.tokens - 1)

    def refund(self, key: object, now: float) -> None:
        """Gives back a token spent on `key`."""
        if self.rate > 0:
            b = self._refill(key, now)
            b.tokens = min(self.burst, b.tokens + 1)

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.at >= full_after]:
            del self._buckets[key]
