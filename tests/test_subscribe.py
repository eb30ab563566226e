"""Subscribe: backlog then live, in id order, no gaps, no duplicates."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from chatd.proto import chat_pb2, log_pb2
from chatd.proto.chat_pb2_grpc import ClientAccountStub
from chatd.server.build import build
from chatd.server.node import Node
from chatd.server.storage.store import now_us
from tests.conftest import login, node_config, user
from tests.waiting import eventually_async

if TYPE_CHECKING:
    from chatd.proto.chat_pb2_grpc import ClientAccountAsyncStub as Stub


async def collect(call: object, count: int, timeout: float = 10.0) -> list[chat_pb2.Message]:
    got: list[chat_pb2.Message] = []
    async with asyncio.timeout(timeout):
        async for m in call:  # type: ignore[attr-defined]
            got.append(m)
            if len(got) == count:
                break
    return got


async def send_many(stub: Stub, sid: str, to: str, n: int, tag: str = "m") -> list[int]:
    ids = []
    for i in range(n):
        r = await stub.Send(chat_pb2.SendRequest(to=to, message=f"{tag}{i}", session_id=sid))
        assert r.error_code == 0
        ids.append(r.message_id)
    return ids


async def test_backlog_then_live(stub: Stub) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    old = await send_many(stub, a, "bob", 3, "old")
    call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b))
    first = await collect(call, 3)
    assert [m.message_id for m in first] == old
    new = await send_many(stub, a, "bob", 3, "new")
    live = await collect(call, 3)
    assert [m.message_id for m in live] == new
    assert [(m.from_, m.to, m.message) for m in live] == [
        ("alice", "bob", f"new{i}") for i in range(3)
    ]
    call.cancel()


async def test_after_message_id_resumes(stub: Stub) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    ids = await send_many(stub, a, "bob", 6)
    call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b, after_message_id=ids[2]))
    got = await collect(call, 3)
    assert [m.message_id for m in got] == ids[3:]
    call.cancel()


async def test_only_messages_to_the_caller(stub: Stub) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    await user(stub, "carol")
    call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b))
    await send_many(stub, a, "carol", 2)
    await send_many(stub, b, "alice", 2)
    mine = await send_many(stub, a, "bob", 1)
    got = await collect(call, 1)
    assert [m.message_id for m in got] == mine
    call.cancel()


async def test_writes_racing_the_backlog_read(stub: Stub) -> None:
    """Subscribe while senders are writing, with a backlog longer than a page:
    the stream holds every message exactly once, in id order."""
    b = await user(stub, "bob")
    senders = [await user(stub, f"s{i}") for i in range(4)]
    await asyncio.gather(*(send_many(stub, s, "bob", 200) for s in senders))
    total = 4 * 200 + 4 * 150

    async def late_writes() -> list[int]:
        parts = await asyncio.gather(*(send_many(stub, s, "bob", 150, "late") for s in senders))
        return [i for p in parts for i in p]

    writer = asyncio.create_task(late_writes())
    await asyncio.sleep(0.01)  # (the writers begin: the race is the test)
    call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b))
    got = await collect(call, total, timeout=30)
    await writer
    ids = [m.message_id for m in got]
    assert ids == sorted(set(ids)), "out of order or duplicated"
    stored: list[int] = []
    for _ in range(10):  # GetMessages hands out at most 1000 at a time
        r = await stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b))
        if r.error_code == 17:
            break
        stored += [m.message_id for m in r.message]
    assert ids == stored
    call.cancel()


async def test_every_stream_of_a_user_receives(node: Node, stub: Stub) -> None:
    a = await user(stub, "alice")
    b1 = await user(stub, "bob")
    b2 = await login(stub, "bob")
    calls = [stub.Subscribe(chat_pb2.SubscribeRequest(session_id=s)) for s in (b1, b2, b1)]
    await eventually_async(lambda: node.hub.streams_of("bob"), "3 streams", until=lambda n: n == 3)
    ids = await send_many(stub, a, "bob", 5)
    results = await asyncio.gather(*(collect(c, 5) for c in calls))
    for got in results:
        assert [m.message_id for m in got] == ids
    for c in calls:
        c.cancel()


async def test_bad_session_is_unauthenticated(stub: Stub) -> None:
    call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id="nope"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(call, 1)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_logout_ends_the_sessions_streams(node: Node, stub: Stub) -> None:
    a = await user(stub, "alice")
    b1 = await user(stub, "bob")
    b2 = await login(stub, "bob")
    ended = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b1))
    kept = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b2))
    await eventually_async(lambda: node.hub.streams_of("bob"), "2 streams", until=lambda n: n == 2)
    assert (await stub.Logout(chat_pb2.DeleteAccountRequest(session_id=b1))).error_code == 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(ended, 1)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    ids = await send_many(stub, a, "bob", 1)
    assert [m.message_id for m in await collect(kept, 1)] == ids
    kept.cancel()


SLOW_READER = """
import sys, grpc
from chatd.proto import chat_pb2, chat_pb2_grpc

with grpc.insecure_channel(sys.argv[1]) as ch:
    stream = chat_pb2_grpc.ClientAccountStub(ch).Subscribe(
        chat_pb2.SubscribeRequest(session_id=sys.argv[2]), timeout=60)
    print(next(stream).message_id, flush=True)
    sys.stdin.readline()  # stop reading until told to go on
    last = 0
    try:
        for m in stream:
            last = m.message_id
        print("END", "OK", last, flush=True)
    except grpc.RpcError as exc:
        print("END", exc.code().name, last, flush=True)
"""


async def test_slow_subscriber_is_cut_off_not_the_server(tmp_path: Path) -> None:
    """A subscriber (another process) that stops reading is dropped from live
    delivery once its queue overflows, while writes go on; when it reads again
    it gets what was in flight, then RESOURCE_EXHAUSTED, and resumes from its
    last id with nothing lost."""
    n = await build(node_config(tmp_path / "n", subscriber_queue=8))
    await n.start()
    reader: asyncio.subprocess.Process | None = None
    try:
        async with grpc.aio.insecure_channel(n.address) as ch:
            stub = ClientAccountStub(ch)
            a = await user(stub, "alice")
            b = await user(stub, "bob")
            first = (await send_many(stub, a, "bob", 1))[0]
            reader = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                SLOW_READER,
                n.address,
                b,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert reader.stdin is not None and reader.stdout is not None
            async with asyncio.timeout(20):
                assert int(await reader.stdout.readline()) == first
            (sub,) = [s for subs in n.hub._by_user.values() for s in subs]
            body = "x" * 4000
            sent = 0
            async with asyncio.timeout(60):
                while not sub.overflowed and sent < 20_000:
                    await send_many(stub, a, "bob", 1, body)
                    sent += 1
            assert sub.overflowed, "the slow stream was never cut off"
            more = await send_many(stub, a, "bob", 50, "after")  # writes go on
            reader.stdin.write(b"go\n")
            async with asyncio.timeout(30):
                end = (await reader.stdout.readline()).split()
            assert end[:2] == [b"END", b"RESOURCE_EXHAUSTED"]
            last = int(end[2])
            assert first <= last < more[-1]
            again = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b, after_message_id=last))
            rest = await collect(again, more[-1] - last, timeout=30)
            assert [m.message_id for m in rest] == list(range(last + 1, more[-1] + 1))
            again.cancel()
    finally:
        if reader is not None and reader.returncode is None:
            reader.kill()
            await reader.wait()
        await n.stop()


async def test_shutdown_ends_streams_unavailable(tmp_path: Path) -> None:
    n = await build(node_config(tmp_path / "n"))
    await n.start()
    stopped = False
    try:
        async with grpc.aio.insecure_channel(n.address) as ch:
            stub = ClientAccountStub(ch)
            b = await user(stub, "bob")
            call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b))
            await eventually_async(lambda: n.hub.streams_of("bob"), "bob's stream open")
            stopping = asyncio.create_task(n.stop())
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await collect(call, 1)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            async with asyncio.timeout(10):
                await stopping
            stopped = True
    finally:
        if not stopped:
            await n.stop()


async def test_messages_a_new_master_inherits_reach_open_streams(node: Node, stub: Stub) -> None:
    """A new master's log holds messages the master before it committed,
    which this node never published: once it knows them committed, open
    streams (backlog-then-live and live-only) deliver them, in order, and
    go on live."""
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    first = await send_many(stub, a, "bob", 1)
    call = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b))
    live = stub.Subscribe(chat_pb2.SubscribeRequest(session_id=b, live_only=True))
    assert [m.message_id for m in await collect(call, 1)] == first
    await live.initial_metadata()
    # entries as a slave receives them: appended and applied, not through the writer
    async with node.store_lock:
        node.store.begin()
        for i in range(2):
            op = log_pb2.SendMessage(sender="alice", recipient="bob", body=f"inherited{i}")
            entry = log_pb2.Entry(send_message=op, time_us=now_us())
            node.store.append(entry, entry.SerializeToString(deterministic=True), 1)
        node.store.commit()
    await asyncio.sleep(0.2)  # (a while applied here, not yet known committed)
    node.writer.committed(node.store.last_index)  # as the new master's core says
    for stream in (call, live):
        assert [m.message for m in await collect(stream, 2)] == ["inherited0", "inherited1"]
    new = await send_many(stub, a, "bob", 1, "after")
    for stream in (call, live):
        assert [m.message_id for m in await collect(stream, 1)] == new
    call.cancel()
    live.cancel()
