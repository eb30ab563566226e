"""What one ordinary account must not be able to do to others with rooms,
and a silent client to a node: invitations that lock a user out of rooms,
room names taken for good, room writes and read markers without a rate,
names outside the username rules, Connect streams that never open. Real
nodes on loopback (a real 3-node cluster where entries must replicate)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from chatd.client import (
    CallFailed,
    ChatClient,
    NoSuchRecipient,
    NoSuchRoom,
    NoSuchUser,
    NotAllowed,
    NotAMember,
    RoomLimit,
)
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.api.unopened import Unopened
from chatd.server.build import build
from chatd.server.node import Node
from tests.cluster import Cluster
from tests.conftest import node_config
from tests.test_client import logged_in


def over_rate(exc: pytest.ExceptionInfo[CallFailed]) -> bool:
    return exc.value.status == grpc.StatusCode.RESOURCE_EXHAUSTED


@contextlib.asynccontextmanager
async def cluster_users(
    base: Path, names: tuple[str, ...], *flags: str
) -> AsyncIterator[list[ChatClient]]:
    """A 3-node cluster of these flags and a logged-in client per name; at
    the end every node must hold the same state (digest)."""
    cluster = await asyncio.to_thread(Cluster.start, base, 3, *flags)
    clients: list[ChatClient] = []
    try:
        addresses = list(cluster.addresses.values())
        clients += [await logged_in(addresses, n) for n in names]
        yield clients
        await asyncio.to_thread(cluster.converged)
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        cluster.stop_all()


async def test_invitations_never_lock_a_user_out_of_rooms(tmp_path: Path) -> None:
    """A 3-node cluster; quota 3 rooms, 3 invitations held at most, 12
    invitations a minute. An attacker fills the victim's invitations: the
    victim still creates a room and a friend's invitation still comes (the
    attacker's oldest is dropped); the victim declines one; the quota counts
    only rooms joined; the attacker's invitations run into their rate. Every
    node ends with the same state digest."""
    flags = ("--max-rooms-per-user", "3", "--max-invitations", "3", "--invite-rate", "12")
    async with cluster_users(tmp_path, ("mal", "vic", "friend"), *flags) as clients:
        mal, vic, friend = clients
        for i in range(3):
            await mal.create_room(f"spam{i}")
            await mal.invite(f"spam{i}", "vic")
        assert [(r.name, r.joined) for r in await vic.rooms()] == [
            ("spam0", False),
            ("spam1", False),
            ("spam2", False),
        ]
        await vic.create_room("mine")  # invitations are not in the quota
        await friend.create_room("club")
        await friend.invite("club", "vic")  # a friend's still comes: spam0 is dropped
        assert {r.name for r in await vic.rooms()} == {"mine", "club", "spam1", "spam2"}
        assert {m.name for m in await mal.room_members("spam0")} == {"mal"}
        await vic.decline_invite("spam1")
        assert {m.name for m in await mal.room_members("spam1")} == {"mal"}
        with pytest.raises(NotAMember):
            await vic.decline_invite("spam1")  # no invitation any more
        with pytest.raises(NotAllowed):
            await vic.decline_invite("mine")  # joined: one leaves instead
        await vic.join_room("club")
        await vic.join_room("spam2")  # three joined: mine, club, spam2
        with pytest.raises(RoomLimit):
            await vic.create_room("fourth")
        await mal.invite("spam2", "friend")  # (mal's 4th invitation)
        with pytest.raises(CallFailed) as info:
            for _ in range(20):  # invited already: no entry, but each one counts
                await mal.invite("spam2", "friend")
        assert over_rate(info) and "invitations a minute" in info.value.message


async def test_rooms_are_deleted_by_admins_and_when_nobody_is_left(tmp_path: Path) -> None:
    """A 3-node cluster: an admin deletes a room (its members see it go, its
    history goes, its name is free); a room whose last member leaves, or
    deletes their account, goes too; creation has a rate (4 an hour here).
    Every node ends with the same state digest."""
    async with cluster_users(tmp_path, ("ann", "bob", "cat"), "--room-rate", "4") as clients:
        ann, bob, cat = clients
        await ann.create_room("team")
        for c in (bob, cat):
            await ann.invite("team", c.username or "")
        await bob.join_room("team")
        await bob.send("", "plans", room="team")
        with pytest.raises(NotAllowed):
            await bob.delete_room("team")  # an admin's
        with pytest.raises(NotAMember):
            await cat.delete_room("team")  # invited only
        await ann.delete_room("team")
        assert await bob.rooms() == [] and await cat.rooms() == []
        with pytest.raises(NoSuchRoom):
            await bob.send("", "still there?", room="team")
        await bob.create_room("TEAM")  # the name is free again, the history gone
        assert await bob.room_history("TEAM") == []
        await bob.leave_room("TEAM")  # the last member: the room goes
        await cat.create_room("team")
        await cat.delete_account()
        await ann.create_room("team")  # (ann's 2nd room; bob's and cat's 1st)
        await ann.create_room("two")
        await ann.create_room("three")
        with pytest.raises(CallFailed) as info:
            await ann.create_room("five")  # over 4 an hour
        assert over_rate(info) and "new rooms an hour" in info.value.message


async def test_read_markers_and_room_writes_have_a_rate(tmp_path: Path) -> None:
    """A MarkRead that does not move the marker writes nothing; those that
    do, and the other room writes, are held to --room-write-rate (2 a
    second here, in bursts of 10)."""
    node = await build(node_config(tmp_path / "n", room_write_rate=2.0))
    await node.start()
    try:
        ann, bob = [await logged_in(node.address, n) for n in ("ann", "bob")]
        mid = await bob.send("ann", "hello")
        await ann.mark_read(mid, peer="bob")
        index = node.store.last_index
        for _ in range(30):  # the marker is there: no entry, no rate
            await ann.mark_read(mid, peer="bob")
            await ann.mark_read(0, peer="bob")
        assert node.store.last_index == index
        with pytest.raises(CallFailed) as info:
            for upto in range(mid + 1, mid + 30):
                await ann.mark_read(upto, peer="bob")
        assert over_rate(info) and "read markers a second" in info.value.message
        assert node.store.last_index - index < 12
        await bob.create_room("r")
        with pytest.raises(CallFailed) as info:
            for _ in range(30):
                await bob.invite("r", "ann")  # (an invitation's own rate: none here)
                await ann.join_room("r")
                await ann.leave_room("r")
        assert over_rate(info)
        await ann.close()
        await bob.close()
    finally:
        await node.stop()


async def test_a_name_outside_the_username_rules_reaches_no_one(node: Node) -> None:
    """ "\\u212a" (the Kelvin sign) folds to "k", but no account can have it:
    Send and a Connect send frame answer NO_SUCH_RECIPIENT, as GetChat does,
    and nothing is written."""
    kim, ann = [await logged_in(node.address, n) for n in ("kim", "ann")]
    kelvin = "\u212aim"
    index = node.store.last_index
    with pytest.raises(NoSuchRecipient):
        await ann.send(kelvin, "for kim?")
    with pytest.raises(NoSuchRecipient):
        await ann.get_chat(kelvin)
    with pytest.raises(NoSuchUser):
        await ann.mark_read(1, peer=kelvin)
    async with grpc.aio.insecure_channel(node.address) as ch:
        call: Any = chat_pb2_grpc.ClientAccountStub(ch).Connect()  # type: ignore[call-arg]
        await call.write(chat_pb2.ClientFrame(open=chat_pb2.OpenFrame(session_id=ann._session())))
        send = chat_pb2.SendFrame(request_id="r1", to=kelvin, message="for kim?")
        await call.write(chat_pb2.ClientFrame(send=send))
        async with asyncio.timeout(10):
            frame = await call.read()
        assert frame.result.error_code == 15, frame
        call.cancel()
    assert node.store.last_index == index
    assert await kim.get_messages() == []
    await kim.close()
    await ann.close()


async def silent_stream(stub: chat_pb2_grpc.ClientAccountStub, start: float) -> tuple[Any, float]:
    """A Connect stream that never sends a frame: how it ended (its
    AioRpcError, or OK) and when, seconds after `start`."""
    call: Any = stub.Connect()  # type: ignore[call-arg]
    try:
        await call.read()
    except grpc.aio.AioRpcError as exc:
        return exc, time.monotonic() - start
    finally:
        call.cancel()
    return grpc.StatusCode.OK, time.monotonic() - start


async def test_connect_streams_that_never_open_are_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Streams that send no first frame: four from one address are held,
    for --first-frame-timeout (1 s here) then ended DEADLINE_EXCEEDED; each
    newer one ends the address's oldest at once, RESOURCE_EXHAUSTED. Each
    end is logged at info level with its reason. A client that opens is
    served after them."""
    caplog.set_level(logging.INFO, logger="chatd.server.api.client_service")
    node = await build(node_config(tmp_path / "n", first_frame_timeout=1.0, max_unopened_streams=4))
    await node.start()
    try:
        async with grpc.aio.insecure_channel(node.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            start = time.monotonic()
            async with asyncio.timeout(20):
                old = [asyncio.create_task(silent_stream(stub, start)) for _ in range(4)]
                await asyncio.sleep(0.3)  # (the four are held)
                new = [asyncio.create_task(silent_stream(stub, start)) for _ in range(4)]
                pushed_out = await asyncio.gather(*old)
                ended = await asyncio.gather(*new)
                ann = await logged_in(node.address, "ann")  # served after them
                stream = ann.subscribe()
                await (await logged_in(node.address, "bob")).send("ann", "hi")
                assert (await anext(stream)).body == "hi"
                await stream.aclose()
        assert {exc.code() for exc, _ in pushed_out} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert all("newer Connect streams" in exc.details() for exc, _ in pushed_out)
        assert max(t for _, t in pushed_out) < 1.0, pushed_out
        assert {exc.code() for exc, _ in ended} == {grpc.StatusCode.DEADLINE_EXCEEDED}
        assert all(1.2 <= t < 5 for _, t in ended), ended
        said = [r.getMessage() for r in caplog.records if "before it opened" in r.getMessage()]
        assert len(said) == 8, said
        assert sum("newer Connect streams" in m for m in said) == 4, said
        assert sum("no open frame within 1 s" in m for m in said) == 4, said
        assert all(r.levelno == logging.INFO for r in caplog.records if "opened" in r.getMessage())
        await ann.close()
    finally:
        await node.stop()


async def test_silent_streams_never_lock_out_a_client_at_the_same_address(
    tmp_path: Path,
) -> None:
    """Someone at the client's address (a NAT, a shared host) keeps the most
    silent Connect streams a real node allows (4 here), renewing them every
    0.1 s before any can time out (3 s): the client at that address still
    logs in, sends and receives over its own Connect streams, every time;
    the node holds no more silent streams than the bound, ending the oldest."""
    bound = 4
    cluster = await asyncio.to_thread(
        Cluster.start,
        tmp_path,
        1,
        "--first-frame-timeout=3s",
        f"--max-unopened-streams={bound}",
    )
    try:
        (address,) = cluster.addresses.values()
        start = time.monotonic()
        attack: list[asyncio.Task[tuple[Any, float]]] = []
        took: list[float] = []  # each message's seconds from send to delivery
        async with grpc.aio.insecure_channel(address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)

            async def renew() -> None:
                while True:
                    attack.extend(asyncio.create_task(silent_stream(stub, start)) for _ in range(2))
                    await asyncio.sleep(0.1)  # (two more every 100 ms)

            renewing = asyncio.create_task(renew())
            try:
                await asyncio.sleep(1.0)  # the bound is reached, and kept full
                async with asyncio.timeout(30):
                    ann = await logged_in(address, "ann")
                    bob = await logged_in(address, "bob")
                    inbox = ann.subscribe()
                    for i in range(5):
                        sent = time.monotonic()
                        await bob.send("ann", f"hi {i}")
                        assert (await anext(inbox)).body == f"hi {i}"
                        took.append(time.monotonic() - sent)
                        await asyncio.sleep(0.3)  # (one message every 300 ms)
                    await inbox.aclose()
                    await ann.close()
                    await bob.close()
                    held = sum(not t.done() for t in attack)
            finally:
                renewing.cancel()
                for task in attack:
                    task.cancel()
                await asyncio.gather(renewing, *attack, return_exceptions=True)
        ended = [t.result() for t in attack if not t.cancelled()]
        print("send to delivery, s:", [round(t, 3) for t in took])
        assert max(took) < 2.0, took  # (the silent streams' timeout is 3 s)
        assert held <= bound + 2, held  # (the last round's two may not be ended yet)
        pushed_out = [t for exc, t in ended if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(pushed_out) >= 20, ended
        assert {exc.code() for exc, _ in ended} == {grpc.StatusCode.RESOURCE_EXHAUSTED}, ended
    finally:
        cluster.stop_all()


async def test_a_burst_of_streams_that_open_at_once_is_served(tmp_path: Path) -> None:
    """One address starts eight times --max-unopened-streams Connect streams
    at the same moment (a load generator, users behind one NAT), each
    writing its open frame at once: the node may start all their handlers
    before it reads any open frame, yet it ends none of them; each stream
    answers a send. Ten rounds, on a fresh channel each, to a real node."""
    bound, burst, rounds = 4, 32, 10
    cluster = await asyncio.to_thread(Cluster.start, tmp_path, 1, f"--max-unopened-streams={bound}")
    try:
        (address,) = cluster.addresses.values()
        ann, bob = [await logged_in(address, n) for n in ("ann", "bob")]
        session = ann._session()
        ended: list[tuple[Any, str]] = []

        async def one(stub: Any, i: int) -> None:
            call: Any = stub.Connect()
            try:
                opening = chat_pb2.OpenFrame(session_id=session, sends_only=True)
                await call.write(chat_pb2.ClientFrame(open=opening))
                send = chat_pb2.SendFrame(request_id=f"r{i}", to="bob", message=f"m{i}")
                await call.write(chat_pb2.ClientFrame(send=send))
                frame = await call.read()
                assert frame.result.request_id == f"r{i}", frame
                assert not frame.result.error_code and not frame.result.status, frame
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
                ended.append((await call.code(), await call.details() or repr(exc)))
            finally:
                call.cancel()

        async with asyncio.timeout(60):
            for r in range(rounds):
                async with grpc.aio.insecure_channel(address) as ch:
                    stub = chat_pb2_grpc.ClientAccountStub(ch)
                    await ch.channel_ready()
                    await asyncio.gather(*(one(stub, r * burst + i) for i in range(burst)))
        assert ended == [], ended
        await ann.close()
        await bob.close()
    finally:
        cluster.stop_all()


async def test_an_open_frame_read_as_the_deadline_comes_is_taken() -> None:
    """The node's loop stalls (0.3 s here) past both the moment a stream's
    open frame is read (0.05 s) and the stream's deadline (0.1 s): the two
    are handled in the same turn of the loop, and the frame is taken, not
    lost to the deadline's end of the stream."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[str] = loop.create_future()

    async def frames() -> AsyncIterator[str]:
        yield await arrived

    loop.call_later(0.05, arrived.set_result, "open")
    loop.call_later(0.01, time.sleep, 0.3)  # (the stall)
    async with asyncio.timeout(5):
        assert await Unopened().first_frame("192.0.2.1", frames(), 0.1, 4) == "open"


async def test_a_room_that_exists_says_so_to_a_non_member(node: Node) -> None:
    """Room names are not secret (CreateRoom's ROOM_NAME_TAKEN tells): every
    room call answers NO_SUCH_ROOM (20) for a room that does not exist and
    NOT_A_MEMBER (22) for one the caller is not in."""
    ann, eve = [await logged_in(node.address, n) for n in ("ann", "eve")]
    await ann.create_room("team")
    calls: dict[str, Callable[[str], Awaitable[object]]] = {
        "join": lambda r: eve.join_room(r),
        "leave": lambda r: eve.leave_room(r),
        "decline": lambda r: eve.decline_invite(r),
        "delete": lambda r: eve.delete_room(r),
        "invite": lambda r: eve.invite(r, "ann"),
        "members": lambda r: eve.room_members(r),
        "history": lambda r: eve.room_history(r),
        "mark read": lambda r: eve.mark_read(1, room=r),
        "send": lambda r: eve.send("", "hi", room=r),
    }
    for what, call in calls.items():
        with pytest.raises(NoSuchRoom):
            await call("nowhere")
        with pytest.raises(NotAMember):
            await call("team")
        assert what
    await ann.close()
    await eve.close()


async def test_streams_that_never_open_cannot_flood_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Forty silent Connect streams from one address, each pushing out the
    oldest: the ends' info lines come 16 at once per address, then one a
    second, so an address opening streams it never opens cannot fill the log."""
    caplog.set_level(logging.INFO, logger="chatd.server.api.client_service")
    node = await build(node_config(tmp_path / "n", first_frame_timeout=1.0, max_unopened_streams=2))
    await node.start()
    try:
        async with grpc.aio.insecure_channel(node.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            start = time.monotonic()
            async with asyncio.timeout(30):
                ends = []
                for _ in range(40):
                    ends.append(asyncio.create_task(silent_stream(stub, start)))
                    await asyncio.sleep(0.01)
                got = await asyncio.gather(*ends)
        elapsed = time.monotonic() - start
        assert all(isinstance(exc, grpc.aio.AioRpcError) for exc, _ in got), got
        said = [r.getMessage() for r in caplog.records if "before it opened" in r.getMessage()]
        assert 16 <= len(said) <= 16 + int(elapsed) + 1, (len(said), elapsed)
    finally:
        await node.stop()
