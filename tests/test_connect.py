"""Connect: one stream per session for sends, acknowledgements and
deliveries, on the master and through a slave. Real nodes in this process,
on loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from chatd.client import ChatClient
from chatd.contract import MASTER_HEADER, Code
from chatd.core.types import Role
from chatd.proto import chat_pb2
from chatd.server.api.session_stream import MAX_UNANSWERED, SessionStream
from chatd.server.api.unary import to_proto
from chatd.server.build import build
from chatd.server.chat.passwords import session_hash
from chatd.server.errors import NotWritable
from chatd.server.node import Node
from chatd.server.storage.store import Applied, Session
from tests.conftest import node_config, user
from tests.test_relay import both
from tests.test_relay import pair as pair
from tests.waiting import eventually_async

if TYPE_CHECKING:
    from chatd.proto.chat_pb2_grpc import ClientAccountAsyncStub as Stub


class Stream:
    """A Connect call driven frame by frame."""

    def __init__(self, stub: Stub, session: str, after: int = 0) -> None:
        self.call: Any = stub.Connect()  # type: ignore[call-arg]
        self.open = chat_pb2.ClientFrame(
            open=chat_pb2.OpenFrame(session_id=session, after_message_id=after)
        )
        self.results: dict[str, chat_pb2.SendResult] = {}
        self.messages: list[chat_pb2.Message] = []

    async def start(self) -> Stream:
        await self.call.write(self.open)
        return self

    async def send(self, rid: str, to: str, body: str) -> None:
        frame = chat_pb2.SendFrame(request_id=rid, to=to, message=body)
        await self.call.write(chat_pb2.ClientFrame(send=frame))

    async def ack(self, ids: list[int]) -> None:
        await self.call.write(chat_pb2.ClientFrame(ack=chat_pb2.AckFrame(message_ids=ids)))

    async def until(self, done: Any, timeout: float = 10.0) -> None:
        """Reads frames until done() holds."""
        async with asyncio.timeout(timeout):
            while not done():
                frame = await self.call.read()
                assert frame is not grpc.aio.EOF, "the stream ended"  # type: ignore[attr-defined]
                if frame.HasField("result"):
                    assert frame.result.request_id not in self.results, "two results"
                    self.results[frame.result.request_id] = frame.result
                else:
                    self.messages.append(frame.message)


async def test_sends_acks_and_deliveries_on_one_stream(node: Node, stub: Stub) -> None:
    a = await user(stub, "alice")
    b = await user(stub, "bob")
    alice = await Stream(stub, a).start()
    bob = await Stream(stub, b).start()
    for i in range(5):
        await alice.send(f"r{i}", "bob", f"hello {i}")
    await alice.send("self", "alice", "a note to myself")
    await alice.send("nobody", "nobody", "lost")
    await alice.send("empty", "bob", "")
    await alice.send("", "bob", "no request id")
    await alice.until(lambda: len(alice.results) == 9 and len(alice.messages) == 1)
    ids = [alice.results[f"r{i}"].message_id for i in range(5)]
    assert ids == sorted(ids) and all(ids), ids  # written in the order sent
    assert alice.results["nobody"].error_code == Code.NO_SUCH_RECIPIENT
    assert alice.results["empty"].error_code == Code.INVALID_MESSAGE
    assert alice.results[""].error_code == Code.INVALID_ARGUMENT
    assert [m.message for m in alice.messages] == ["a note to myself"]
    await bob.until(lambda: len(bob.messages) == 5)
    assert [m.message_id for m in bob.messages] == ids
    assert [m.from_ for m in bob.messages] == ["alice"] * 5
    # a resend with a request id already answered stores nothing new
    await alice.send("r0", "bob", "hello 0")
    await alice.until(lambda: alice.results["r0"].message_id == ids[0])
    alice.results.pop("r0")
    await alice.send("r0", "bob", "hello 0")
    await alice.until(lambda: "r0" in alice.results)
    assert alice.results["r0"].message_id == ids[0]
    # an ack frame marks delivered: GetMessages has nothing left for bob
    await bob.ack(ids)
    await eventually_async(
        lambda: stub.GetMessages(chat_pb2.ReceiveRequest(session_id=b)),
        "GetMessages: nothing left for bob",
        until=lambda r: r.error_code == Code.NO_MESSAGES,
    )
    # resuming after an id: the backlog after it, then live
    again = await Stream(stub, b, after=ids[2]).start()
    await again.until(lambda: len(again.messages) == 2)
    assert [m.message_id for m in again.messages] == ids[3:]
    for s in (alice, bob, again):
        s.call.cancel()


async def test_many_sends_in_flight_are_each_answered_once(stub: Stub) -> None:
    """Four times as many sends as may wait unanswered, written at once:
    the node stops reading at the bound and takes the rest as results go
    out; every send is answered once, in the order written."""
    a = await user(stub, "alice")
    await user(stub, "bob")
    alice = await Stream(stub, a).start()
    n = 4 * MAX_UNANSWERED
    for i in range(n):
        await alice.send(f"r{i}", "bob", f"m{i}")
    await alice.until(lambda: len(alice.results) == n)
    ids = [alice.results[f"r{i}"].message_id for i in range(n)]
    assert ids == sorted(set(ids)) and ids[0] > 0
    alice.call.cancel()


async def test_a_stream_must_open_with_a_live_session(stub: Stub) -> None:
    call: Any = stub.Connect()  # type: ignore[call-arg]
    await call.write(chat_pb2.ClientFrame(send=chat_pb2.SendFrame(request_id="x", to="bob")))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = await Stream(stub, "not-a-session").start()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await bad.call.read()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_slave_carries_the_stream_to_the_master(pair: tuple[Node, Node]) -> None:
    master, slave = pair
    async with both(pair) as (at_master, via_slave, sc):
        a = await user(via_slave, "alice")
        b = await user(at_master, "bob")
        alice = await Stream(via_slave, a).start()
        bob = await Stream(via_slave, b).start()
        named = dict(await alice.call.initial_metadata() or ()).get(MASTER_HEADER)
        assert named == master.address  # the master's client address
        for i in range(20):
            await alice.send(f"r{i}", "bob", f"m{i}")
        await alice.until(lambda: len(alice.results) == 20)
        ids = [alice.results[f"r{i}"].message_id for i in range(20)]
        assert ids == sorted(ids) and all(ids)
        await bob.until(lambda: len(bob.messages) == 20)
        assert [m.message_id for m in bob.messages] == ids
        # the deliveries come from the slave's own replica; the master takes
        # the sends, and counts both online while their streams last
        assert (slave.hub.stream_count(), master.hub.stream_count()) == (2, 0)
        assert master.hub.online("alice") and master.hub.online("bob")
        listed = await at_master.ListUsers(chat_pb2.Empty())
        assert {u.username: u.status for u in listed.user} == {"alice": "online", "bob": "online"}
        await alice.ack(ids[:10])  # carried to the master: bob's inbox keeps the rest
        await bob.ack(ids[:10])
        for s in (alice, bob):
            s.call.cancel()
        await eventually_async(lambda: not master.hub.online("bob"), "bob offline at the master")
        # messages sent at the master reach a stream the slave serves
        bob = await Stream(via_slave, b, after=ids[-1]).start()
        for i in range(3):
            await at_master.Send(chat_pb2.SendRequest(session_id=a, to="bob", message=f"x{i}"))
        await bob.until(lambda: len(bob.messages) == 3)
        assert [m.message for m in bob.messages] == ["x0", "x1", "x2"]
        bob.call.cancel()
        # a frame that does not parse ends the relayed stream as it would the
        # master's own
        call: Any = sc.stream_stream("/ClientAccount/Connect")()  # type: ignore[call-arg]
        await call.write(Stream(via_slave, a).open.SerializeToString())
        await call.write(b"\xff\xff\xff\xff")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async with asyncio.timeout(10):
                while True:
                    await call.read()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_send_the_node_cannot_write_ends_the_stream() -> None:
    """Once a send fails for the node's sake (it is no longer master), no
    later frame of that stream is taken: the client sends the failed one
    again first, on a new stream, so sends stay in the order sent."""

    class Chat:
        sent: list[str] = []

        def session(self, session_id: str) -> Session:
            return Session(1, "alice", 0)

        def start_send(
            self,
            session_id: str,
            to: str,
            body: str,
            rid: str,
            room: str = "",
            reply: int = 0,
            file_id: str = "",
        ) -> asyncio.Future[Applied]:
            self.sent.append(rid)
            if rid == "x":
                raise NotWritable("this node is not the master")
            done = asyncio.get_running_loop().create_future()
            done.set_result(Applied(len(self.sent), message_id=len(self.sent)))
            return done

    async def frames() -> AsyncIterator[chat_pb2.ClientFrame]:
        for rid in ("x", "y"):  # y at once, before the stream's end is written
            yield chat_pb2.ClientFrame(send=chat_pb2.SendFrame(request_id=rid, to="bob"))

    chat = Chat()
    stream = SessionStream(chat, to_proto)  # type: ignore[arg-type]
    opening = chat_pb2.OpenFrame(session_id="s", sends_only=True)
    out: list[chat_pb2.ServerFrame] = []
    async with asyncio.timeout(5):
        async for f in stream.run(opening, frames()):
            assert isinstance(f, chat_pb2.ServerFrame)  # (a result: not encoded ahead)
            out.append(f)
            await asyncio.sleep(0.05)  # a client reading slowly: frames keep coming
    assert [(f.result.request_id, f.result.status) for f in out] == [("x", 14)]
    assert stream.end.status == grpc.StatusCode.UNAVAILABLE
    assert chat.sent == ["x"]  # y was not taken


async def test_the_library_holds_its_stream_where_asked(pair: tuple[Node, Node]) -> None:
    """spread (the default): at one of the addresses given (here only the
    slave's), which serves the deliveries itself; spread=False: where calls
    go, the master once one answered."""
    master, slave = pair
    spread = ChatClient([slave.address])
    await spread.create_account("alice", "password-1")
    await spread.login("alice", "password-1")
    pinned = ChatClient([slave.address, master.address], spread=False)
    await pinned.create_account("bob", "password-1")
    await pinned.login("bob", "password-1")
    got: dict[str, list[str]] = {"alice": [], "bob": []}

    async def read(c: ChatClient) -> None:
        async for m in c.subscribe():
            got[c.username or ""].append(m.body)

    readers = [asyncio.create_task(read(c)) for c in (spread, pinned)]
    await spread.send("bob", "to bob")
    await pinned.send("alice", "to alice")
    want = {"alice": ["to alice"], "bob": ["to bob"]}
    await eventually_async(lambda: got, "each stream's message", until=lambda g: g == want)
    assert (slave.hub.stream_count(), master.hub.stream_count()) == (1, 1)
    for task in readers:
        task.cancel()
    for c in (spread, pinned):
        await c.close()


async def test_the_stream_limit_counts_a_users_streams_on_every_node(
    pair: tuple[Node, Node],
) -> None:
    """--max-streams-per-user (16 here) holds for the user's streams at the
    master and at a slave together: the master counts those the slave
    serves."""
    master, slave = pair
    async with both(pair) as (at_master, via_slave, _):
        a = await user(at_master, "alice")
        limit = master.config.max_streams_per_user
        streams = [await Stream(via_slave, a).start() for _ in range(limit // 2)]
        streams += [await Stream(at_master, a).start() for _ in range(limit - limit // 2)]
        for s in streams:
            await s.call.initial_metadata()
        # (a stream at the master is counted when its deliveries start, a
        # moment after the client has its headers; each count checks the limit)
        await eventually_async(
            lambda: master.hub.streams_of("alice"), f"{limit} streams", until=lambda n: n == limit
        )
        assert (slave.hub.stream_count(), master.hub.streams_of("alice")) == (limit // 2, limit)
        extra = await Stream(via_slave, a).start()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async with asyncio.timeout(10):
                await extra.call.read()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for s in streams:
            s.call.cancel()


async def test_a_slave_leaves_recording_session_use_to_the_master(tmp_path: Path) -> None:
    """A session used on a slave's Connect stream is recorded (touched) by
    the master, which the stream reaches; the slave writes nothing (a write
    there could only fail)."""
    master = await build(node_config(tmp_path / "m", session_ttl=5.0))  # touched every 0.5 s
    await master.start()
    slave = await build(node_config(tmp_path / "s", session_ttl=5.0, join=(master.peer_address,)))
    try:
        await slave.start()
        await eventually_async(lambda: slave.repl.core.role is Role.SLAVE, "a slave")
        submitted: list[str] = []
        real_enqueue = slave.writer.enqueue

        def enqueue(entry: Any) -> Any:
            submitted.append(entry.WhichOneof("op"))
            return real_enqueue(entry)

        slave.writer.enqueue = enqueue  # type: ignore[method-assign]
        async with both((master, slave)) as (at_master, via_slave, _):
            a = await user(at_master, "alice")
            used = master.store.sessions[session_hash(a)].last_used_us
            await asyncio.sleep(0.6)  # stale enough to be touched (the age is the test)
            stream = await Stream(via_slave, a).start()
            await stream.call.initial_metadata()
            await eventually_async(
                lambda: master.store.sessions[session_hash(a)].last_used_us,
                "the session touched at the master",
                until=lambda t: t > used,
            )
            assert submitted == []
            stream.call.cancel()
    finally:
        # the master first (either order stops at once: a slave ends its
        # master's log stream as it stops)
        await master.stop()
        await slave.stop()


def test_a_published_message_is_encoded_once_for_all_its_streams() -> None:
    """The delivery frame of a message published to many streams (a room's
    members) is encoded once; the same id read again from the store (another
    object: it may have been edited since) is encoded from what it holds."""
    from chatd.server.api.session_stream import ENCODED_KEPT, to_frame
    from chatd.server.storage.store import StoredMessage

    published = StoredMessage(7, "alice", "#team", "hello", 1, room="#team")
    frames = [to_frame(published, to_proto) for _ in range(3)]
    assert frames[0] is frames[1] is frames[2]
    assert chat_pb2.ServerFrame.FromString(frames[0]).message.message == "hello"
    reread = StoredMessage(7, "alice", "#team", "hello again", 1, room="#team", edited=True)
    again = chat_pb2.ServerFrame.FromString(to_frame(reread, to_proto)).message
    assert (again.message, again.edited) == ("hello again", True)
    for i in range(ENCODED_KEPT + 1):  # the cache stays bounded
        to_frame(StoredMessage(1000 + i, "a", "b", "x", 1), to_proto)
    assert to_frame(published, to_proto) is not frames[0]  # (long since dropped)
