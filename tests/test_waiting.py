"""tests/waiting.py: `eventually` returns the first value that holds, and
fails, bounded in time and in attempts, saying what it waited for and the
last value it saw."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.waiting import eventually, eventually_async


def test_the_first_value_that_holds_is_returned() -> None:
    count = itertools.count()
    assert eventually(lambda: next(count), "three", until=lambda n: n == 3, interval=0) == 3


def test_a_failure_says_what_was_awaited_and_the_last_value() -> None:
    count = itertools.count()
    began = time.monotonic()
    with pytest.raises(AssertionError, match=r"waited for ten: .*\(5 attempts\); last seen: 4$"):
        eventually(lambda: next(count), "ten", until=lambda n: n == 10, attempts=5, interval=0)
    with pytest.raises(AssertionError, match=r"waited for never: not within 0.2 s .* \[\]"):
        eventually(list, "never", timeout=0.2, interval=0.05)
    assert time.monotonic() - began < 2


def test_a_read_that_asserts_is_read_again() -> None:
    seen: list[int] = []

    def read() -> int:
        seen.append(1)
        assert len(seen) > 2, f"only {len(seen)}"
        return len(seen)

    assert eventually(read, "a third read", interval=0) == 3
    with pytest.raises(AssertionError, match=r"last seen: AssertionError\('no'\)"):
        eventually(_no, "yes", attempts=2, interval=0)


def _no() -> None:
    raise AssertionError("no")


async def test_the_async_variant_awaits_what_it_reads() -> None:
    count = itertools.count()

    async def read() -> int:
        return next(count)

    assert await eventually_async(read, "two", until=lambda n: n == 2, interval=0) == 2
    assert await eventually_async(lambda: 7, "a plain value") == 7
    with pytest.raises(AssertionError, match=r"waited for nine: .*\(3 attempts\); last seen: 5$"):
        await eventually_async(read, "nine", until=lambda n: n == 9, attempts=3, interval=0)
