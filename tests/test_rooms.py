"""Rooms through the client API and the library: membership rules, fan-out
to every member (live, and after a failover), history, read markers and
unread counts across devices. Real nodes on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.client import (
    ChatClient,
    InvalidRoom,
    Message,
    NoSuchRoom,
    NoSuchUser,
    NotAllowed,
    NotAMember,
    RoomLimit,
    RoomNameTaken,
    Unread,
)
from chatd.server.build import build
from chatd.server.node import Node
from tests.cluster import Cluster
from tests.conftest import has_undelivered, node_config
from tests.test_client import logged_in
from tests.waiting import eventually_async


async def take(stream: AsyncIterator[Message], n: int) -> list[Message]:
    async with asyncio.timeout(10):
        return [await anext(stream) for _ in range(n)]


async def test_membership_rules_through_the_api(node: Node) -> None:
    ann, bob, cat = [await logged_in(node.address, n) for n in ("ann", "bob", "cat")]
    await ann.create_room("team", "plans for the week")
    with pytest.raises(RoomNameTaken):
        await bob.create_room("TEAM")
    with pytest.raises(InvalidRoom):
        await bob.create_room("no spaces")
    with pytest.raises(NoSuchRoom):
        await bob.join_room("nowhere")
    with pytest.raises(NotAMember):
        await bob.send("", "hi", room="team")  # not invited, not joined
    with pytest.raises(NotAMember):
        await bob.room_history("team")
    await ann.invite("team", "bob")
    with pytest.raises(NotAMember):
        await bob.send("", "hi", room="team")  # invited only
    await bob.join_room("team")
    with pytest.raises(NotAllowed):
        await bob.invite("team", "cat")  # not an admin
    await ann.name_room_admin("team", "bob")
    await bob.invite("team", "cat")
    await cat.join_room("team")
    members = {m.name: (m.joined, m.admin) for m in await ann.room_members("team")}
    assert members == {"ann": (True, True), "bob": (True, True), "cat": (True, False)}
    [room] = await cat.rooms()
    assert (room.name, room.topic, room.creator, room.members) == (
        "team",
        "plans for the week",
        "ann",
        3,
    )
    with pytest.raises(NotAllowed):
        await bob.remove_from_room("team", "ann")  # never the creator
    for c in (ann, bob, cat):
        await c.close()


async def test_every_member_gets_each_message_once_and_removal_is_at_once(node: Node) -> None:
    names = ("ann", "bob", "cat")
    ann, bob, cat = [await logged_in(node.address, n) for n in names]
    await ann.create_room("team")
    for c in (bob, cat):
        await ann.invite("team", c.username or "")
        await c.join_room("team")
    streams = {c.username: c.subscribe() for c in (ann, bob, cat)}
    ids = [await c.send("", f"from {c.username}", room="team") for c in (ann, bob, cat)]
    for name, stream in streams.items():
        got = await take(stream, 3)
        assert [m.id for m in got] == ids, name
        assert {m.room for m in got} == {"team"} and got[1].body == "from bob"
    # cat is removed: the next message does not reach her, nor may she read on
    await ann.remove_from_room("team", "cat")
    after = await ann.send("", "cat is gone", room="team")
    for name in ("ann", "bob"):
        [m] = await take(streams[name], 1)
        assert m.id == after
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.5):
            await anext(streams["cat"])
    with pytest.raises(NotAMember):
        await cat.room_history("team")
    with pytest.raises(NotAMember):
        await cat.send("", "let me back", room="team")
    history = await bob.room_history("team")
    assert [m.id for m in history] == [*ids, after]
    # a stream that resumes reads the room's messages since the member joined
    again = bob.subscribe(after=ids[0])
    assert [m.id for m in await take(again, 3)] == [ids[1], ids[2], after]
    for s in (*streams.values(), again):
        await s.aclose()
    for c in (ann, bob, cat):
        await c.close()


async def test_unread_counts_agree_on_two_devices(node: Node) -> None:
    ann = await logged_in(node.address, "ann")
    phone, laptop = [await logged_in(node.address, "bob") for _ in range(2)]
    await ann.create_room("team")
    await ann.invite("team", "bob")
    await phone.join_room("team")
    sent = [await ann.send("", f"m{i}", room="team") for i in range(3)]
    await phone.send("", "mine does not count", room="team")
    for device in (phone, laptop):
        [room] = await device.rooms()
        assert room.unread == 3
    await phone.mark_read(sent[1], room="team")
    [room] = await laptop.rooms()
    assert room.unread == 1
    await laptop.mark_read(sent[0], room="team")  # markers only move forward
    [room] = await phone.rooms()
    assert room.unread == 1
    [mine] = await ann.rooms()
    assert mine.unread == 1  # phone's message
    for c in (ann, phone, laptop):
        await c.close()


async def test_one_to_one_unread_counts_agree_on_two_devices(node: Node) -> None:
    phone, laptop = [await logged_in(node.address, "bob") for _ in range(2)]
    ann, cat = await logged_in(node.address, "ann"), await logged_in(node.address, "cat")
    from_ann = [await ann.send("bob", f"a{i}") for i in range(3)]
    from_cat = await cat.send("bob", "c0")
    mine = await phone.send("ann", "mine does not count")
    for device in (phone, laptop):
        assert await device.unread() == [Unread("cat", 1, from_cat), Unread("ann", 3, from_ann[2])]
    await phone.mark_read(from_ann[1], peer="ann")
    assert await laptop.unread() == [Unread("cat", 1, from_cat), Unread("ann", 1, from_ann[2])]
    await laptop.mark_read(from_ann[0], peer="ann")  # markers only move forward
    await laptop.mark_read(from_cat, peer="cat")
    assert await phone.unread() == [Unread("ann", 1, from_ann[2])]
    assert await ann.unread() == [Unread("bob", 1, mine)]  # bob's message
    with pytest.raises(NoSuchUser):
        await phone.mark_read(1, peer="nobody")
    await phone.mark_read(from_ann[2], peer="ann")
    assert await laptop.unread() == []
    for c in (ann, cat, phone, laptop):
        await c.close()


async def test_room_messages_reach_every_member_across_a_failover(tmp_path: Path) -> None:
    """Eight members of a room, one of them sending 60 messages; the master
    killed -9 midway: every member gets every message once, in order."""
    cluster = await asyncio.to_thread(Cluster.start, tmp_path)
    clients: list[ChatClient] = []
    try:
        addresses = list(cluster.addresses.values())
        owner = await logged_in(addresses, "owner")
        clients.append(owner)
        await owner.create_room("crowd")
        members = [await logged_in(addresses, f"m{i}") for i in range(8)]
        clients += members
        for m in members:
            await owner.invite("crowd", m.username or "")
            await m.join_room("crowd")
        total = 60
        got: list[list[Message]] = [[] for _ in members]
        sent: list[int] = []

        async def receive(i: int) -> None:
            async for msg in members[i].subscribe():
                got[i].append(msg)
                if len(got[i]) == total:
                    return

        async def send() -> None:
            for k in range(total):
                sent.append(await owner.send("", f"k{k}", room="crowd"))
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(receive(i)) for i in range(len(members))]
        await eventually_async(
            lambda: all(m._connection and m._connection.open_at for m in members),
            "every member's stream open",
            timeout=30,
        )
        tasks.append(asyncio.create_task(send()))
        await eventually_async(lambda: len(sent), "15 sent", until=lambda n: n >= 15, timeout=60)
        master = await asyncio.to_thread(cluster.master)
        cluster.kill(master)  # type: ignore[arg-type]
        assert len(sent) < total
        async with asyncio.timeout(90):
            await asyncio.gather(*tasks)
        for i in range(len(members)):
            assert [m.body for m in got[i]] == [f"k{k}" for k in range(total)], i
            assert [m.id for m in got[i]] == sent
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        cluster.stop_all()


async def test_room_messages_wait_in_the_inbox_of_a_member_not_connected(node: Node) -> None:
    """GetMessages hands out a member's room messages as its own, once each,
    in id order; what a live stream delivered and the inbox acknowledged is
    not handed out again, so inbox() shows each once."""
    ann = await logged_in(node.address, "ann")
    bob = await logged_in(node.address, "bob")
    await ann.create_room("team")
    await ann.invite("team", "bob")
    before = await ann.send("", "before bob joined", room="team")
    await bob.join_room("team")
    ids = [
        await ann.send("", "r1", room="team"),
        await ann.send("bob", "direct"),
        await ann.send("", "r2", room="team"),
    ]
    got = await bob.get_messages()
    assert [m.id for m in got] == ids and before not in ids
    assert [m.room for m in got] == ["team", "", "team"]
    assert await bob.get_messages() == []
    later = await ann.send("", "r3", room="team")
    inbox = bob.inbox()
    [m] = await take(inbox, 1)
    assert m.id == later
    live = await ann.send("", "r4", room="team")
    [m] = await take(inbox, 1)
    assert m.id == live
    await eventually_async(
        lambda: not has_undelivered(node, "bob"), "the inbox acknowledging what came live"
    )
    await inbox.aclose()
    assert await bob.get_messages() == []
    for c in (ann, bob):
        await c.close()


async def test_the_room_limits_are_the_nodes_flags(tmp_path: Path) -> None:
    node = await build(node_config(tmp_path / "n", max_room_members=2, max_rooms_per_user=1))
    await node.start()
    try:
        ann, bob, cat = [await logged_in(node.address, n) for n in ("ann", "bob", "cat")]
        await ann.create_room("team")
        with pytest.raises(RoomLimit):
            await ann.create_room("second")  # one room each
        await ann.invite("team", "bob")
        with pytest.raises(RoomLimit):
            await ann.invite("team", "cat")  # two members a room, invited counted
        await cat.create_room("other")
        await cat.invite("other", "bob")  # invitations wait outside bob's quota
        await bob.join_room("team")
        with pytest.raises(RoomLimit):
            await bob.join_room("other")  # one room joined each
        for c in (ann, bob, cat):
            await c.close()
    finally:
        await node.stop()
