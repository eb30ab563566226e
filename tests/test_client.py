"""The async client library: every call, typed errors, and failover."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import grpc
import pytest

from chatd.client import (
    CallFailed,
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
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import build
from chatd.server.node import Node
from tests.cluster import Cluster, history
from tests.conftest import PASSWORD, free_port, has_undelivered, node_config
from tests.waiting import eventually_async


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
        # every call to a node goes on one stub of its channel (48 us to make)
        assert alice.failover.stub(node.address) is alice.failover.stub(node.address)
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
        assert alice.transport == "stream"  # the sends went over a Connect stream
        users = await alice.list_users()
        # (a stream for sends only makes nobody online)
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
        await eventually_async(
            alice.list_users,
            "bob online (his stream open)",
            until=lambda users: {u.name: u.online for u in users}["bob"],
        )
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
        await eventually_async(lambda: len(sent), "40 sent", until=lambda n: n >= 40, timeout=60)
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
    await eventually_async(
        lambda: not has_undelivered(node, "bob"), "the live message acknowledged in the background"
    )
    await inbox.aclose()
    assert await bob.get_messages() == []  # everything shown was marked delivered
    # a second device's inbox starts with nothing unread and sees only new ones
    again = bob.inbox()
    nxt = asyncio.ensure_future(anext(again))
    await asyncio.sleep(0.2)  # (nothing may come: a wait that proves an absence)
    assert not nxt.done()
    newer = await alice.send("bob", "newer")
    assert (await asyncio.wait_for(nxt, 5)).id == newer
    await again.aclose()
    await alice.close()
    await bob.close()


class Traffic:
    """Sender i sends `total` messages to receiver i ("r{i}"), 10 ms apart;
    receiver i reads them with subscribe()."""

    def __init__(self, senders: list[ChatClient], receivers: list[ChatClient], total: int = 60):
        self.senders, self.receivers, self.total = senders, receivers, total
        self.sent: list[list[int]] = [[] for _ in senders]
        self.got: list[list[Message]] = [[] for _ in receivers]

    async def _send(self, i: int) -> None:
        for k in range(self.total):
            self.sent[i].append(await self.senders[i].send(f"r{i}", f"s{i}-{k}"))
            await asyncio.sleep(0.01)

    async def _receive(self, i: int) -> None:
        async for m in self.receivers[i].subscribe():
            self.got[i].append(m)
            if len(self.got[i]) == self.total:
                return

    def receiving(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._receive(i)) for i in range(len(self.receivers))]

    def sending(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._send(i)) for i in range(len(self.senders))]

    def assert_each_once_in_order(self) -> None:
        """Every message received once, in the order sent, with the id its
        send was answered with."""
        for i, got in enumerate(self.got):
            assert [m.body for m in got] == [f"s{i}-{k}" for k in range(self.total)]
            assert [m.id for m in got] == self.sent[i]


async def test_master_killed_while_eight_send_over_connect_and_eight_receive(
    tmp_path: Path,
) -> None:
    """Eight senders on Connect streams, eight receivers on Subscribe, the
    master killed -9 midway: every send answered with one message id, every
    message received once, in the order sent."""
    cluster = await asyncio.to_thread(Cluster.start, tmp_path)
    addresses = list(cluster.addresses.values())
    try:
        senders = [await logged_in(addresses, f"s{i}") for i in range(8)]
        receivers = [await logged_in(addresses[::-1], f"r{i}") for i in range(8)]
        t = Traffic(senders, receivers)
        tasks = t.receiving() + t.sending()
        await eventually_async(
            lambda: [len(s) for s in t.sent],
            "15 sent by each",
            until=lambda n: min(n) >= 15,
            timeout=60,
        )
        master = await asyncio.to_thread(cluster.master)
        cluster.kill(master)  # type: ignore[arg-type]
        assert max(len(s) for s in t.sent) < t.total  # the kill comes while they send
        async with asyncio.timeout(90):
            await asyncio.gather(*tasks)
        new = await asyncio.to_thread(cluster.master)
        assert new not in (None, master)
        t.assert_each_once_in_order()
        assert all(c.transport == "stream" for c in senders)
        ids = [mid for s in t.sent for mid in s]
        assert len(set(ids)) == len(ids) == 8 * t.total
        for c in senders + receivers:
            await c.close()
    finally:
        cluster.stop_all()


def unread_bytes(port: int) -> int:
    """The bytes that wait, received and unread, in the sockets of the
    process listening on 127.0.0.1:`port` (its connections' receive
    queues, as Linux shows them in /proc/net/tcp and tcp6: gRPC's sockets
    are IPv6 ones, 127.0.0.1 mapped)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:  # established
                total += int(queues.split(":")[1], 16)
    return total


async def test_a_window_of_sends_in_flight_on_one_stream_across_a_kill(tmp_path: Path) -> None:
    """32 concurrent sends of one session are written on its one Connect
    stream without waiting for each other's results: with the master that
    holds the stream paused (it can answer none), all 32 reach its socket.
    Killed -9 then, mid-window, the client writes all 32 again in order at
    the new master, and each is stored once, in the order sent."""
    cluster = await asyncio.to_thread(Cluster.start, tmp_path)
    try:
        master = await asyncio.to_thread(cluster.master)
        assert master is not None
        others = [cluster.addresses[n] for n in cluster.nodes if n != master]
        # spread=False: the stream opens where the calls go, at the master
        alice = await logged_in(
            [cluster.addresses[master], *others], "alice", spread=False, retry_for=90
        )
        bob = await logged_in(others, "bob")
        await bob.close()
        await alice.send("bob", "first")  # (the stream is open, at the master)
        port = int(cluster.addresses[master].rsplit(":", 1)[1])
        cluster.nodes[master].kill(signal.SIGSTOP)

        size = 1000  # 32 of them fit in a stream's flow-control window (64 KiB)
        bodies = [f"w{i:02d}".ljust(size, "x") for i in range(32)]
        sends = [asyncio.create_task(alice.send("bob", b)) for b in bodies]
        # every one of them written, none answered (nothing reads them)
        await eventually_async(
            lambda: unread_bytes(port),
            "32 sends waiting in the paused master's socket",
            until=lambda n: n >= 32 * size,
            timeout=30,
        )
        assert not any(t.done() for t in sends)
        cluster.kill(master)
        async with asyncio.timeout(90):
            ids = await asyncio.gather(*sends)
        assert ids == sorted(ids) and len(set(ids)) == 32  # in the order sent
        assert alice.transport == "stream"
        new = await asyncio.to_thread(cluster.master)
        assert new not in (None, master) and alice.session_id is not None
        stored = await history(cluster.addresses[new], alice.session_id, "bob")
        assert [b for _, b in stored] == ["first", *bodies]  # each once, in order
        assert stored[1:] == list(zip(ids, bodies, strict=True))
        await alice.close()
    finally:
        cluster.stop_all()


async def test_send_falls_back_to_unary_without_connect() -> None:
    """Against a server that has no Connect (UNIMPLEMENTED), send() uses the
    unary Send, with the same request id."""

    class OldServer(chat_pb2_grpc.ClientAccountServicer):
        def __init__(self) -> None:
            self.rids: list[str] = []

        async def Send(self, request: chat_pb2.SendRequest, context: object) -> Any:
            self.rids.append(request.request_id)
            return chat_pb2.ServerResponse(message_id=len(self.rids))

    old = OldServer()  # type: ignore[abstract]
    server = grpc.aio.server()
    chat_pb2_grpc.add_ClientAccountServicer_to_server(old, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        c = ChatClient([f"127.0.0.1:{port}"])
        c.session_id, c.username = "s", "alice"  # (this server has no Login)
        assert await c.send("bob", "hi", request_id="r1") == 1
        assert c.transport == "unary" and old.rids == ["r1"]
        assert await c.send("bob", "again") == 2 and c.transport == "unary"
        await c.close()
    finally:
        await server.stop(None)


async def test_an_oversized_send_on_the_stream_fails_alone(tmp_path: Path) -> None:
    """A send frame over the node's request limit ends the Connect stream
    (gRPC refuses it before reading it); the sends waiting with it go again
    as unary Sends with their request ids, so only the oversized one fails."""
    node = await build(node_config(tmp_path / "n", max_request_bytes=2048))
    await node.start()
    try:
        alice = await logged_in(node.address, "alice")
        await logged_in(node.address, "bob")
        big, small = alice.send("bob", "x" * 3000), alice.send("bob", "small", request_id="s1")
        got = await asyncio.gather(big, small, return_exceptions=True)
        assert (
            isinstance(got[0], CallFailed) and got[0].status == grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        assert isinstance(got[1], int) and got[1] > 0
        assert await alice.send("bob", "small", request_id="s1") == got[1]  # stored once
        await alice.close()
    finally:
        await node.stop()


async def test_a_slave_holding_streams_killed_while_they_receive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four receivers' Connect streams at a slave, which delivers from its
    own replica; the slave killed -9 midway: each stream opens again on
    another node and every message arrives once, in order."""
    cluster = await asyncio.to_thread(Cluster.start, tmp_path)
    try:
        master = await asyncio.to_thread(cluster.master)
        slave = next(n for n in cluster.addresses if n != master)
        at_slave = cluster.addresses[slave]
        addresses = list(cluster.addresses.values())
        senders = [await logged_in(addresses, f"s{i}", spread=False) for i in range(4)]
        monkeypatch.setattr("chatd.client.connection.random.choice", lambda _: at_slave)
        receivers = [await logged_in(addresses, f"r{i}") for i in range(4)]
        t = Traffic(senders, receivers)
        tasks = t.receiving()
        await eventually_async(
            lambda: all(r._connection and r._connection.open_at for r in receivers),
            "every receiver's stream open",
            timeout=30,
        )
        assert {r._connection.open_at for r in receivers if r._connection} == {at_slave}
        tasks += t.sending()
        await eventually_async(
            lambda: [len(g) for g in t.got],
            "15 received by each",
            until=lambda n: min(n) >= 15,
            timeout=60,
        )
        cluster.kill(slave)
        assert max(len(s) for s in t.sent) < t.total  # the kill comes while they send
        async with asyncio.timeout(90):
            await asyncio.gather(*tasks)
        t.assert_each_once_in_order()
        for r in receivers:
            assert r._connection is not None and r._connection.address != at_slave
        for c in senders + receivers:
            await c.close()
    finally:
        cluster.stop_all()


async def test_the_master_killed_is_the_node_a_client_reports_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receivers' Connect streams held at a slave, which carries them to the
    master; the master killed -9. The slave ends the streams, but it is the
    master that was lost: each client reports one loss naming the master's
    address, then one connection at a node that is alive, and its stream
    delivers again."""
    cluster = await asyncio.to_thread(Cluster.start, tmp_path)
    try:
        master = await asyncio.to_thread(cluster.master)
        assert master is not None
        slave = next(n for n in cluster.addresses if n != master)
        at_slave = cluster.addresses[slave]
        addresses = list(cluster.addresses.values())
        monkeypatch.setattr("chatd.client.connection.random.choice", lambda _: at_slave)
        events: list[list[ConnectionEvent]] = [[] for _ in range(4)]
        receivers = [
            await logged_in(addresses, f"r{i}", on_connection=events[i].append) for i in range(4)
        ]
        got: list[list[str]] = [[] for _ in receivers]

        async def receive(i: int) -> None:
            async for m in receivers[i].subscribe():
                got[i].append(m.body)

        tasks = [asyncio.create_task(receive(i)) for i in range(len(receivers))]
        await eventually_async(
            lambda: all(r._connection and r._connection.open_at for r in receivers),
            "every receiver's stream open",
            timeout=30,
        )
        assert {r._connection.open_at for r in receivers if r._connection} == {at_slave}
        for e in events:
            e.clear()
        await asyncio.to_thread(cluster.kill, master)
        async with ChatClient(addresses, spread=False, retry_for=30) as sender:
            await sender.create_account("sender", PASSWORD)
            await sender.login("sender", PASSWORD)
            for i in range(len(receivers)):
                await sender.send(f"r{i}", "after the failover")
        await eventually_async(
            lambda: got,
            "every receiver's message after the failover",
            until=lambda g: all(x == ["after the failover"] for x in g),
            timeout=30,
        )
        alive = {cluster.addresses[n] for n in cluster.alive()}
        for e in events:
            said = [(x.state, x.address) for x in e]
            assert said[0] == ("lost", cluster.addresses[master]), said
            assert len(said) == 2 and said[1][0] == "connected" and said[1][1] in alive, said
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in receivers:
            await c.close()
    finally:
        cluster.stop_all()
