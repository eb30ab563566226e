"""Typing notices and read receipts on a real 3-node cluster in this process
(n1 the master, n2 and n3 its slaves, real gRPC on loopback, real SQLite
files): who sees them on every node, who does not, the bounds on typing,
the share setting across a master's loss (and, with real node processes,
a master SIGKILLed), what an attacker gets, and the client library's
calls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from chatd.client import ChatClient, Receipt, Typing
from chatd.contract import Code
from chatd.core.types import Role
from chatd.proto import chat_pb2
from chatd.proto.chat_pb2_grpc import ClientAccountStub
from chatd.server.chat.events import TYPING_USER_BURST, TYPING_USER_RATE
from chatd.server.chat.presence import TYPING_DROPS_PER_S, TYPING_EXPIRES_MS
from chatd.server.node import Node
from tests.cluster import Cluster
from tests.conftest import PASSWORD, create_user, login
from tests.server_fixtures import three_nodes
from tests.waiting import eventually_async

if TYPE_CHECKING:
    from chatd.proto.chat_pb2_grpc import ClientAccountAsyncStub as Stub

pytestmark = pytest.mark.timeout(120)
QUIET_S = 0.6  # how long a stream that should get nothing is watched


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[list[Node]]:
    """n1 the master, n2 and n3 its slaves."""
    async with three_nodes(tmp_path) as nodes:
        yield nodes  # (a test that stops one takes it out of the list)


@contextlib.asynccontextmanager
async def stubs(nodes: list[Node]) -> AsyncIterator[list[Stub]]:
    async with contextlib.AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(n.address)) for n in nodes
        ]
        yield [ClientAccountStub(c) for c in channels]


class Events:
    """A Connect stream (opened live only), its frames collected by kind."""

    def __init__(self, stub: Stub, session: str, events: bool = True) -> None:
        self.call: Any = stub.Connect()  # type: ignore[call-arg]
        self.open = chat_pb2.OpenFrame(session_id=session, live_only=True, events=events)
        self.typing: list[chat_pb2.Typing] = []
        self.receipts: list[chat_pb2.Receipt] = []
        self.results: dict[str, chat_pb2.SendResult] = {}
        self.messages: list[chat_pb2.Message] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Events:
        await self.call.write(chat_pb2.ClientFrame(open=self.open))
        await self.call.initial_metadata()
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for frame in self.call:
            kind = frame.WhichOneof("frame")
            if kind == "typing":
                self.typing.append(frame.typing)
            elif kind == "receipt":
                self.receipts.append(frame.receipt)
            elif kind == "result":
                self.results[frame.result.request_id] = frame.result
            else:
                self.messages.append(frame.message)

    async def type(self, peer: str = "", room: str = "") -> None:
        frame = chat_pb2.TypingFrame(peer=peer, room=room)
        await self.call.write(chat_pb2.ClientFrame(typing=frame))

    async def send(self, rid: str, to: str, body: str) -> chat_pb2.SendResult:
        frame = chat_pb2.SendFrame(request_id=rid, to=to, message=body)
        await self.call.write(chat_pb2.ClientFrame(send=frame))
        await eventually_async(lambda: rid in self.results, f"the result of {rid}")
        return self.results[rid]

    async def close(self) -> None:
        self.call.cancel()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self.task


async def users(stub: Stub, *names: str) -> dict[str, str]:
    for name in names:
        await create_user(stub, name)
    return {name: await login(stub, name) for name in names}


async def room_of(stub: Stub, sessions: dict[str, str], room: str, *names: str) -> None:
    """`room`, created by the first of `names`, the others invited and joined."""
    first, *rest = names
    r = await stub.CreateRoom(chat_pb2.RoomRequest(session_id=sessions[first], room=room))
    assert r.error_code == 0, r
    for name in rest:
        invite = chat_pb2.RoomMemberRequest(session_id=sessions[first], room=room, username=name)
        assert (await stub.InviteToRoom(invite)).error_code == 0
        join = chat_pb2.RoomRequest(session_id=sessions[name], room=room)
        assert (await stub.JoinRoom(join)).error_code == 0


async def registered(node: Node, counts: dict[str, int]) -> None:
    """Until `node` holds that many event streams of each user."""

    def held() -> dict[str, int]:
        return {name: node.hub.event_streams(name) for name in counts}

    await eventually_async(held, f"event streams {counts}", until=lambda h: h == counts)


async def caught_up(nodes: list[Node]) -> None:
    """Until every node has applied what the master has."""
    index = nodes[0].store.last_index
    await eventually_async(
        lambda: all(n.store.last_index >= index for n in nodes), "every node caught up"
    )


def typed(t: chat_pb2.Typing) -> tuple[str, str, str, int]:
    return (t.from_, t.peer, t.room, t.expires_ms)


async def test_typing_reaches_the_other_members_on_every_node_and_no_one_else(
    trio: list[Node],
) -> None:
    n1 = trio[0]
    async with stubs(trio) as (s1, s2, s3):
        sid = await users(s1, "alice", "bob", "carol", "dave")
        await room_of(s1, sid, "r", "carol", "alice", "bob")
        await caught_up(trio)
        typer = await Events(s2, sid["alice"]).start()  # alice on slave n2
        own = await Events(s1, sid["alice"]).start()  # her other device, on the master
        bob = await Events(s3, sid["bob"]).start()  # on slave n3
        bob_plain = await Events(s3, sid["bob"], events=False).start()
        carol = await Events(s1, sid["carol"]).start()  # on the master
        dave = await Events(s3, sid["dave"]).start()  # in no room of theirs
        await registered(n1, {"alice": 2, "bob": 1, "carol": 1, "dave": 1})

        await typer.type(room="r")
        await eventually_async(lambda: bob.typing and carol.typing, "the room's typing")
        expected = ("alice", "", "r", TYPING_EXPIRES_MS)
        assert [typed(t) for t in bob.typing] == [expected]
        assert [typed(t) for t in carol.typing] == [expected]

        await typer.type(peer="BOB")  # (a name in any case names the account)
        await eventually_async(lambda: len(bob.typing) == 2, "the one-to-one typing")
        assert typed(bob.typing[1]) == ("alice", "bob", "", TYPING_EXPIRES_MS)
        await asyncio.sleep(QUIET_S)
        assert len(carol.typing) == 1  # not a party to alice and bob's conversation
        for quiet in (typer, own, bob_plain, dave):
            assert quiet.typing == [] and quiet.receipts == []
        # a stream without events sees what it always did: a message, and only that
        r = await s2.Send(
            chat_pb2.SendRequest(session_id=sid["alice"], to="bob", message="hi", request_id="1")
        )
        await eventually_async(lambda: bob_plain.messages, "the message")
        assert [m.message_id for m in bob_plain.messages] == [r.message_id]
        for s in (typer, own, bob, bob_plain, carol, dave):
            await s.close()


async def test_a_flood_of_typing_is_bounded_and_sends_still_go(trio: list[Node]) -> None:
    """10,000 typing frames on one stream at a slave and 10,000 on one at the
    master: each reader is told at most one a second per conversation, the
    flooding streams are held (read no more for the rest of a second once
    they dropped TYPING_DROPS_PER_S), and their sends, and another user's,
    are answered meanwhile."""
    n1, _, _ = trio
    async with stubs(trio) as (s1, s2, s3):
        sid = await users(s1, "alice", "bob", "carol")
        await room_of(s1, sid, "r", "carol", "alice", "bob")
        await caught_up(trio)
        at_slave = await Events(s2, sid["alice"]).start()
        at_master = await Events(s1, sid["carol"]).start()
        bob = await Events(s3, sid["bob"]).start()
        await registered(n1, {"alice": 1, "bob": 1, "carol": 1})

        async def flood(s: Events, name: str) -> float:
            start = time.monotonic()
            for i in range(10_000):
                await s.type(room="r")
                if i % 2_000 == 0:
                    result = await s.send(f"{name}{i}", "bob", f"during {i}")
                    assert result.message_id > 0 and result.error_code == 0, result
            await s.send(f"{name}-last", "bob", "after")
            return time.monotonic() - start

        async def others_send() -> list[float]:
            took = []
            for i in range(20):
                start = time.monotonic()
                request = chat_pb2.SendRequest(
                    session_id=sid["bob"], to="carol", message="x", request_id=f"b{i}"
                )
                assert (await s3.Send(request)).message_id > 0
                took.append(time.monotonic() - start)
                await asyncio.sleep(0.05)
            return took

        slave_s, master_s, took = await asyncio.gather(
            flood(at_slave, "a"), flood(at_master, "c"), others_send()
        )
        await asyncio.sleep(QUIET_S)
        by = {n: sum(t.from_ == n for t in bob.typing) for n in ("alice", "carol")}
        # one at once, then one a second of the flood at most
        assert 1 <= by["alice"] <= int(slave_s) + 2, (by, slave_s)
        assert 1 <= by["carol"] <= int(master_s) + 2, (by, master_s)
        assert max(took) < 2.0, took
        # the flooders are held: past TYPING_DROPS_PER_S dropped frames a
        # second a stream is read no more until the second ends
        assert min(slave_s, master_s) > 10_000 / TYPING_DROPS_PER_S / 3, (slave_s, master_s)
        print(f"typing flood: 10,000 frames in {slave_s:.2f} s at a slave, {master_s:.2f} s at")
        print(f"the master; bob told {by}; another user's Send at most {max(took):.3f} s")
        for s in (at_slave, at_master, bob):
            await s.close()


async def test_a_users_streams_together_are_bounded_too(trio: list[Node]) -> None:
    """More streams do not mean more typing: 30 streams of one user (at
    both slaves and the master), one typing frame each, all at once: the
    reader is told at most TYPING_USER_BURST of them, and a second later
    one more gets through."""
    n1 = trio[0]
    async with stubs(trio) as stubs_:
        sid = await users(stubs_[0], "alice", "bob")
        await caught_up(trio)
        bob = await Events(stubs_[0], sid["bob"]).start()
        await registered(n1, {"bob": 1})
        many = []
        for i in range(30):
            s = Events(stubs_[i % 3], sid["alice"], events=False)
            s.open.sends_only = True
            many.append(await s.start())
        start = time.monotonic()
        await asyncio.gather(*(s.type(peer="bob") for s in many))
        await asyncio.sleep(QUIET_S)
        took = time.monotonic() - start
        assert 1 <= len(bob.typing) <= TYPING_USER_BURST + int(took * TYPING_USER_RATE) + 1
        told = len(bob.typing)
        await asyncio.sleep(1.0)
        await many[0].type(peer="bob")
        await eventually_async(lambda: len(bob.typing) > told, "one more a second later")
        for s in (*many, bob):
            await s.close()


@pytest.mark.parametrize("at", [0, 1], ids=["master", "slave"])
async def test_typing_where_one_may_not_write_is_dropped_and_the_stream_lives(
    trio: list[Node], at: int
) -> None:
    n1 = trio[0]
    async with stubs(trio) as stubs_:
        s1 = stubs_[0]
        sid = await users(s1, "alice", "bob", "mallory")
        await room_of(s1, sid, "r", "alice", "bob")
        await caught_up(trio)
        mallory = await Events(stubs_[at], sid["mallory"]).start()
        alice = await Events(stubs_[2], sid["alice"]).start()
        bob = await Events(s1, sid["bob"]).start()
        await registered(n1, {"alice": 1, "bob": 1, "mallory": 1})
        for frame in (
            {"room": "r"},  # a room not joined
            {"room": "nosuchroom"},
            {"peer": "nosuchuser"},
            {"peer": "mallory"},  # oneself
            {"peer": "alice", "room": "r"},  # both
            {},  # neither
            {"room": "r" * 200_000},  # a name no room has (under the request limit)
            {"peer": "alice\x00"},
        ):
            await mallory.type(**frame)
        result = await mallory.send("m1", "alice", "the stream lives")
        assert result.message_id > 0, result
        await asyncio.sleep(QUIET_S)
        assert alice.typing == [] and bob.typing == []
        # a frame over the request limit is the transport's to refuse (as a
        # send's is): that stream ends, the node goes on
        await mallory.type(room="r" * 1_000_000)
        assert mallory.task is not None
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await mallory.task
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        again = await Events(stubs_[at], sid["mallory"]).start()
        assert (await again.send("m2", "alice", "still here")).message_id > 0
        assert alice.typing == [] and bob.typing == []
        for s in (again, alice, bob):
            await s.close()


def receipt(r: chat_pb2.Receipt) -> tuple[str, str, str, int]:
    return (r.username, r.peer, r.room, r.upto)


async def listed(stub: Stub, session: str, peer: str = "", room: str = "") -> list[Any]:
    request = chat_pb2.ReceiptsRequest(session_id=session, peer=peer, room=room)
    r = await stub.ListReceipts(request)
    assert r.error_code == 0, r
    return [(x.username, x.upto) for x in r.receipt]


async def mark(stub: Stub, session: str, upto: int, peer: str = "", room: str = "") -> None:
    request = chat_pb2.MarkReadRequest(session_id=session, peer=peer, room=room, upto=upto)
    assert (await stub.MarkRead(request)).error_code == 0


async def send(stub: Stub, session: str, body: str, to: str = "", room: str = "") -> int:
    request = chat_pb2.SendRequest(
        session_id=session, to=to, room=room, message=body, request_id=body
    )
    r = await stub.Send(request)
    assert r.error_code == 0, r
    return int(r.message_id)


async def test_receipts_are_live_and_listed_on_every_node(trio: list[Node]) -> None:
    n1, n2, n3 = trio
    async with stubs(trio) as (s1, s2, s3):
        sid = await users(s1, "alice", "bob", "carol")
        await room_of(s1, sid, "r", "carol", "alice", "bob")
        await caught_up(trio)
        alice = await Events(s2, sid["alice"]).start()
        bob = await Events(s3, sid["bob"]).start()
        carol = await Events(s1, sid["carol"]).start()
        # receipts come from each node's own replica
        await registered(n2, {"alice": 1})
        await registered(n3, {"bob": 1})
        await registered(n1, {"carol": 1})

        one = await send(s3, sid["bob"], "to alice", to="alice")
        await mark(s2, sid["alice"], one, peer="bob")  # alice, on n2, read it
        await eventually_async(lambda: bob.receipts, "bob told on n3")
        assert [receipt(r) for r in bob.receipts] == [("alice", "bob", "", one)]
        assert await listed(s3, sid["bob"], peer="alice") == [("alice", one)]
        assert await listed(s2, sid["alice"], peer="bob") == []  # bob marked nothing

        two = await send(s1, sid["carol"], "to the room", room="r")
        await mark(s3, sid["bob"], two, room="r")
        await eventually_async(lambda: alice.receipts and carol.receipts, "the room's told")
        assert [receipt(r) for r in alice.receipts] == [("bob", "", "r", two)]
        assert [receipt(r) for r in carol.receipts] == [("bob", "", "r", two)]
        await mark(s2, sid["alice"], two, room="r")
        await eventually_async(lambda: len(carol.receipts) == 2, "alice's room receipt")
        for stub in (s1, s2, s3):
            assert await listed(stub, sid["carol"], room="R") == [("alice", two), ("bob", two)]
        await mark(s3, sid["bob"], two, room="r")  # a marker that does not move
        await asyncio.sleep(QUIET_S)
        assert len(alice.receipts) == 1 and len(carol.receipts) == 2
        assert [receipt(r) for r in bob.receipts] == [
            ("alice", "bob", "", one),
            ("alice", "", "r", two),
        ]  # never one's own
        for s in (alice, bob, carol):
            await s.close()


async def test_one_who_does_not_share_is_not_shown_nor_shown_others_after_a_master_loss(
    trio: list[Node],
) -> None:
    n1, n2, n3 = trio
    async with stubs(trio) as (s1, s2, s3):
        sid = await users(s1, "alice", "bob")
        one = await send(s1, sid["alice"], "one", to="bob")
        await mark(s1, sid["bob"], one, peer="alice")
        await mark(s1, sid["alice"], one, peer="bob")
        assert await listed(s2, sid["alice"], peer="bob") == [("bob", one)]

        r = await s3.ShareReceipts(chat_pb2.ShareReceiptsRequest(session_id=sid["bob"]))
        assert r.error_code == 0, r
        assert await listed(s2, sid["alice"], peer="bob") == []
        assert await listed(s3, sid["bob"], peer="alice") == []  # nor sees alice's
        await caught_up(trio)
        alice = await Events(s2, sid["alice"]).start()
        bob = await Events(s3, sid["bob"]).start()
        await registered(n2, {"alice": 1})
        await registered(n3, {"bob": 1})
        two = await send(s1, sid["alice"], "two", to="bob")
        await mark(s3, sid["bob"], two, peer="alice")
        await mark(s2, sid["alice"], two, peer="bob")
        await asyncio.sleep(QUIET_S)
        assert alice.receipts == [] and bob.receipts == []
        for s in (alice, bob):
            await s.close()

        # the master goes: the setting is the cluster's, not the node's
        trio.remove(n1)
        await n1.stop()

        def new_master() -> bool:
            return any(n.repl.status().role is Role.MASTER for n in (n2, n3))

        await eventually_async(new_master, "a new master", timeout=30)
        ask = chat_pb2.ReceiptsRequest(session_id=sid["alice"], peer="bob")
        for stub in (s2, s3):

            async def answer_of(stub: Stub = stub) -> chat_pb2.Receipts:
                try:
                    return await stub.ListReceipts(ask)
                except grpc.aio.AioRpcError:  # (UNAVAILABLE until the master is known)
                    return chat_pb2.Receipts(error_code=-1)

            answer = await eventually_async(
                answer_of, "an answer from the new master", until=lambda a: a.error_code == 0
            )
            assert list(answer.receipt) == []
        back = chat_pb2.ShareReceiptsRequest(session_id=sid["bob"], share=True)
        assert (await s3.ShareReceipts(back)).error_code == 0
        for stub in (s2, s3):
            assert await listed(stub, sid["alice"], peer="bob") == [("bob", two)]
            assert await listed(stub, sid["bob"], peer="alice") == [("alice", two)]


async def test_no_one_reads_the_receipts_of_a_conversation_they_are_not_in(
    trio: list[Node],
) -> None:
    async with stubs(trio) as (s1, s2, _):
        sid = await users(s1, "alice", "bob", "mallory")
        await room_of(s1, sid, "r", "alice", "bob", "mallory")
        one = await send(s1, sid["alice"], "secret", room="r")
        hi = await send(s1, sid["alice"], "hi bob", to="bob")
        await mark(s1, sid["bob"], one, room="r")
        await mark(s1, sid["bob"], hi, peer="alice")
        await s1.CreateRoom(chat_pb2.RoomRequest(session_id=sid["alice"], room="other"))
        invite = chat_pb2.RoomMemberRequest(
            session_id=sid["alice"], room="other", username="mallory"
        )
        assert (await s1.InviteToRoom(invite)).error_code == 0  # invited, never joined
        assert await listed(s2, sid["mallory"], room="r") == [("bob", one)]  # a member reads

        async def both(room: str, session: str) -> tuple[Any, Any]:
            history = await s2.GetRoomHistory(
                chat_pb2.RoomHistoryRequest(session_id=session, room=room)
            )
            got = await s2.ListReceipts(chat_pb2.ReceiptsRequest(session_id=session, room=room))
            return (got.error_code, list(got.receipt)), (history.error_code, [])

        # invited only, a room that is not there, a name no room has
        for room in ("other", "nosuchroom", "r" * 100_000, "r\x00"):
            got, history = await both(room, sid["mallory"])
            assert got == history and got[0] in (Code.NOT_A_MEMBER, Code.NO_SUCH_ROOM), room
        # removed, and left: as GetRoomHistory answers
        remove = chat_pb2.RoomMemberRequest(session_id=sid["alice"], room="r", username="mallory")
        assert (await s1.RemoveFromRoom(remove)).error_code == 0
        got, history = await both("r", sid["mallory"])
        assert got == history == (Code.NOT_A_MEMBER, [])
        leave = chat_pb2.RoomRequest(session_id=sid["bob"], room="r")
        assert (await s1.LeaveRoom(leave)).error_code == 0
        got, history = await both("r", sid["bob"])
        assert got == history == (Code.NOT_A_MEMBER, [])
        # another pair's one-to-one cannot even be named: mallory's with bob
        # is hers, and holds nothing of alice's
        assert await listed(s2, sid["mallory"], peer="bob") == []
        assert await listed(s2, sid["mallory"], peer="alice") == []
        for request, code in (
            (
                chat_pb2.ReceiptsRequest(session_id=sid["mallory"], peer="nosuchuser"),
                Code.NO_SUCH_USER,
            ),
            (chat_pb2.ReceiptsRequest(session_id="forged", peer="bob"), Code.NOT_LOGGED_IN),
            (
                chat_pb2.ReceiptsRequest(session_id=sid["mallory"], peer="bob", room="r"),
                Code.INVALID_ARGUMENT,
            ),
        ):
            r = await s2.ListReceipts(request)
            assert (r.error_code, list(r.receipt)) == (code, []), request
        shared = await s2.ShareReceipts(chat_pb2.ShareReceiptsRequest(session_id="forged"))
        assert shared.error_code == Code.NOT_LOGGED_IN
        with pytest.raises(grpc.aio.AioRpcError) as large:
            await s2.ListReceipts(
                chat_pb2.ReceiptsRequest(session_id=sid["mallory"], room="r" * 1_000_000)
            )
        assert large.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await listed(s2, sid["alice"], peer="bob") == [("bob", hi)]  # the node goes on


async def test_the_library_types_and_reads_receipts(trio: list[Node]) -> None:
    n1, n2, n3 = trio
    async with stubs(trio) as (s1, _, _):
        await users(s1, "alice", "bob")
    await caught_up(trio)
    alice = ChatClient([n2.address], spread=False)
    bob = ChatClient([n3.address], spread=False)
    tasks: list[asyncio.Task[None]] = []
    got: list[Any] = []
    try:
        await alice.login("alice", PASSWORD)
        await bob.login("bob", PASSWORD)

        async def read(c: ChatClient, out: list[Any]) -> None:
            async for m in c.inbox():
                out.append(m)

        async def events(c: ChatClient, out: list[Any]) -> None:
            async for e in c.events():
                out.append(e)

        alice_got: list[Any] = []
        tasks += [
            asyncio.create_task(read(bob, got)),
            asyncio.create_task(events(bob, got)),
            asyncio.create_task(read(alice, alice_got)),
            asyncio.create_task(events(alice, alice_got)),
        ]
        await registered(n1, {"alice": 1, "bob": 1})
        assert await alice.typing(peer="bob")
        assert not await alice.typing(peer="bob")  # throttled here
        await eventually_async(lambda: any(isinstance(e, Typing) for e in got), "bob told")
        notice = next(e for e in got if isinstance(e, Typing))
        assert (notice.sender, notice.peer, notice.room) == ("alice", "bob", "")
        assert notice.until > asyncio.get_running_loop().time()

        mid = await alice.send("bob", "hello")
        await eventually_async(lambda: any(getattr(m, "id", 0) == mid for m in got), "delivered")
        await bob.mark_read(mid, peer="alice")
        await eventually_async(lambda: any(isinstance(e, Receipt) for e in alice_got), "alice told")
        assert [e for e in alice_got if isinstance(e, Receipt)] == [
            Receipt("bob", mid, "alice", "")
        ]
        assert await alice.list_receipts(peer="bob") == [Receipt("bob", mid, "bob", "")]
        await bob.share_receipts(False)
        assert await alice.list_receipts(peer="bob") == []
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await alice.close()
        await bob.close()


async def test_the_share_setting_waits_for_every_node_to_speak_protocol_4(
    node: Node, stub: Stub
) -> None:
    """While a member speaks 3 (the cluster's version says so), ShareReceipts
    is refused as every newer write is: UNAVAILABLE, nothing written."""
    session = (await users(stub, "alice"))["alice"]
    node.store.cluster_version = 3
    index = node.store.last_index
    request = chat_pb2.ShareReceiptsRequest(session_id=session, share=False)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ShareReceipts(request)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the cluster is being upgraded" in str(refused.value.details())
    assert node.store.last_index == index
    node.store.cluster_version = 4
    assert (await stub.ShareReceipts(request)).error_code == 0
    assert node.store.last_index == index + 1


async def test_the_share_setting_survives_a_master_killed(tmp_path: Path) -> None:
    """Real node processes; the master SIGKILLed after bob stopped sharing:
    the new master still hides bob's receipts (and bob sees none), bob's
    setting back on shows them; every node ends with the same state."""
    c = await asyncio.to_thread(Cluster.start, tmp_path, 3)
    everywhere = list(c.addresses.values())
    alice = ChatClient(everywhere, retry_for=30)
    bob = ChatClient(everywhere, retry_for=30)
    try:
        for client, name in ((alice, "alice"), (bob, "bob")):
            await client.create_account(name, PASSWORD)
            await client.login(name, PASSWORD)
        one = await alice.send("bob", "one")
        await bob.mark_read(one, peer="alice")
        await alice.mark_read(one, peer="bob")
        assert await alice.list_receipts(peer="bob") == [Receipt("bob", one, "bob", "")]
        await bob.share_receipts(False)
        assert await alice.list_receipts(peer="bob") == []
        old = await asyncio.to_thread(c.master)
        assert old is not None
        c.kill(old)
        await asyncio.to_thread(c.wait, lambda: c.master() not in (None, old), "a new master", 30.0)
        two = await alice.send("bob", "two")
        await bob.mark_read(two, peer="alice")
        assert await alice.list_receipts(peer="bob") == []
        assert await bob.list_receipts(peer="alice") == []
        await bob.share_receipts(True)
        assert await alice.list_receipts(peer="bob") == [Receipt("bob", two, "bob", "")]
        assert await bob.list_receipts(peer="alice") == [Receipt("alice", one, "alice", "")]
        await asyncio.to_thread(c.converged)
    finally:
        await alice.close()
        await bob.close()
        c.stop_all()
