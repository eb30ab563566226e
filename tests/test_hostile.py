"""What an outsider can do to a cluster with no account and no secret:
oversized requests on either listener are refused before they are
buffered, and no master changes for them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from chatd.contract import CLIENT_HEADER, RETRY_AFTER_HEADER, Code
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import build
from chatd.server.chat.throttle import (
    ADDRESS_FAILURES,
    HASH_QUEUE,
    HASHES_PER_ADDRESS,
    HASHES_PER_NAME,
    RESERVE,
    USER_ADDRESS_FAILURES,
    USER_DELAY_S,
    USER_FAILURES,
    LoginThrottle,
)
from chatd.server.errors import OverLimit
from chatd.server.node import Node
from chatd.tools.localcluster import rss_mib
from tests.cluster import Cluster
from tests.conftest import PASSWORD, node_config

MIB = 1024 * 1024


async def flood(address: str, method: str, count: int, size: int) -> list[grpc.StatusCode]:
    junk = b"\xa5" * size
    options = [("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(address, options=options) as ch:
        call = ch.unary_unary(method)  # type: ignore[call-arg]

        async def one() -> grpc.StatusCode:
            try:
                await call(junk, timeout=30)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_oversized_requests_neither_exhaust_the_master_nor_move_it(tmp_path: Path) -> None:
    """Eight concurrent 60 MiB requests to the master's client listener (a
    login) and eight to its peer listener (a join, without the secret): the
    first are refused for their size, the second for the secret, each before
    the body is buffered. (Before the listeners were split the master froze
    for seconds, the slaves elected another, and it held 1.7 GB.)"""
    c = await asyncio.to_thread(Cluster.start, tmp_path, 3, "--cluster-secret", "s3cret")
    try:
        master = c.master()
        assert master is not None
        before = c.status(master)
        assert before is not None
        pid = c.nodes[master].pid
        base = rss_mib(pid)
        peak = base

        async def watch() -> None:
            nonlocal peak
            for _ in range(3000):  # bounded: 60 s at most
                peak = max(peak, rss_mib(pid))
                await asyncio.sleep(0.02)  # (a sample every 20 ms)

        watcher = asyncio.create_task(watch())
        try:
            at_clients = await flood(c.addresses[master], "/ClientAccount/Login", 8, 60 * MIB)
            at_peers = await flood(c.peers[master], "/MasterService/RegisterSlave", 8, 60 * MIB)
        finally:
            watcher.cancel()
        assert set(at_clients) == {grpc.StatusCode.RESOURCE_EXHAUSTED}, at_clients
        assert set(at_peers) == {grpc.StatusCode.UNAUTHENTICATED}, at_peers
        assert peak - base < 200, f"RSS grew from {base} to {peak} MiB"
        after = c.status(master)
        assert after is not None and after["role"] == "master"
        assert after["epoch"] == before["epoch"], "a failover happened"
        for name in c.nodes:
            s = c.status(name)
            assert s is not None and s["epoch"] == before["epoch"], (name, s)
    finally:
        c.stop_all()


# -- password hashing: bounded, and throttled per address and per name --


@contextlib.asynccontextmanager
async def guarded_node(tmp_path: Path) -> AsyncIterator[tuple[Node, Any, Any]]:
    """A node with a cluster secret and an account alice: the node, a stub
    on its client listener, and one on its peer listener (where a slave's
    relayed calls come, naming their client's address)."""
    node = await build(node_config(tmp_path / "n", cluster_secret="s3cret"))
    await node.start()
    try:
        async with (
            grpc.aio.insecure_channel(node.address) as ch,
            grpc.aio.insecure_channel(node.peer_address) as peer,
        ):
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            relay = chat_pb2_grpc.ClientAccountStub(peer)
            alice = chat_pb2.CreateAccountRequest(username="alice", password=PASSWORD)
            await stub.CreateAccount(alice)
            yield node, stub, relay
    finally:
        await node.stop()


def test_the_login_throttle_rules() -> None:
    t = LoginThrottle(account_rate_per_hour=3)
    # failed logins from one address: 20, then that address waits
    for i in range(ADDRESS_FAILURES):
        assert t.check_login(f"u{i}", "198.51.100.7", 0.0) == 0.0
        t.failed_login(f"u{i}", "198.51.100.7", 0.0)
    with pytest.raises(OverLimit) as info:
        t.check_login("someone", "198.51.100.7", 0.0)
    assert "retry in 3 s" in str(info.value) and info.value.retry_after_s == pytest.approx(3.0)
    assert t.check_login("someone", "203.0.113.5", 0.0) == 0.0  # another address is not
    assert t.check_login("someone", "198.51.100.7", 3.0) == 0.0  # one more, 3 s later
    # one name from one address: 5 failures
    for _ in range(USER_ADDRESS_FAILURES):
        t.failed_login("carol", "203.0.113.5", 10.0)
    with pytest.raises(OverLimit):
        t.check_login("carol", "203.0.113.5", 10.0)
    # one name from many addresses: slowed down, never refused
    for i in range(USER_FAILURES):
        t.failed_login("carol", f"192.0.2.{i}", 10.0)
    assert t.check_login("carol", "192.0.2.200", 10.0) == USER_DELAY_S
    assert t.check_login("dave", "192.0.2.200", 10.0) == 0.0
    # hashes in flight: per address, per name, then in all
    for _ in range(HASHES_PER_ADDRESS):
        t.start_hash("198.51.100.7")
    with pytest.raises(OverLimit):
        t.start_hash("198.51.100.7")
    for i in range(HASHES_PER_NAME):
        t.start_hash(f"10.1.0.{i}", "erin")
    with pytest.raises(OverLimit) as info:
        t.start_hash("10.1.0.99", "erin")
    assert "for one name" in str(info.value)
    t.logged_in("erin", "10.1.0.99", 10.0)  # erin's own device, from before
    erins = t.start_hash("10.1.0.99", "erin")
    t.end_hash(erins)
    for i in range(HASH_QUEUE - t.hashing):  # (held: never ended here)
        t.start_hash(f"10.0.0.{i}")
    with pytest.raises(OverLimit) as info:
        t.start_hash("10.9.9.9")
    assert "busy" in str(info.value)
    for i in range(RESERVE):  # erin's devices may go beyond, by the reserve
        t.logged_in("erin", f"10.2.0.{i}", 10.0)
        t.start_hash(f"10.2.0.{i}", "erin")  # (held: never ended here)
    with pytest.raises(OverLimit) as info:
        t.start_hash("10.2.0.0", "erin")
    assert "busy" in str(info.value)
    # sign-ups: 3 an hour from one address
    for _ in range(3):
        t.take_account("198.51.100.7", 0.0)
    with pytest.raises(OverLimit) as info:
        t.take_account("198.51.100.7", 0.0)
    assert "3 new accounts an hour" in str(info.value) and "retry in 1200 s" in str(info.value)
    t.take_account("203.0.113.5", 0.0)


def retry_after_ms(exc: grpc.aio.AioRpcError) -> int:
    told: Any = exc.trailing_metadata() or ()
    for key, value in told:
        if key == RETRY_AFTER_HEADER:
            return int(value)
    raise AssertionError(f"no {RETRY_AFTER_HEADER} in {exc.trailing_metadata()}")


async def test_sign_ups_are_limited_per_address(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n", account_rate=3))
    await node.start()
    try:
        async with grpc.aio.insecure_channel(node.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            for i in range(3):
                r = await stub.CreateAccount(
                    chat_pb2.CreateAccountRequest(username=f"user{i}", password=PASSWORD)
                )
                assert r.error_code == 0
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.CreateAccount(
                    chat_pb2.CreateAccountRequest(username="user3", password=PASSWORD)
                )
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "new accounts an hour" in (info.value.details() or "")
            assert retry_after_ms(info.value) > 1_000_000  # 20 minutes for the next
            assert "user3" not in node.store.users
    finally:
        await node.stop()


async def guess(relay: Any, i: int, address: str) -> str:
    """A wrong-password login for alice, relayed as from `address`:
    "hashed" (checked and wrong) or "refused" (throttled, with a hint)."""
    meta = (("x-chatd-secret", "s3cret"), (CLIENT_HEADER, address))
    try:
        r = await relay.Login(
            chat_pb2.LoginRequest(username="alice", password=f"wrong-{i}"), metadata=meta
        )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
        assert retry_after_ms(exc) >= 1000
        return "refused"
    assert r.error_code == Code.WRONG_PASSWORD, r
    return "hashed"


async def test_a_login_flood_from_one_address_leaves_the_rightful_owner_in(
    tmp_path: Path,
) -> None:
    """200 concurrent wrong-password logins for alice, relayed from an
    address of their own (as a slave relays them, over the peer listener):
    at most a handful are hashed, the rest are refused at once, and alice
    herself, calling from elsewhere meanwhile, gets in."""
    async with guarded_node(tmp_path) as (_node, stub, relay):
        flood = asyncio.gather(*(guess(relay, i, "198.51.100.7") for i in range(200)))
        await asyncio.sleep(0.01)  # (the flood begins: her login races it)
        mine = await stub.Login(chat_pb2.LoginRequest(username="alice", password=PASSWORD))
        outcomes = await flood
        assert mine.error_code == 0 and mine.session_id
        hashed = outcomes.count("hashed")
        # (up to 4 at once, until 5 had failed for alice from there)
        assert 1 <= hashed < USER_ADDRESS_FAILURES + HASHES_PER_ADDRESS, outcomes
        # and now that address is refused before any hashing, for a while
        assert await guess(relay, 999, "198.51.100.7") == "refused"


async def test_a_login_flood_from_many_addresses_leaves_the_owner_her_device(
    tmp_path: Path,
) -> None:
    """200 concurrent wrong-password logins for alice from 200 addresses:
    the hashing queue stays bounded (the rest are refused at once), and alice,
    from the address she logged in from before, still gets in."""
    async with guarded_node(tmp_path) as (_node, stub, relay):
        mine = chat_pb2.LoginRequest(username="alice", password=PASSWORD)
        assert (await stub.Login(mine)).error_code == 0  # her device, from before

        addresses = [f"10.1.{i // 250}.{i % 250}" for i in range(200)]
        flood = asyncio.gather(*(guess(relay, i, a) for i, a in enumerate(addresses)))
        await asyncio.sleep(0.01)  # (the flood begins: her login races it)
        again = await stub.Login(mine)
        outcomes = await flood
        assert again.error_code == 0 and again.session_id
        assert outcomes.count("refused") >= 100, outcomes


async def test_logins_their_callers_give_up_on_still_count(tmp_path: Path) -> None:
    """A caller that cancels its login at once (a tiny deadline) still costs
    a hash: the attempt counts against its address from the start, and the
    hashing slot is held until the hash is done."""
    async with guarded_node(tmp_path) as (node, _stub, relay):
        meta = (("x-chatd-secret", "s3cret"), (CLIENT_HEADER, "198.51.100.9"))
        codes = set()
        for i in range(3 * ADDRESS_FAILURES):
            with contextlib.suppress(grpc.aio.AioRpcError):
                await relay.Login(
                    chat_pb2.LoginRequest(username=f"u{i % 7}", password="wrong-guess"),
                    metadata=meta,
                    timeout=0.001,
                )
            assert node.chat.throttle.hashing <= HASHES_PER_ADDRESS
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await relay.Login(
                chat_pb2.LoginRequest(username="alice", password=PASSWORD), metadata=meta
            )
        codes.add(info.value.code())
        assert codes == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert "failed logins from this address" in (info.value.details() or "")
