"""The ClientAccount servicer's one path for unary calls: relayed as they are
from a slave to the master, answered here on the master, UNAVAILABLE while
no master is known. Two real nodes in this process, on loopback ports."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from chatd.contract import MASTER_HEADER, Code
from chatd.core.types import Role
from chatd.proto import chat_pb2
from chatd.proto.chat_pb2_grpc import ClientAccountStub
from chatd.server.build import build
from chatd.server.node import Node
from tests.conftest import PASSWORD, free_port, node_config
from tests.waiting import eventually_async

if TYPE_CHECKING:
    from chatd.proto.chat_pb2_grpc import ClientAccountAsyncStub as Stub


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    master = await build(node_config(tmp_path / "master"))
    await master.start()
    slave = await build(node_config(tmp_path / "slave", join=(master.peer_address,)))
    try:
        await slave.start()

        def slave_of_a_known_master() -> bool:
            core = slave.repl.core
            return core.role is Role.SLAVE and bool(core.membership.addresses.get(core.master))

        await eventually_async(slave_of_a_known_master, "the second node a slave of a known master")
        yield master, slave
    finally:
        # the master first (either order stops at once: a slave ends its
        # master's log stream as it stops)
        await master.stop()
        await slave.stop()


@contextlib.asynccontextmanager
async def both(pair: tuple[Node, Node]) -> AsyncIterator[tuple[Stub, Stub, grpc.aio.Channel]]:
    """Stubs at the master and through the slave, and the slave's channel."""
    master, slave = pair
    async with (
        grpc.aio.insecure_channel(master.address) as mc,
        grpc.aio.insecure_channel(slave.address) as sc,
    ):
        yield ClientAccountStub(mc), ClientAccountStub(sc), sc


async def answer(stub: Stub, name: str, request: Any) -> tuple[Any, str]:
    """The response and the master the answer names."""
    call = getattr(stub, name)(request)
    response = await call
    named = dict(await call.trailing_metadata() or ()).get(MASTER_HEADER, "")
    return response, str(named)


async def test_every_unary_call_from_a_slave_is_the_masters_answer(
    pair: tuple[Node, Node],
) -> None:
    master = pair[0]
    async with both(pair) as (at_master, via_slave, _):
        account = chat_pb2.CreateAccountRequest(username="alice", password=PASSWORD)
        ok, named = await answer(via_slave, "CreateAccount", account)
        assert ok.error_code == 0 and named == master.address
        # a refusal crosses the relay as the master's own answer
        for stub in (via_slave, at_master):
            taken, named = await answer(stub, "CreateAccount", account)
            assert (taken.error_code, taken.error_message) == (8, "username already exists")
            assert named == master.address
        login, _ = await answer(
            via_slave, "Login", chat_pb2.LoginRequest(username="alice", password=PASSWORD)
        )
        sid = login.session_id
        assert login.error_code == 0 and sid
        sent, _ = await answer(
            via_slave,
            "Send",
            chat_pb2.SendRequest(to="alice", message="hi", session_id=sid, request_id="r1"),
        )
        assert sent.error_code == 0 and sent.message_id > 0
        users, _ = await answer(via_slave, "ListUsers", chat_pb2.Empty())
        assert [u.username for u in users.user] == ["alice"]
        chat, _ = await answer(
            via_slave, "GetChat", chat_pb2.ChatRequest(session_id=sid, username="alice")
        )
        assert [m.message for m in chat.message] == ["hi"]
        inbox, _ = await answer(via_slave, "GetMessages", chat_pb2.ReceiveRequest(session_id=sid))
        assert [m.message_id for m in inbox.message] == [sent.message_id]
        ack = chat_pb2.AcknowledgeReceivedMessagesRequest(session_id=sid, message_ids=[1])
        assert (await answer(via_slave, "AcknowledgeReceivedMessages", ack))[0].error_code == 0
        # a refusal in a Messages answer, here and relayed alike
        for stub in (via_slave, at_master):
            bad, _ = await answer(stub, "GetMessages", chat_pb2.ReceiveRequest(session_id="x"))
            assert (bad.error_code, bad.error_message) == (Code.NOT_LOGGED_IN, "not logged in")
        # a carried Connect stream's frames from the master come undecoded:
        # the slave writes them to its client as they came
        slave = pair[1]
        call = slave.router.connect_call(slave.router.route()[1])(metadata=slave.router.metadata)
        try:
            opening = chat_pb2.OpenFrame(session_id=sid, sends_only=True)
            await call.write(chat_pb2.ClientFrame(open=opening))
            send = chat_pb2.SendFrame(request_id="raw", to="alice", message="m")
            await call.write(chat_pb2.ClientFrame(send=send))
            frame = await call.read()
            assert type(frame) is bytes
            assert chat_pb2.ServerFrame.FromString(frame).result.message_id > sent.message_id
        finally:
            call.cancel()
        end = chat_pb2.DeleteAccountRequest(session_id=sid)
        assert (await answer(via_slave, "Logout", end))[0].error_code == 0
        assert (await answer(via_slave, "DeleteAccount", end))[0].error_code == Code.NOT_LOGGED_IN
        # too large is refused by the node asked, by gRPC before it is buffered
        big = chat_pb2.CreateAccountRequest(username="bob", password="p" * 300_000)
        for stub in (via_slave, at_master):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.CreateAccount(big)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max (300009 vs. 262144)" in (info.value.details() or "")
    # every relayed call goes on one stub of the master's channel (a stub
    # of the ClientAccount service is 48 us to make)
    slave = pair[1]
    route = slave.router.route()
    assert slave.router.master_stub(*route) is slave.router.master_stub(*route)


async def test_no_master_known_is_unavailable(tmp_path: Path) -> None:
    lost = await build(node_config(tmp_path / "lost", join=(f"127.0.0.1:{free_port()}",)))
    await lost.start()
    try:
        async with grpc.aio.insecure_channel(lost.address) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await ClientAccountStub(ch).ListUsers(chat_pb2.Empty())
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no master" in (info.value.details() or "")
    finally:
        await lost.stop()


async def test_a_slave_stopped_before_its_master_stops_at_once(tmp_path: Path) -> None:
    """SIGTERM's path on a slave whose master runs on: the master's log stream
    into it is ended with the client streams, so the stop does not wait out
    the shutdown grace (5 s) for it, and the master carries on."""
    master = await build(node_config(tmp_path / "master"))
    await master.start()
    slave = await build(node_config(tmp_path / "slave", join=(master.peer_address,)))
    try:
        await slave.start()
        await eventually_async(
            lambda: slave.repl.core.role is Role.SLAVE and bool(slave.peers.inbound),
            "the master's log stream into the slave",
        )
        start = time.monotonic()
        await slave.stop()
        took = time.monotonic() - start
        assert took < 2.0, f"the slave took {took:.1f} s to stop"
        assert master.repl.core.role is Role.MASTER
    finally:
        await master.stop()
