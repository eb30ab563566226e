"""Keepalive under load (chatd.contract's one policy): for a minute, writers
send to the master of a real 3-node cluster while Subscribe streams held on
the slaves are relayed to it. No connection may be closed for pinging too
often (GOAWAY ENHANCE_YOUR_CALM "too_many_pings"), which on a slave would end
every relayed stream at once: no node logs one, no stream or call fails, and
the nodes' gRPC ping trace shows no server counting strikes up to its limit.
It runs in the default suite (about 70 s)."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from pathlib import Path

import grpc
import pytest

from chatd.contract import PING_STRIKES
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.tools.localcluster import LOCAL_POOL
from tests.cluster import Cluster, Load

pytestmark = pytest.mark.timeout(300)

LOAD_SECONDS = 60
STREAMS = 8
WRITERS = 4
STRIKES = re.compile(r"received ping \S+: .* ping_strikes=(\d+)")
GOAWAY = re.compile(r"too_many_pings|ENHANCE_YOUR_CALM|GOAWAY", re.IGNORECASE)


async def hold(address: str, session: str, received: list[int], errors: list[str], i: int) -> None:
    """A Subscribe stream on `address`, resumed after the last id on an error
    (each error counted)."""
    async with grpc.aio.insecure_channel(address, options=LOCAL_POOL) as ch:
        stub = chat_pb2_grpc.ClientAccountStub(ch)
        after = 0
        while True:
            call = stub.Subscribe(
                chat_pb2.SubscribeRequest(session_id=session, after_message_id=after)
            )
            try:
                async for m in call:
                    after = m.message_id
                    received[i] += 1
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{address}: {exc.code().name} {exc.details()}")
                await asyncio.sleep(0.1)


async def test_no_connection_is_closed_for_pinging_under_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the nodes (child processes) log every ping they receive, with its strikes
    monkeypatch.setenv("GRPC_VERBOSITY", "debug")
    monkeypatch.setenv("GRPC_TRACE", "http_keepalive")
    c = await asyncio.to_thread(Cluster.start, tmp_path)
    try:
        master = await asyncio.to_thread(c.master)
        assert master is not None
        slaves = [n for n in c.nodes if n != master]
        load = Load([c.addresses[master]])
        alice = await load.session("alice")
        bob = await load.session("bob")
        received = [0] * STREAMS
        errors: list[str] = []
        streams = [
            asyncio.create_task(hold(c.addresses[slaves[i % 2]], bob, received, errors, i))
            for i in range(STREAMS)
        ]
        writers = [asyncio.create_task(load.writer(alice, "bob", f"w{i}")) for i in range(WRITERS)]
        started = time.monotonic()
        samples = []
        while time.monotonic() - started < LOAD_SECONDS:
            await asyncio.sleep(10)
            samples.append(list(received))
        load.stop.set()
        await asyncio.gather(*writers)
        for s in streams:
            s.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    finally:
        c.stop_all()
    assert not errors, errors[:10]
    assert load.errors == 0
    # every relayed stream kept delivering through the whole minute
    for before, after in itertools.pairwise(samples):
        assert all(b > a for a, b in zip(before, after, strict=True)), samples
    strikes = {}
    for name, proc in c.nodes.items():
        log = proc.log()
        assert not GOAWAY.search(log), (name, GOAWAY.search(log))
        seen = [int(s) for s in STRIKES.findall(log)]
        assert seen, f"{name}: no ping trace (GRPC_TRACE=http_keepalive)"
        strikes[name] = (len(seen), max(seen))
    # (pings received, most strikes counted at once): a ping too soon may
    # happen, two in a row would be one away from the GOAWAY
    assert all(most < PING_STRIKES for _, most in strikes.values()), strikes
