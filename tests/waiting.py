"""Waiting for a condition instead of for a fixed time.

`eventually(read, what)` calls `read()` until `until(value)` holds (by
default: the value is truthy) and returns that value; `eventually_async` is
the same in a coroutine, where `read()` may return an awaitable. Both are
bounded twice: by `timeout` seconds and by `attempts` calls (by default as
many as `timeout / interval` allows, and at least two). When neither is
left they fail with an AssertionError that says what was awaited, for how
long, and the last value `read()` gave (or the last exception it raised:
a `read()` may assert, and is called again until the bound).

A fixed sleep stays where the time itself is what a test proves (a
connection held idle for several keepalive periods, a refusal held for a
client's whole retry time); a comment there says so.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

TIMEOUT_S = 10.0
INTERVAL_S = 0.02


def _bound(timeout: float, interval: float, attempts: int | None) -> int:
    if attempts is not None:
        return max(1, attempts)
    return max(2, math.ceil(timeout / max(interval, 0.001)) + 1)


SHOWN_CHARS = 3000  # of the last value seen (a log's end)


def _failure(what: str, timeout: float, tries: int, last: object) -> AssertionError:
    shown = repr(last)
    if len(shown) > SHOWN_CHARS:
        shown = "..." + shown[-SHOWN_CHARS:]
    return AssertionError(
        f"waited for {what}: not within {timeout:g} s ({tries} attempts); last seen: {shown}"
    )


def eventually(
    read: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], object] = bool,
    timeout: float = TIMEOUT_S,
    interval: float = INTERVAL_S,
    attempts: int | None = None,
) -> T:
    """`read()` again every `interval` s until `until` holds of what it
    gives; that value is returned."""
    deadline = time.monotonic() + timeout
    bound = _bound(timeout, interval, attempts)
    last: object = None
    for tries in range(1, bound + 1):
        try:
            value = read()
        except AssertionError as exc:
            last = exc
        else:
            if until(value):
                return value
            last = value
        if tries == bound or time.monotonic() >= deadline:
            raise _failure(what, timeout, tries, last)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    raise _failure(what, timeout, bound, last)  # (not reached: the loop returns or raises)


@overload
async def eventually_async(
    read: Callable[[], Awaitable[T]],
    what: str,
    *,
    until: Callable[[T], object] = ...,
    timeout: float = ...,
    interval: float = ...,
    attempts: int | None = ...,
) -> T: ...


@overload
async def eventually_async(
    read: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], object] = ...,
    timeout: float = ...,
    interval: float = ...,
    attempts: int | None = ...,
) -> T: ...


async def eventually_async(
    read: Callable[[], Any],
    what: str,
    *,
    until: Callable[[Any], object] = bool,
    timeout: float = TIMEOUT_S,
    interval: float = INTERVAL_S,
    attempts: int | None = None,
) -> Any:
    """`eventually` in a coroutine: `read()` may return an awaitable (each
    one awaited within what is left of `timeout`), and the wait between
    attempts lets the loop run."""
    deadline = time.monotonic() + timeout
    bound = _bound(timeout, interval, attempts)
    last: object = None
    for tries in range(1, bound + 1):
        try:
            got: Any = read()
            if inspect.isawaitable(got):
                left = max(0.0, deadline - time.monotonic())
                got = await asyncio.wait_for(got, timeout=max(left, interval))
        except (AssertionError, TimeoutError) as exc:
            last = exc
        else:
            if until(got):
                return got
            last = got
        if tries == bound or time.monotonic() >= deadline:
            raise _failure(what, timeout, tries, last)
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    raise _failure(what, timeout, bound, last)
