"""Where the client library's calls go, and how they fail over: one piece
for the unary calls, the Subscribe streams and the session's Connect stream.

`Failover` knows every address the client was given and a channel to each,
the node calls go to now (the master it last heard of: every answer names
it), and where the client is connected, which it reports to its
`on_connection` callback ("connected", "lost" once per failure, "gave-up").

`Backoff` is one run of attempts: after each failure it waits, the delay
doubling from RETRY_FIRST_DELAY up to RETRY_MAX_DELAY, and gives up (with
Unavailable, reported as "gave-up") once the next attempt would start more
than `retry_for` seconds after the failures began: for a unary call, when
the call began; for a stream, at its first failure since it last opened.

Imports: chatd.client.errors and chatd.client.model (chatd.client.api and
chatd.client.connection build on this module).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from chatd import tls
from chatd.client.errors import CallFailed, RefusedForNow, Unavailable
from chatd.client.model import ConnectionEvent, header
from chatd.contract import (
    CLIENT_CHANNEL_OPTIONS,
    MASTER_HEADER,
    MASTER_LOST_HEADER,
    REFUSED_HEADER,
)
from chatd.proto import chat_pb2_grpc

# A failover takes tens of milliseconds (up to the failover timeout when the
# master's connections do not close): retrying every 0.1 s at most, and
# skipping addresses whose connection failed, finds the new master soon after
# it takes office; retrying faster doubles the calls during an outage for no
# clear gain (benchmarks/ANALYSIS.md, "The client's retry delays").
RETRY_FIRST_DELAY = 0.05
RETRY_MAX_DELAY = 0.1


def refused(exc: grpc.aio.AioRpcError) -> bool:
    """The node is up and refused the call for now (REFUSED_HEADER): it is
    not lost, and the call is tried there again."""
    return header(exc.trailing_metadata(), REFUSED_HEADER) is not None


class Failover:
    def __init__(
        self,
        addresses: Sequence[str],
        credentials: grpc.ChannelCredentials | None,
        *,
        timeout: float,
        retry_for: float,
        on_connection: Callable[[ConnectionEvent], None],
    ) -> None:
        self.addresses = list(dict.fromkeys(addresses))
        self.credentials = credentials
        self.timeout = timeout  # of one attempt
        self.retry_for = retry_for
        self.on_connection = on_connection
        self.current = 0  # the index of the address calls go to
        self.connected: str | None = None  # where the client is connected ("": lost)
        self.losses = 0  # "lost" reports so far
        self.channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, tuple[grpc.aio.Channel, chat_pb2_grpc.ClientAccountStub]] = {}

    @property
    def address(self) -> str:
        """The node calls go to now."""
        return self.addresses[self.current]

    def stub(self, address: str) -> chat_pb2_grpc.ClientAccountStub:
        """The stub of the node at `address` (one a channel: a stub of the
        service is 48 us to make, more than a call on loopback)."""
        ch = self.channels.get(address)
        if ch is None:
            ch = tls.open_channel(address, self.credentials, CLIENT_CHANNEL_OPTIONS)
            self.channels[address] = ch
        kept = self._stubs.get(address)
        if kept is None or kept[0] is not ch:
            kept = self._stubs[address] = (ch, chat_pb2_grpc.ClientAccountStub(ch))
        return kept[1]

    def note_master(self, metadata: Any) -> str | None:
        """Goes straight to the master next time, when it is one of the
        addresses this client was given (a master known by another name,
        e.g. inside a container network, is reached through the node that
        relays). Returns the master's address as the node named it."""
        master = header(metadata, MASTER_HEADER)
        if master in self.addresses:
            self.current = self.addresses.index(master)
        return master

    def reached(self, address: str, master: str | None, losses: int, *, streaming: bool) -> None:
        """A call that started when `losses` losses had been reported
        succeeded at `address`. Reported as connected when that is the
        master, or the master cannot be reached by the addresses given: a
        node that only relayed (during a failover, say) is not, nor a call
        that was under way before the last loss, so that a failover shows as
        one lost and one connected, not a flurry. `streaming`: the session's
        stream is open, and that is where the client is connected."""
        if losses != self.losses or streaming:
            return
        if master and master != address and master in self.addresses:
            return
        self.stream_opened(address)

    def stream_opened(self, address: str) -> None:
        """A stream opened at `address` (any node serves the session's
        Connect): that is where this client is connected now."""
        if self.connected != address:
            self.connected = address
            self.on_connection(ConnectionEvent("connected", address))

    def lost(self, address: str, exc: grpc.aio.AioRpcError) -> str | None:
        """A call or stream at `address` failed: reported as lost (once) when
        that is where this client is connected. The node lost is `address`,
        or the master it relayed to when it says so (MASTER_LOST_HEADER):
        that one is returned (`address` answers, the stream may stay there)."""
        master = header(exc.trailing_metadata(), MASTER_LOST_HEADER)
        if self.connected == address or self.connected is None:
            self.connected = ""
            self.losses += 1
            self.on_connection(ConnectionEvent("lost", master or address, exc.code().name))
        self.current = self.next_after(master if master in self.addresses else address)
        return master

    def next_after(self, address: str) -> int:
        """The next address to try: the next one whose connection has not
        failed (a dead node is skipped while others answer)."""
        n, i = len(self.addresses), self.addresses.index(address)
        for k in range(1, n + 1):
            ch = self.channels.get(self.addresses[(i + k) % n])
            if ch is None or ch.get_state() != grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                return (i + k) % n
        return (i + 1) % n

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close(None)
        self.channels.clear()
        self._stubs.clear()


class Backoff:
    """One run of attempts (a unary call, or a stream kept open)."""

    def __init__(self, failover: Failover, *, failing: bool = False) -> None:
        """`failing`: the time to give up counts from now (a unary call),
        else from the first failure (a stream)."""
        self.failover = failover
        self.delay = RETRY_FIRST_DELAY
        self.failing_since: float | None = time.monotonic() if failing else None

    def succeeded(self) -> None:
        """An attempt got through (a stream opened): the next failure starts
        a new run."""
        self.failing_since, self.delay = None, RETRY_FIRST_DELAY

    def failed(self, address: str, exc: grpc.aio.AioRpcError, *, lost: bool = True) -> str | None:
        """An attempt at `address` failed with `exc`. `lost`: the node
        failed: reported (Failover.lost, whose answer is returned), and once
        it is time to give up, reported as "gave-up" and raised as
        Unavailable; else the node refused the attempt (RESOURCE_EXHAUSTED):
        raised as CallFailed once it is time to give up. A node that says it
        is up and refuses for now (`refused`) is neither: the next attempt
        goes there again, and giving up raises RefusedForNow with its
        reason. The caller waits (`wait()`) before the next attempt."""
        up = refused(exc)
        master = self.failover.lost(address, exc) if lost and not up else None
        now = time.monotonic()
        self.failing_since = self.failing_since or now
        if now + self.delay > self.failing_since + self.failover.retry_for:
            details = exc.details() or ""
            if up:
                raise RefusedForNow(details) from exc
            if not lost:
                raise CallFailed(exc.code(), details) from exc
            self.failover.on_connection(ConnectionEvent("gave-up", address, exc.code().name))
            raise Unavailable(f"no node answered: {details}") from exc
        return master

    async def wait(self) -> None:
        """Waits the delay before the next attempt, and doubles it (up to
        RETRY_MAX_DELAY)."""
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, RETRY_MAX_DELAY)
