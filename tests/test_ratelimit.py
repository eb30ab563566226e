"""The token bucket of chatd/server/chat/ratelimit.py, property-tested (hypothesis).

RateLimiter takes the time as an argument, so the clock here is simulated:
times are multiples of 1/1024 s and rates multiples of 1/4 a second, which
binary floating point holds exactly, so the bounds below are exact, not
approximate. The last test drives OverLimit through a real node, with the
chat module's clock replaced (no sleeping).
"""

from __future__ import annotations

import math
import time
import types
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import build
from chatd.server.chat import rules as chat
from chatd.server.chat.ratelimit import RateLimiter
from chatd.server.errors import CallerError, OverLimit, RequestRefused
from tests.conftest import node_config, user

TICK = 1 / 1024  # the simulated clock's resolution, in seconds
SETTINGS = settings(max_examples=100, deadline=None)

rates = st.integers(1, 400).map(lambda k: k / 4)  # 0.25 .. 100 a second
bursts = st.integers(1, 50)
times = st.integers(0, 2**20).map(lambda k: k * TICK)  # up to ~17 minutes
keys = st.sampled_from(["a", "b", "c", "d"])


def gaps(max_size: int = 200) -> st.SearchStrategy[list[float]]:
    """Increasing event times (several events may share an instant)."""

    def cumulate(steps: list[int]) -> list[float]:
        out, t = [], 0
        for s in steps:
            t += s
            out.append(t * TICK)
        return out

    return st.lists(st.integers(0, 2048), min_size=1, max_size=max_size).map(cumulate)


@SETTINGS
@given(rate=rates, burst=bursts, now=times)
def test_a_full_bucket_allows_exactly_a_burst_at_once(rate: float, burst: int, now: float) -> None:
    limiter = RateLimiter(rate, burst)
    got = [limiter.allow("k", now) for _ in range(burst + 5)]
    assert got == [True] * burst + [False] * 5


@pytest.mark.parametrize("burst", [0, -3])
def test_a_burst_below_one_is_one(burst: int) -> None:
    limiter = RateLimiter(1.0, burst)
    assert [limiter.allow("k", 0.0) for _ in range(3)] == [True, False, False]
    assert limiter.allow("k", 1.0)


@SETTINGS
@given(rate=rates, burst=bursts, step=st.integers(1, 512), seconds=st.integers(1, 3600))
def test_a_sustained_stream_gets_the_rate(rate: float, burst: int, step: int, seconds: int) -> None:
    """Attempts at least twice as often as the rate allows, for up to a
    simulated hour or 50,000 tries (and at least until the burst is spent):
    allowed = burst + rate * elapsed, less under one token (what is left at
    the end). With a burst of 1 the tokens that overflow the bucket between
    attempts are lost: one pass every ceil(1 / (rate * interval)) tries."""
    delta = step * TICK
    while rate * delta > 0.5:
        delta /= 2  # stays a binary fraction: exact
    limiter = RateLimiter(rate, burst)
    n = max(min(math.floor(seconds / delta), 50_000), 2 * burst + 2)  # at most 50,000 tries
    allowed = sum(limiter.allow("k", i * delta) for i in range(n + 1))
    elapsed = n * delta
    assert allowed <= burst + rate * elapsed
    if burst >= 2:
        assert allowed > burst + rate * elapsed - 1
    else:
        assert allowed == 1 + n // math.ceil(1 / (rate * delta))


@SETTINGS
@given(rate=rates, burst=bursts, at=gaps())
def test_no_window_gets_more_than_burst_plus_rate(rate: float, burst: int, at: list[float]) -> None:
    """Whatever the attempts, the allowed ones in any window [t0, t1] number
    at most burst + rate * (t1 - t0): the defining bound of a token bucket."""
    limiter = RateLimiter(rate, burst)
    allowed = [t for t in at if limiter.allow("k", t)]
    for i, t0 in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= burst + rate * (allowed[j] - t0)


@SETTINGS
@given(rate=rates, burst=bursts, at=gaps(60), idle=st.integers(0, 2**40))
def test_refill_never_exceeds_the_burst(
    rate: float, burst: int, at: list[float], idle: int
) -> None:
    limiter = RateLimiter(rate, burst)
    for t in at:
        limiter.allow("k", t)
    later = at[-1] + idle * TICK  # however long the bucket stood idle
    got = [limiter.allow("k", later) for _ in range(burst + 1)]
    assert got.count(True) <= burst and got[-1] is False
    if idle * TICK * rate >= burst:  # long enough to fill: exactly full
        assert got.count(True) == burst


@SETTINGS
@given(rate=st.sampled_from([0.0, -1.0]), burst=st.integers(-5, 5), at=gaps(), key=keys)
def test_a_rate_of_zero_is_no_limit(rate: float, burst: int, at: list[float], key: str) -> None:
    limiter = RateLimiter(rate, burst, max_keys=1)
    assert all(limiter.allow(key, t) for t in at for _ in range(3))
    assert all(limiter.allow(object(), 0.0) for _ in range(100))
    assert not limiter._buckets  # no memory spent on anyone


@SETTINGS
@given(
    rate=rates,
    burst=bursts,
    events=st.lists(st.tuples(keys, st.integers(0, 512)), min_size=1, max_size=200),
    max_keys=st.integers(1, 5),
)
def test_keys_are_independent(
    rate: float, burst: int, events: list[tuple[str, int]], max_keys: int
) -> None:
    """Interleaved keys get what each would get alone, whatever the bound on
    keys kept (pruning drops only full buckets, as good as new ones)."""
    shared = RateLimiter(rate, burst, max_keys=max_keys)
    alone = {k: RateLimiter(rate, burst) for k, _ in events}
    t = 0.0
    for key, step in events:
        t += step * TICK
        assert shared.allow(key, t) == alone[key].allow(key, t), (key, t)


@SETTINGS
@given(rate=rates, burst=bursts, at=gaps(), drop=st.data())
def test_a_refused_attempt_changes_nothing(
    rate: float, burst: int, at: list[float], drop: st.DataObject
) -> None:
    """Leaving out any refused attempt leaves every other answer as it was."""
    limiter = RateLimiter(rate, burst)
    answers = [limiter.allow("k", t) for t in at]
    refused = [i for i, ok in enumerate(answers) if not ok]
    if not refused:
        return
    gone = drop.draw(st.sets(st.sampled_from(refused), min_size=1))
    again = RateLimiter(rate, burst)
    for i, t in enumerate(at):
        if i not in gone:
            assert again.allow("k", t) == answers[i], i


def test_idle_full_buckets_are_dropped_at_the_key_bound() -> None:
    limiter = RateLimiter(2.0, 4, max_keys=3)
    for k in "abc":
        assert limiter.allow(k, 0.0)
    assert limiter.allow("a", 1.0)  # a: used again; b, c: full at t = 2
    assert limiter.allow("d", 1.5)  # none full yet: the bound is exceeded, not enforced
    assert set(limiter._buckets) == {"a", "b", "c", "d"}
    assert limiter.allow("e", 2.0)
    assert set(limiter._buckets) == {"a", "d", "e"}


def test_over_limit_is_an_error_of_its_own() -> None:
    exc = OverLimit("more than 5 messages a second from this session")
    assert isinstance(exc, CallerError) and str(exc).startswith("more than 5")
    assert not isinstance(exc, RequestRefused)  # answered as RESOURCE_EXHAUSTED, not a code


async def test_a_session_is_held_to_the_send_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Send through a real node over 10 simulated seconds, four tries a
    second at 2 a second with bursts of 3: 3 + 2 * 10 pass; the others are
    RESOURCE_EXHAUSTED and store nothing."""
    clock = [1000.0]
    fake = types.SimpleNamespace(monotonic=lambda: clock[0], time_ns=time.time_ns)
    monkeypatch.setattr(chat, "time", fake)  # the clock the send limit reads
    n = await build(node_config(tmp_path / "n", send_rate=2.0, send_burst=3))
    await n.start()
    try:
        async with grpc.aio.insecure_channel(n.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            a = await user(stub, "alice")
            await user(stub, "bob")
            first = n.store.last_index
            sent = refused = 0
            for i in range(41):
                clock[0] = 1000.0 + i * 0.25
                try:
                    r = await stub.Send(chat_pb2.SendRequest(to="bob", message="x", session_id=a))
                    assert r.error_code == 0
                    sent += 1
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert "messages a second" in (exc.details() or "")
                    refused += 1
            assert (sent, refused) == (23, 18)
            assert n.store.last_index == first + sent  # a refused Send wrote nothing
    finally:
        await n.stop()


def test_the_rates_refusals_agree_in_number() -> None:
    from chatd.server.chat.room_rates import RoomRates
    from chatd.words import counted

    one = [text for _, text in RoomRates(1, 1, 1)._limits.values()]
    assert one == [
        "at most 1 new room an hour from one user",
        "at most 1 invitation a minute from one user",
        "at most 1 room change or read marker a second from one user",
    ]
    many = [text for _, text in RoomRates(30, 0.5, 20)._limits.values()]
    assert many[1] == "at most 0.5 invitations a minute from one user"
    assert counted(1, "message") == "1 message" and counted(2.5, "message") == "2.5 messages"
