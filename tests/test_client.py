"""The async client library: every call, typed errors, and failover."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from chatd.client import (
    ChatClient,
    ConnectionEvent,
    InvalidMessage,
    InvalidPassword,
    InvalidUsername,
    Message,
    NoSuchRecipient,
    NoSuchUser,
    NotLoggedIn,
    Unavailable,
    UsernameTaken,
    WrongPassword,
)
from chatd.server.node import Node
from tests.cluster import Cluster
from tests.conftest import PASSWORD, free_port


async def logged_in(address: str | list[str], name: str, **kw: object) -> ChatClient:
    c = ChatClient(address, **kw)  # type: ignore[arg-type]
    with contextlib.suppress(UsernameTaken):
        await c.create_account(name, PASSWORD)
    await c.login(name, PASSWORD)
    return c


async def test_every_call_and_typed_errors(node: Node) -> None:
    async with ChatClient([node.address]) as alice:
        await alice.create_account("alice", PASSWORD)
        with pytest.raises(UsernameTaken):
            await alice.create_account("alice", PASSWORD)
        with pytest.raises(InvalidUsername):
            await alice.create_account("no spaces", PASSWORD)
        with pytest.raises(InvalidPassword):
            await alice.create_account("carol", "short")
        with pytest.raises(NoSuchUser):
            await alice.login("nobody", PASSWORD)
        with pytest.raises(WrongPassword):
            await alice.login("alice", "wrong password")
        with pytest.raises(NotLoggedIn):
            await alice.send("alice", "hi")
        await alice.login("alice", PASSWORD)
        bob = await logged_in(node.address, "bob")
        with pytest.raises(NoSuchRecipient):
            await alice.send("zed", "hi")
        with pytest.raises(InvalidMessage):
            await alice.send("bob", "")
        first = await alice.send("bob", "one")
        second = await alice.send("bob", "two")
        assert second > first
        assert await alice.send("bob", "one", request_id="fixed") == await alice.send(
            "bob", "one", request_id="fixed"
        )
        users = await alice.list_users()
        assert [(u.name, u.online) for u in users] == [("alice", False), ("bob", False)]
        got = await bob.get_messages()
        assert [m.body for m in got] == ["one", "two", "one"]
        assert (
            isinstance(got[0], Message) and got[0].sender == "alice" and got[0].recipient == "bob"
        )
        assert await bob.get_messages() == []
        page = await alice.get_chat("bob", limit=2)
        assert [m.body for m in page] == ["two", "one"]
        older = await alice.get_chat("bob", before=page[0].id)
        assert [m.body for m in older] == ["one"]
        await bob.acknowledge([first])
        stream = bob.subscribe(after=second)
        got_live: asyncio.Future[Message] = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        assert {u.name: u.online for u in await alice.list_users()}["bob"]
        live = await alice.send("bob", "live")
        assert (await asyncio.wait_for(got_live, 5)).id > second
        assert live > second
        await stream.aclose()
        await bob.logout()
        assert bob.session_id is None
        await alice.delete_account()
        with pytest.raises(NoSuchUser):
            await bob.login("alice", PASSWORD)
        await bob.close()


async def test_unreachable_cluster_raises_unavailable() -> None:
    events: list[ConnectionEvent] = []
    c = ChatClient([f"127.0.0.1:{free_port()}"], retry_for=0.5, on_connection=events.append)
    with pytest.raises(Unavailable):
        await c.list_users()
    assert events[-1].state == "gave-up"
    await c.close()


@pytest.mark.parametrize("mode", ["subscribe", "inbox"])
async def test_failover_every_message_exactly_once_in_order(tmp_path: Path, mode: str) -> None:
    """Kill -9 the master while a subscriber and a sender run: every sent
    message arrives exactly once and in order, with no new login."""
    cluster = await asyncio.to_thread(Cluster.start, tmp_path)
    addresses = list(cluster.addresses.values())
    events: list[ConnectionEvent] = []
    try:
        # each client is given the addresses in a different order
        alice = await logged_in(addresses, "alice", on_connection=events.append)
        bob = await logged_in(addresses[::-1], "bob", on_connection=events.append)
        sessions = (alice.session_id, bob.session_id)
        received: list[Message] = []
        sent: list[int] = []
        total = 150

        async def receive() -> None:
            async for m in bob.subscribe() if mode == "subscribe" else bob.inbox():
                received.append(m)
                if len(received) == total:
                    return

        async def send() -> None:
            for i in range(total):
                sent.append(await alice.send("bob", f"m{i}"))
                await asyncio.sleep(0.005)

        receiver = asyncio.create_task(receive())
        sender = asyncio.create_task(send())
        async with asyncio.timeout(60):
            while len(sent) < 40:
                await asyncio.sleep(0.01)
        master = await asyncio.to_thread(cluster.master)
        cluster.kill(master)  # type: ignore[arg-type]
        async with asyncio.timeout(90):
            await asyncio.gather(sender, receiver)
        assert [m.body for m in received] == [f"m{i}" for i in range(total)]
        assert [m.id for m in received] == sent
        assert (alice.session_id, bob.session_id) == sessions  # no re-login
        assert any(e.state == "lost" for e in events)
        await alice.close()
        await bob.close()
    finally:
        cluster.stop_all()


async def test_inbox_unread_then_live_marked_delivered(node: Node) -> None:
    alice = await logged_in(node.address, "alice")
    bob = await logged_in(node.address, "bob")
    unread = [await alice.send("bob", f"u{i}") for i in range(3)]
    inbox = bob.inbox()
    got = [await asyncio.wait_for(anext(inbox), 5) for _ in range(3)]
    assert [m.id for m in got] == unread
    live = await alice.send("bob", "live")
    assert (await asyncio.wait_for(anext(inbox), 5)).id == live
    await asyncio.sleep(0.5)  # the live message is acknowledged in the background
    await inbox.aclose()
    assert await bob.get_messages() == []  # everything shown was marked delivered
    # a second device's inbox starts with nothing unread and sees only new ones
    again = bob.inbox()
    nxt = asyncio.ensure_future(anext(again))
    await asyncio.sleep(0.2)
    assert not nxt.done()
    newer = await alice.send("bob", "newer")
    assert (await asyncio.wait_for(nxt, 5)).id == newer
    await again.aclose()
    await alice.close()
    await bob.close()
