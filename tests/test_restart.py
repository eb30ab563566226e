"""A node killed with SIGKILL keeps every acknowledged write when restarted."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import grpc

from chatd.proto import chat_pb2
from chatd.proto.chat_pb2_grpc import ClientAccountStub
from tests.conftest import LOCAL_POOL, PASSWORD, NodeProcess, login, user, wait_serving
from tests.waiting import eventually_async


async def test_kill_9_then_restart_keeps_everything(
    spawn_node: Callable[..., NodeProcess],
) -> None:
    proc = spawn_node("n1")
    address = proc.address  # type: ignore[attr-defined]
    await asyncio.to_thread(wait_serving, address)
    acked: list[int] = []
    async with grpc.aio.insecure_channel(address) as ch:
        stub = ClientAccountStub(ch)
        a = await user(stub, "alice")
        b = await user(stub, "bob")

        async def sender(i: int) -> None:
            for j in range(40):
                r = await stub.Send(
                    chat_pb2.SendRequest(
                        to="bob", message=f"{i}-{j}", session_id=a, request_id=f"{i}-{j}"
                    )
                )
                if r.error_code == 0:
                    acked.append(r.message_id)

        tasks = [asyncio.create_task(sender(i)) for i in range(8)]
        await eventually_async(
            lambda: len(acked),
            "100 acknowledged",
            until=lambda n: n >= 100,
            timeout=30,
            interval=0.005,
        )
        proc.kill(signal.SIGKILL)
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(acked) >= 100

    proc.start()  # the very same command line
    await asyncio.to_thread(wait_serving, address)
    # a fresh subchannel: the shared one may still be backing off from the kill
    async with grpc.aio.insecure_channel(address, options=LOCAL_POOL) as ch:
        stub = ClientAccountStub(ch)
        # sessions survived: both old session ids still work
        hist = await stub.GetChat(chat_pb2.ChatRequest(session_id=a, username="bob", limit=500))
        assert hist.error_code == 0
        stored = [m.message_id for m in hist.message]
        assert set(acked) <= set(stored), "an acknowledged message was lost"
        assert len(stored) == len(set(stored))
        # a retry of an acknowledged send stores nothing new
        r = await stub.Send(
            chat_pb2.SendRequest(to="bob", message="0-0", session_id=a, request_id="0-0")
        )
        assert r.error_code == 0 and r.message_id in stored
        got = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
        assert sorted(m.message_id for m in got.message) == sorted(stored)
        # accounts survived: passwords still check
        await login(stub, "alice")
        bad = await stub.Login(chat_pb2.LoginRequest(username="bob", password=PASSWORD + "x"))
        assert bad.error_code == 10
    proc.kill(signal.SIGTERM)
    assert proc.proc is not None and proc.proc.returncode == 0
